"""``python -m bench.embedder_bench``: which embedder should be the default?

Compares all-MiniLM-L6-v2 (today's default), USE multilingual v3 (``use-multilingual-v3``) and
multilingual-e5-small 4-bit (``multilingual-e5-small``) through the real pipeline: each set's
documents are ingested with ``ingest_folder`` into an index of their own per embedder, and
questions are asked with ``Index.search`` in ``dense`` and ``hybrid`` mode (dense + BM25 fused
by RRF, as the service searches).

Sets (questions and documents; samples are seeded, the JSON records exactly which):

* ``cmrc``: ``../shared/data/cmrc2018``, ``--cmrc-docs`` documents (150) drawn at random, and
  ``--sample`` (300) of the questions whose gold document is among them; the other drawn
  documents are the distractors.
* ``xquad``: ``../shared/data/xquad-en``, all 48 documents, ``--sample`` questions.
* ``hotpotqa``: ``../shared/data/hotpotqa``, ``--hotpot`` (40) questions and the 10 paragraphs
  each came with (2 gold, 8 distractors), pooled.
* ``domainrag``: ``../shared/data/domainrag-multidoc-zh``, all 48 questions, their gold
  documents and random others up to ``--domainrag-docs`` (200).
* ``paraphrase`` and ``crosslingual``: ``bench/data/*.jsonl``, written for this benchmark, over
  ``examples/docs`` plus ``bench/data/docs`` (16 short documents, 8 English, 8 Chinese) and, as
  distractors, 40 CMRC and 24 XQuAD articles not otherwise used by the paraphrase sets.

Retrieval: a question is found at k when any of its gold documents is among the first k
distinct documents of the ranking (multi-hop sets: any one of the two or more gold documents);
MRR uses the rank of the first gold document among the first 50 chunks (0 past them).

Relevance gate: every question is also asked as unanswerable, by dropping its gold documents'
chunks from the rankings (the index as if it lacked them; BM25's statistics still include them),
and questions from the public sets are asked over the paraphrase corpus ("unrelated"). For each
the JSON keeps the best dense cosine, its margin over the next chunks, and the pipeline's word
overlap (share of the question's content words in the best of the top 5 hybrid hits, what
``min_relevance`` is compared with).

Each embedder runs in a process of its own (as it would be deployed); the embedding
throughput on the same chunks and the query latency are timed afterwards in alternating
rounds, one process per embedder and round.

    python -m bench.embedder_bench                         # everything (~40 min on 2 cores)
    python -m bench.embedder_bench --models minilm,use --sets paraphrase,crosslingual
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATA = Path(__file__).resolve().parent / "data"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "embedder_bench.json"
MODELS = {
    "minilm": "all-MiniLM-L6-v2",
    "use": "use-multilingual-v3",
    "e5": "multilingual-e5-small",
    "mix": "use-m3+minilm-l6",
}
SETS = ("cmrc", "xquad", "hotpotqa", "domainrag", "paraphrase", "crosslingual")
DEPTH = 50  # chunks read from each ranking
UNRELATED_PER_SET = 60
PARAPHRASE_DISTRACTORS_CMRC = 40  # CMRC articles added to the paraphrase corpus
PARAPHRASE_DISTRACTORS_XQUAD = 24  # XQuAD articles added to it


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- the sets ---------------------------------------------------------------------------------


def _copy_docs(names: Sequence[str], source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(source / name, target / name)


def prepare_sets(work: Path, args) -> dict[str, dict[str, Any]]:
    """Write each set's documents into ``work/docs/SET`` and return its questions."""
    rng = random.Random(args.seed)
    sets: dict[str, dict[str, Any]] = {}
    wanted = args.sets.split(",")
    if "cmrc" in wanted:
        qa = _read_jsonl(SHARED / "cmrc2018" / "qa.jsonl")
        docs_with_questions = sorted({d for q in qa for d in q["gold_docs"]})
        docs = sorted(rng.sample(docs_with_questions, args.cmrc_docs))
        chosen = set(docs)
        pool = [q for q in qa if set(q["gold_docs"]) <= chosen]
        questions = rng.sample(pool, min(args.sample, len(pool)))
        sets["cmrc"] = {"source": SHARED / "cmrc2018" / "docs", "docs": docs, "questions": questions}
    if "xquad" in wanted:
        qa = _read_jsonl(SHARED / "xquad-en" / "qa.jsonl")
        docs = sorted(p.name for p in (SHARED / "xquad-en" / "docs").iterdir())
        sets["xquad"] = {
            "source": SHARED / "xquad-en" / "docs",
            "docs": docs,
            "questions": rng.sample(qa, min(args.sample, len(qa))),
        }
    if "hotpotqa" in wanted:
        qa = _read_jsonl(SHARED / "hotpotqa" / "qa.jsonl")
        questions = rng.sample(qa, min(args.hotpot, len(qa)))
        docs = sorted({d for q in questions for d in q.get("context_docs", []) + q["gold_docs"]})
        sets["hotpotqa"] = {"source": SHARED / "hotpotqa" / "docs", "docs": docs, "questions": questions}
    if "domainrag" in wanted:
        qa = _read_jsonl(SHARED / "domainrag-multidoc-zh" / "qa.jsonl")
        gold = {d for q in qa for d in q["gold_docs"]}
        others = sorted({p.name for p in (SHARED / "domainrag-multidoc-zh" / "docs").iterdir()} - gold)
        extra = rng.sample(others, max(0, min(len(others), args.domainrag_docs - len(gold))))
        sets["domainrag"] = {
            "source": SHARED / "domainrag-multidoc-zh" / "docs",
            "docs": sorted(gold | set(extra)),
            "questions": qa,
        }
    for name in ("paraphrase", "crosslingual"):
        if name in wanted:
            sets[name] = {
                "source": None,
                "docs": None,
                "questions": _read_jsonl(DATA / f"{name}.jsonl"),
                "corpus": "paraphrase",
            }
    cmrc_all = _read_jsonl(SHARED / "cmrc2018" / "qa.jsonl")
    used = set(sets["cmrc"]["docs"]) if "cmrc" in sets else set()
    spare = sorted({d for q in cmrc_all for d in q["gold_docs"]} - used)
    distractor_cmrc = sorted(rng.sample(spare, PARAPHRASE_DISTRACTORS_CMRC))
    distractor_xquad = sorted(
        rng.sample(sorted(p.name for p in (SHARED / "xquad-en" / "docs").iterdir()), PARAPHRASE_DISTRACTORS_XQUAD)
    )
    for name, spec in sets.items():
        folder = work / "docs" / spec.get("corpus", name)
        if not folder.is_dir():
            if spec["source"] is None:
                _copy_docs([p.name for p in (REPO / "examples" / "docs").iterdir()], REPO / "examples" / "docs", folder)
                _copy_docs([p.name for p in (DATA / "docs").iterdir()], DATA / "docs", folder)
                # distractors: Wikipedia articles in both languages, renamed so no name collides
                for doc in distractor_cmrc:
                    shutil.copyfile(SHARED / "cmrc2018" / "docs" / doc, folder / f"cmrc-{doc}")
                for doc in distractor_xquad:
                    shutil.copyfile(SHARED / "xquad-en" / "docs" / doc, folder / f"xquad-{doc}")
            else:
                _copy_docs(spec["docs"], spec["source"], folder)
        spec["folder"] = str(folder)
        spec["documents"] = sorted(p.name for p in folder.iterdir())
        spec.pop("source", None)
        spec.pop("docs", None)
    # unrelated questions over the paraphrase corpus: public-set questions whose documents it lacks
    if "paraphrase" in sets:
        in_corpus = set(distractor_cmrc)
        unrelated = rng.sample([q for q in cmrc_all if not set(q["gold_docs"]) & in_corpus], UNRELATED_PER_SET)
        for name in ("hotpotqa", "domainrag"):
            qa = _read_jsonl(SHARED / {"hotpotqa": "hotpotqa", "domainrag": "domainrag-multidoc-zh"}[name] / "qa.jsonl")
            unrelated += rng.sample(qa, min(UNRELATED_PER_SET, len(qa)))
        sets["paraphrase"]["unrelated"] = unrelated
    return sets


# -- one embedder, in its own process ----------------------------------------------------------


def _doc_ranks(hits, gold: set[str], hidden: set[str] = frozenset()):
    """Distinct documents in rank order, leaving out ``hidden`` ones."""
    docs: list[str] = []
    for hit in hits:
        source = hit.chunk.source
        if source in hidden or source in docs:
            continue
        docs.append(source)
    return docs


def _found_at(docs: list[str], gold: set[str]) -> int | None:
    for rank, doc in enumerate(docs, start=1):
        if doc in gold:
            return rank
    return None


def _gate_features(dense_hits, hybrid_hits, terms, hidden: set[str]) -> dict[str, float]:
    from rag.retrieval import term_overlap

    scores = [h.scores["dense"] for h in dense_hits if h.chunk.source not in hidden]
    top = [h for h in hybrid_hits if h.chunk.source not in hidden][:5]
    best = scores[0] if scores else 0.0
    rest = scores[1:10]
    return {
        "dense": round(best, 4),
        "margin": round(best - (statistics.fmean(rest) if rest else 0.0), 4),
        "overlap": round(max((term_overlap(terms, h.chunk.text) for h in top), default=0.0), 4),
    }


def run_model(key: str, sets: dict[str, Any], work: Path) -> dict[str, Any]:
    from rag.config import Settings
    from rag.index import Index
    from rag.ingestion import ingest_folder
    from rag.retrieval import query_terms

    model = MODELS[key]
    out: dict[str, Any] = {"model": model, "sets": {}, "ingest": {}}
    built: dict[str, Any] = {}
    for name, spec in sets.items():
        corpus = spec.get("corpus", name)
        if corpus not in built:
            settings = Settings.load(
                env={}, overrides={"index_dir": work / "index" / key / corpus, "embed_model": model, "device": "cpu"}
            )
            started = time.perf_counter()
            report = ingest_folder(spec["folder"], settings, rebuild=True)
            wall = time.perf_counter() - started
            out["ingest"][corpus] = {
                "files": report.files_new + report.files_changed,
                "chunks": report.chunks_embedded,
                "wall_s": round(wall, 2),
                "stage_seconds": report.stage_seconds,
                "failed": len(report.failed),
            }
            built[corpus] = Index.open(settings)
            _log(f"{key}: {corpus} ingested, {report.chunks_embedded} chunks in {wall:.1f} s")
        index = built[corpus]
        rows = []
        asked = [(q, False) for q in spec["questions"]] + [(q, True) for q in spec.get("unrelated", [])]
        for q, unrelated in asked:
            gold = set(q["gold_docs"]) if not unrelated else set()
            dense = index.search(q["question"], k=DEPTH, mode="dense")
            hybrid = index.search(q["question"], k=DEPTH, mode="hybrid")
            terms = query_terms(q["question"])
            row: dict[str, Any] = {"id": q["id"], "lang": q.get("lang"), "unrelated": unrelated}
            if not unrelated:
                for mode, hits in (("dense", dense), ("hybrid", hybrid)):
                    row[mode] = _found_at(_doc_ranks(hits, gold), gold)
                row["answerable"] = _gate_features(dense, hybrid, terms, set())
                row["hidden"] = _gate_features(dense, hybrid, terms, gold)
            else:
                row["unrelated_features"] = _gate_features(dense, hybrid, terms, set())
            rows.append(row)
        out["sets"][name] = rows
        _log(f"{key}: {name} asked ({len(rows)} questions)")
    return out


# -- timing: the same chunks and questions, one process per embedder and round ------------------


def run_timing(key: str, work: Path, chunks: list[str], queries: list[str]) -> dict[str, Any]:
    from rag.config import Settings
    from rag.embedding import make_embedder
    from rag.index import Index

    settings = Settings.load(
        env={}, overrides={"index_dir": work / "index" / key / "cmrc", "embed_model": MODELS[key], "device": "cpu"}
    )
    embedder = make_embedder(settings)
    started = time.perf_counter()
    embedder.warm_up()
    embedder.warm_up_queries()
    load_s = time.perf_counter() - started
    embedder.embed(chunks[:4])
    started = time.perf_counter()
    embedder.embed(chunks)
    embed_s = time.perf_counter() - started
    index = Index.open(settings, embedder=embedder)
    for q in queries[:10]:
        index.search(q, k=5, mode="hybrid")
    embed_ms, search_ms = [], []
    for q in queries:
        t = time.perf_counter()
        embedder.embed_queries([q])
        embed_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        index.search(q, k=5, mode="hybrid")
        search_ms.append((time.perf_counter() - t) * 1000)
    return {
        "load_s": round(load_s, 2),
        "chunks": len(chunks),
        "embed_s": round(embed_s, 2),
        "chunks_per_s": round(len(chunks) / embed_s, 2),
        "query_embed_ms": embed_ms,
        "search_ms": search_ms,
        "loadavg": os.getloadavg(),
    }


def run_fusion(key: str, sets: dict[str, Any], work: Path, factors: Sequence[float]) -> dict[str, Any]:
    """Hybrid recall with the dense ranking weighted ``factor`` times the BM25 ranking in the
    fusion (the service: 1), over the indexes the quality run built. Only the ranking of the
    fused lists changes; RRF is invariant to scaling both weights."""
    import rag.index
    from rag.config import Settings
    from rag.index import Index

    base = rag.index.dense_weight
    out: dict[str, Any] = {}
    for factor in factors:
        rag.index.dense_weight = lambda ratio, cutoff=0.4, f=factor: base(ratio, cutoff) * f
        figures = {}
        for name, spec in sets.items():
            corpus = spec.get("corpus", name)
            settings = Settings.load(
                env={},
                overrides={"index_dir": work / "index" / key / corpus, "embed_model": MODELS[key], "device": "cpu"},
            )
            index = Index.open(settings)
            rows = []
            for q in spec["questions"]:
                gold = set(q["gold_docs"])
                rows.append(
                    {
                        "unrelated": False,
                        "hybrid": _found_at(
                            _doc_ranks(index.search(q["question"], k=DEPTH, mode="hybrid"), gold), gold
                        ),
                    }
                )
            figures[name] = retrieval_figures(rows, "hybrid")
        out[str(factor)] = figures
        _log(f"{key}: fusion with dense weight x{factor} done")
    rag.index.dense_weight = base
    return out


def _child(mode: str, key: str, work: Path, timeout: float) -> dict[str, Any]:
    result = work / f"{mode}-{key}.json"
    result.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "bench.embedder_bench", "--child", mode, "--child-model", key, "--workdir", str(work)],
        cwd=REPO,
        check=True,
        timeout=timeout,
    )
    return json.loads(result.read_text(encoding="utf-8"))


# -- figures -----------------------------------------------------------------------------------


def retrieval_figures(rows: list[dict[str, Any]], mode: str) -> dict[str, float]:
    ranks = [r[mode] for r in rows if not r["unrelated"]]
    n = len(ranks)
    return {
        "n": n,
        "recall@1": round(sum(1 for r in ranks if r is not None and r <= 1) / n, 3),
        "recall@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 3),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / n, 3),
    }


def by_language(model_out: dict[str, Any]) -> dict[str, Any]:
    """The written sets' figures for each question language (the bars are per language)."""
    out: dict[str, Any] = {}
    for name in ("paraphrase", "crosslingual"):
        rows = [r for r in model_out["sets"].get(name, []) if not r["unrelated"]]
        for lang in sorted({r["lang"] for r in rows}):
            subset = [r for r in rows if r["lang"] == lang]
            out[f"{name}-{lang}"] = {mode: retrieval_figures(subset, mode) for mode in ("dense", "hybrid")}
    return out


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    ordered = sorted(negatives)
    import bisect

    total = 0.0
    for p in positives:
        below = bisect.bisect_left(ordered, p)
        ties = bisect.bisect_right(ordered, p) - below
        total += below + ties / 2
    return round(total / (len(positives) * len(negatives)), 3)


def gate_figures(model_out: dict[str, Any], min_relevance: float) -> dict[str, Any]:
    """How each score separates answerable from unanswerable questions, and what a gate that
    also lets a high dense score through would do."""
    sets = model_out["sets"]
    figures: dict[str, Any] = {"auc_hidden": {}, "overlap_gate": {}, "or_gate": {}}
    unrelated = [r["unrelated_features"] for r in sets.get("paraphrase", []) if r["unrelated"]]
    for feature in ("dense", "margin", "overlap"):
        figures["auc_hidden"][feature] = {
            name: auc(
                [r["answerable"][feature] for r in rows if not r["unrelated"]],
                [r["hidden"][feature] for r in rows if not r["unrelated"]],
            )
            for name, rows in sets.items()
        }
        if unrelated:
            figures.setdefault("auc_unrelated", {})[feature] = auc(
                [r["answerable"][feature] for r in sets["paraphrase"] if not r["unrelated"]],
                [u[feature] for u in unrelated],
            )
    for name, rows in sets.items():
        answerable = [r["answerable"] for r in rows if not r["unrelated"]]
        hidden = [r["hidden"] for r in rows if not r["unrelated"]]
        figures["overlap_gate"][name] = {
            "passes_answerable": round(sum(a["overlap"] >= min_relevance for a in answerable) / len(answerable), 3),
            "refuses_hidden": round(sum(h["overlap"] < min_relevance for h in hidden) / len(hidden), 3),
        }
    if unrelated:
        figures["overlap_gate"]["unrelated"] = {
            "refuses": round(sum(u["overlap"] < min_relevance for u in unrelated) / len(unrelated), 3)
        }
        # the OR gate: overlap >= min_relevance, or the dense feature above the value that 95%
        # (and 99%) of the unrelated questions stay under
        for feature in ("dense", "margin"):
            values = sorted(u[feature] for u in unrelated)
            for quantile in (0.95, 0.99):
                threshold = values[min(len(values) - 1, int(quantile * len(values)))]
                label = f"{feature}>={threshold:.3f} (q{int(quantile * 100)} of unrelated)"
                entry: dict[str, Any] = {}
                for name, rows in sets.items():
                    answerable = [r["answerable"] for r in rows if not r["unrelated"]]
                    hidden = [r["hidden"] for r in rows if not r["unrelated"]]

                    def passes(f: dict, feature: str = feature, threshold: float = threshold) -> bool:
                        return f["overlap"] >= min_relevance or f[feature] >= threshold

                    entry[name] = {
                        "passes_answerable": round(sum(map(passes, answerable)) / len(answerable), 3),
                        "refuses_hidden": round(sum(not passes(h) for h in hidden) / len(hidden), 3),
                    }
                entry["unrelated"] = {"refuses": round(sum(not passes(u) for u in unrelated) / len(unrelated), 3)}
                figures["or_gate"][label] = entry
    return figures


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    import math

    return round(ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1], 2)


# -- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.embedder_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="minilm,use,e5", help="comma-separated: minilm, use, e5")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {', '.join(SETS)}")
    parser.add_argument("--sample", type=int, default=300, help="CMRC and XQuAD questions (default 300)")
    parser.add_argument("--cmrc-docs", type=int, default=150, help="CMRC documents drawn (default 150)")
    parser.add_argument("--hotpot", type=int, default=40, help="HotpotQA questions (default 40)")
    parser.add_argument("--domainrag-docs", type=int, default=200, help="DomainRAG documents (default 200)")
    parser.add_argument("--timing-chunks", type=int, default=96, help="CMRC chunks embedded per timing round")
    parser.add_argument("--timing-queries", type=int, default=100, help="questions timed per round")
    parser.add_argument("--rounds", type=int, default=2, help="timing rounds, embedders alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/rag-embedder-bench")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument(
        "--fusion-only",
        action="store_true",
        help="over the indexes of an earlier run in --workdir: hybrid recall with the dense ranking "
        "weighted 1, 2, 4 and 8 times BM25's in the fusion; adds 'fusion' to --out",
    )
    parser.add_argument("--child", choices=["quality", "timing", "fusion"], help=argparse.SUPPRESS)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = Path(args.workdir)
    if args.child:
        plan = json.loads((work / "plan.json").read_text(encoding="utf-8"))
        if args.child == "quality":
            result = run_model(args.child_model, plan["sets"], work)
        elif args.child == "fusion":
            result = run_fusion(args.child_model, plan["sets"], work, plan["fusion_factors"])
        else:
            result = run_timing(args.child_model, work, plan["timing_chunks"], plan["timing_queries"])
        (work / f"{args.child}-{args.child_model}.json").write_text(
            json.dumps(result, ensure_ascii=False), encoding="utf-8"
        )
        return 0

    from rag.config import Settings

    if args.fusion_only:
        plan = json.loads((work / "plan.json").read_text(encoding="utf-8"))
        plan["fusion_factors"] = [1.0, 2.0, 4.0, 8.0]
        (work / "plan.json").write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        out = Path(args.out)
        result = json.loads(out.read_text(encoding="utf-8"))
        result["fusion"] = {key: _child("fusion", key, work, timeout=3600) for key in args.models.split(",")}
        result["fusion_command"] = "python -m bench.embedder_bench " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        _write(out, result)
        for key, by_factor in result["fusion"].items():
            for factor, figures in by_factor.items():
                print(key, f"dense x{factor}", {n: (f["recall@1"], f["recall@5"]) for n, f in figures.items()})
        return 0

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    models = args.models.split(",")
    sets = prepare_sets(work, args)
    started = time.time()
    result: dict[str, Any] = {
        "command": "python -m bench.embedder_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": _commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "sets": {
            n: {
                "folder": s["folder"],
                "documents": len(s["documents"]),
                "questions": len(s["questions"]),
                "question_ids": [q["id"] for q in s["questions"]],
                "document_names": s["documents"] if n in ("cmrc", "domainrag") else None,
                "unrelated": len(s.get("unrelated", [])),
            }
            for n, s in sets.items()
        },
        "models": {},
        "timing": {},
    }
    from rag.retrieval import query_terms, term_overlap

    for name in ("paraphrase", "crosslingual"):
        if name in sets:
            folder = Path(sets[name]["folder"])
            shares = [
                term_overlap(query_terms(q["question"]), (folder / q["gold_docs"][0]).read_text(encoding="utf-8"))
                for q in sets[name]["questions"]
            ]
            result["sets"][name]["mean_overlap_with_gold_doc"] = round(statistics.fmean(shares), 3)
            result["sets"][name]["share_under_min_relevance"] = round(
                sum(x < Settings().min_relevance for x in shares) / len(shares), 3
            )
    plan = {"sets": sets}
    (work / "plan.json").write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    out = Path(args.out)
    min_relevance = Settings().min_relevance
    for key in models:
        _log(f"{key}: quality run")
        model_out = _child("quality", key, work, timeout=3600)
        model_out["retrieval"] = {
            name: {mode: retrieval_figures(rows, mode) for mode in ("dense", "hybrid")}
            for name, rows in model_out["sets"].items()
        }
        model_out["retrieval_by_lang"] = by_language(model_out)
        model_out["gate"] = gate_figures(model_out, min_relevance)
        result["models"][key] = model_out
        _write(out, result)

    if "cmrc" in sets:
        # the same chunks for every embedder: MiniLM's CMRC chunks if built, else any
        from rag.stores.chunk_store import ChunkStore

        index_dirs = [work / "index" / k / "cmrc" for k in models]
        store = ChunkStore(next(d for d in index_dirs if d.is_dir()) / "chunks.sqlite", readonly=True)
        texts = [c.text for source in sorted(store.documents()) for c in store.chunks_of(source)]
        plan["timing_chunks"] = texts[: args.timing_chunks]
        plan["timing_queries"] = [q["question"] for q in sets["cmrc"]["questions"][: args.timing_queries // 2]] + [
            q["question"] for q in sets.get("xquad", sets["cmrc"])["questions"][: args.timing_queries // 2]
        ]
        (work / "plan.json").write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in models}
        for r in range(args.rounds):
            for key in models if r % 2 == 0 else list(reversed(models)):
                _log(f"{key}: timing round {r + 1}")
                rounds[key].append(_child("timing", key, work, timeout=1800))
        for key, runs in rounds.items():
            embed_ms = [v for run in runs for v in run["query_embed_ms"]]
            search_ms = [v for run in runs for v in run["search_ms"]]
            result["timing"][key] = {
                "chunks": runs[0]["chunks"],
                "chunks_per_s_rounds": [run["chunks_per_s"] for run in runs],
                "chunks_per_s": round(statistics.median(run["chunks_per_s"] for run in runs), 2),
                "load_s": [run["load_s"] for run in runs],
                "query_embed_p50_ms": _pct(embed_ms, 0.5),
                "query_embed_p95_ms": _pct(embed_ms, 0.95),
                "search_p50_ms": _pct(search_ms, 0.5),
                "search_p95_ms": _pct(search_ms, 0.95),
                "loadavg": [run["loadavg"] for run in runs],
            }
        result["timing_note"] = (
            f"{len(plan['timing_chunks'])} CMRC chunks (MiniLM's, 256 MiniLM tokens) embedded by each "
            f"embedder, {len(plan['timing_queries'])} questions (half CMRC, half XQuAD) through "
            "Index.search(k=5, hybrid) over that embedder's CMRC index; "
            f"{args.rounds} rounds, embedders alternating, one process each"
        )
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["seconds"] = round(time.time() - started, 1)
    _write(out, result)
    print_summary(result)
    return 0


def print_summary(result: dict[str, Any]) -> None:
    for key, model_out in result["models"].items():
        for name, modes in model_out["retrieval"].items():
            d, h = modes["dense"], modes["hybrid"]
            print(
                f"{key:7s} {name:13s} dense r@1 {d['recall@1']:.3f} r@5 {d['recall@5']:.3f} mrr {d['mrr']:.3f} | "
                f"hybrid r@1 {h['recall@1']:.3f} r@5 {h['recall@5']:.3f} mrr {h['mrr']:.3f}  (n={d['n']})"
            )
    for key, t in result.get("timing", {}).items():
        print(
            f"{key:7s} {t['chunks_per_s']} chunks/s, query embed p50 {t['query_embed_p50_ms']} ms, "
            f"hybrid search p50 {t['search_p50_ms']} / p95 {t['search_p95_ms']} ms"
        )


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
