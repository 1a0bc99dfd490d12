"""``python -m bench.retrieval_bench``: does the reranker help, and where should refusal start?

Two settings of the answer pipeline are decided from data here rather than by taste:

* ``rerank`` (off by default): the cross-encoder reorders the fused candidates. This command
  measures, on the shared QA sets, how often the passage holding the answer reaches the top 1
  and the top ``top_k`` (the passages the generator sees) with and without it, paired
  question by question with a bootstrap confidence interval, and what it costs in latency.
* ``min_relevance``: under it the pipeline answers "not found in the documents". Each question
  is asked twice, once over the whole index (answerable) and once with its gold document
  hidden by a filter (a realistic unanswerable question: same wording, same corpus, the answer
  gone). The threshold is chosen on one half of the questions (best balanced accuracy while
  keeping at least ``--keep`` of the answerable ones) and reported on the other half.

The retrieval is the pipeline's own ``HybridRetriever`` (fusion, de-duplication, overlap
scores, reranking), so the figures describe what ``POST /ask`` does.

    python -m bench.retrieval_bench                       # both sets, default samples
    python -m bench.retrieval_bench --datasets xquad --sample 200 --out /tmp/r.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rag  # noqa: E402,F401  (telemetry off before anything else loads)
from bench.ingest_bench import _log, machine_info, percentiles  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.documents import Chunk, SearchHit  # noqa: E402
from rag.retrieval import HybridRetriever, SearchFilters  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "cmrc": ("cmrc2018", "zh"),
    "xquad": ("xquad-en", "en"),
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "retrieval_bench.json"


class HideDocuments(SearchFilters):
    """A filter that keeps everything but the given documents: the question's answer is gone,
    everything else about the search is as usual (the retriever searches deeper to fill k)."""

    def __init__(self, hidden: Sequence[str]) -> None:
        super().__init__()
        self.hidden = frozenset(hidden)

    @property
    def active(self) -> bool:
        return True

    def matches(self, chunk: Chunk) -> bool:
        return chunk.source not in self.hidden


@dataclass
class Outcome:
    """One question under one retrieval setting."""

    id: str
    lang: str
    doc_rank: int | None  # rank of the first passage from a gold document (1-based)
    answer_rank: int | None  # rank of the first passage containing a gold answer
    relevance_answerable: float  # best relevance over the top_k with the whole index
    relevance_hidden: float  # the same with the gold documents hidden
    ms: float  # retrieval + rerank, whole index
    stages: dict[str, float] = field(default_factory=dict)


def contains_any(text: str, answers: Sequence[str]) -> bool:
    """Whether a passage holds one of the answers (case-insensitive, spaces ignored)."""
    flat = "".join(text.lower().split())
    return any(a and "".join(a.lower().split()) in flat for a in answers)


def first_rank(hits: Sequence[SearchHit], test) -> int | None:
    return next((i for i, hit in enumerate(hits, start=1) if test(hit)), None)


def run_setting(retriever: HybridRetriever, items: list[Any], top_k: int, label: str) -> list[Outcome]:
    """Ask every question twice (whole index; gold documents hidden) with one retriever."""
    out: list[Outcome] = []
    started = time.perf_counter()
    for n, item in enumerate(items, start=1):
        whole = retriever.retrieve(item.question, top_k=top_k)
        hidden = retriever.retrieve(item.question, top_k=top_k, filters=HideDocuments(item.gold_docs))
        gold = set(item.gold_docs)
        out.append(
            Outcome(
                id=item.id,
                lang=item.lang,
                doc_rank=first_rank(whole.hits, lambda h, gold=gold: h.chunk.source in gold),
                answer_rank=first_rank(whole.hits, lambda h, answers=item.answers: contains_any(h.chunk.text, answers)),
                relevance_answerable=whole.best_relevance,
                relevance_hidden=hidden.best_relevance,
                ms=sum(whole.timings_ms.values()),
                stages=dict(whole.timings_ms),
            )
        )
        if n % 100 == 0 or n == len(items):
            rate = n / (time.perf_counter() - started)
            _log(f"{label}: {n}/{len(items)} questions ({rate:.1f}/s)")
    return out


def hit_rate(outcomes: Sequence[Outcome], attr: str, k: int) -> float:
    return _mean([1.0 if (getattr(o, attr) or k + 1) <= k else 0.0 for o in outcomes])


def mrr(outcomes: Sequence[Outcome], attr: str) -> float:
    return _mean([1.0 / getattr(o, attr) if getattr(o, attr) else 0.0 for o in outcomes])


def ranking_summary(outcomes: Sequence[Outcome], top_k: int) -> dict[str, Any]:
    return {
        "questions": len(outcomes),
        "answer_hit@1": round(hit_rate(outcomes, "answer_rank", 1), 4),
        "answer_hit@3": round(hit_rate(outcomes, "answer_rank", 3), 4),
        f"answer_hit@{top_k}": round(hit_rate(outcomes, "answer_rank", top_k), 4),
        f"answer_mrr@{top_k}": round(mrr(outcomes, "answer_rank"), 4),
        "doc_hit@1": round(hit_rate(outcomes, "doc_rank", 1), 4),
        f"doc_hit@{top_k}": round(hit_rate(outcomes, "doc_rank", top_k), 4),
        "latency": percentiles([o.ms for o in outcomes]),
        "stage_latency": {
            stage: percentiles([o.stages.get(stage, 0.0) for o in outcomes])
            for stage in sorted({s for o in outcomes for s in o.stages})
        },
    }


def compare_rerank(plain: Sequence[Outcome], reranked: Sequence[Outcome], top_k: int) -> dict[str, Any]:
    """Reranked minus plain, paired by question, for the ranking figures that matter."""
    from eval.metrics import paired_bootstrap

    out: dict[str, Any] = {}
    for name, score in (
        ("answer_hit@1", lambda o: 1.0 if o.answer_rank == 1 else 0.0),
        (f"answer_hit@{top_k}", lambda o: 1.0 if (o.answer_rank or top_k + 1) <= top_k else 0.0),
        (f"answer_mrr@{top_k}", lambda o: 1.0 / o.answer_rank if o.answer_rank else 0.0),
    ):
        c = paired_bootstrap([score(o) for o in plain], [score(o) for o in reranked])
        out[name] = {
            "plain": round(c.mean_a, 4),
            "rerank": round(c.mean_b, 4),
            "diff": round(c.diff, 4),
            "ci95": [round(c.ci_low, 4), round(c.ci_high, 4)],
            "p_value": round(c.p_value, 4),
            "significant": c.significant,
        }
    return out


# -- the refusal threshold ------------------------------------------------------------------------


def in_calibration_half(question_id: str) -> bool:
    """A fixed split by question id, the same on every run and machine."""
    return hashlib.sha256(question_id.encode()).digest()[0] % 2 == 0


def rates_at(outcomes: Sequence[Outcome], threshold: float) -> dict[str, float]:
    """At ``threshold``: the share of answerable questions kept (answered) and of
    gold-hidden questions refused, and their mean (balanced accuracy)."""
    keep = _mean([1.0 if o.relevance_answerable >= threshold else 0.0 for o in outcomes])
    refuse = _mean([1.0 if o.relevance_hidden < threshold else 0.0 for o in outcomes])
    return {
        "threshold": round(threshold, 3),
        "answerable_kept": round(keep, 4),
        "hidden_refused": round(refuse, 4),
        "balanced_accuracy": round((keep + refuse) / 2, 4),
    }


def calibrate(outcomes: Sequence[Outcome], min_keep: float) -> float:
    """The threshold with the best balanced accuracy among those keeping ``min_keep`` of the
    answerable questions (wrongly refusing an answerable question costs the user more than
    attempting an unanswerable one, which the generator and citation checks can still refuse)."""
    grid = sorted({round(i / 100, 2) for i in range(0, 101)})
    allowed = [t for t in grid if rates_at(outcomes, t)["answerable_kept"] >= min_keep] or [0.0]
    return max(allowed, key=lambda t: (rates_at(outcomes, t)["balanced_accuracy"], -t))


def threshold_report(outcomes: Sequence[Outcome], current: float, min_keep: float) -> dict[str, Any]:
    calib = [o for o in outcomes if in_calibration_half(o.id)]
    held = [o for o in outcomes if not in_calibration_half(o.id)]
    chosen = calibrate(calib, min_keep)
    langs = sorted({o.lang for o in outcomes})
    return {
        "calibration_questions": len(calib),
        "held_out_questions": len(held),
        "min_keep": min_keep,
        "chosen": chosen,
        "held_out_at_chosen": rates_at(held, chosen),
        "held_out_at_current": rates_at(held, current),
        "current": current,
        "per_language_held_out_at_chosen": {
            lang: rates_at([o for o in held if o.lang == lang], chosen) for lang in langs
        },
        "per_language_held_out_at_current": {
            lang: rates_at([o for o in held if o.lang == lang], current) for lang in langs
        },
        "curve": [rates_at(outcomes, t / 20) for t in range(0, 21)],
    }


# -- the run ---------------------------------------------------------------------------------


def open_index(name: str, workdir: Path, base: Settings):
    """The index over one shared set's documents, ingested (incrementally) into ``workdir``."""
    from rag.index import Index
    from rag.ingestion import ingest_folder

    folder, _ = DATASETS[name]
    settings = base.replace(index_dir=workdir / f"{name}-index")
    started = time.perf_counter()
    report = ingest_folder(SHARED / folder / "docs", settings)
    _log(f"{name}: index ready in {time.perf_counter() - started:.1f} s ({report.chunks_added} chunks embedded)")
    return Index.open(settings), settings


def load_items(name: str, sample: int | None, seed: int) -> list[Any]:
    from eval.dataset import load_qa, select

    folder, _ = DATASETS[name]
    qa = load_qa(SHARED / folder / "qa.jsonl")
    return [item for item in select(qa.items, sample=sample, seed=seed) if item.answerable and item.gold_docs]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cmrc,xquad", help="comma-separated: cmrc, xquad (default both)")
    parser.add_argument(
        "--sample", type=int, default=600, help="questions per set, a seeded sample (default 600; 0 = all)"
    )
    parser.add_argument(
        "--rerank-sample",
        type=int,
        default=200,
        help="of those, how many are also asked with the reranker (default 200; it is ~50x slower)",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--keep", type=float, default=0.95, help="share of answerable questions the threshold must keep (default 0.95)"
    )
    parser.add_argument("--workdir", default="/tmp/rag-retrieval-bench", help="where the indexes are built (kept)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"results JSON (default {DEFAULT_OUT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = Settings.load()
    top_k = base.top_k
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        print(f"error: unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out)
    result: dict[str, Any] = {
        "command": "python -m bench.retrieval_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(),
        "settings": {
            "top_k": top_k,
            "retrieve_k": base.retrieve_k,
            "reranker": base.reranker_model,
            "min_relevance": base.min_relevance,
            "sample": args.sample,
            "seed": args.seed,
        },
        "datasets": {},
    }

    from rag.reranking import make_reranker

    reranker = make_reranker(base.replace(rerank=True))
    reranker.warm_up()
    everything: dict[str, list[Outcome]] = {"plain": [], "rerank": []}
    for name in names:
        index, settings = open_index(name, workdir, base)
        items = load_items(name, args.sample or None, args.seed)
        plain = HybridRetriever(index, settings.replace(rerank=False))
        reranked = HybridRetriever(index, settings.replace(rerank=True), reranker)
        plain.warm_up()
        outcomes = {"plain": run_setting(plain, items, top_k, f"{name} plain")}
        from eval.dataset import select

        subset = select(items, sample=args.rerank_sample or None, seed=args.seed + 1)  # a random subset
        outcomes["rerank"] = run_setting(reranked, subset, top_k, f"{name} rerank")
        for label, rows in outcomes.items():
            everything[label].extend(rows)
        chosen = {item.id for item in subset}
        plain_subset = [o for o in outcomes["plain"] if o.id in chosen]
        result["datasets"][name] = {
            "questions": len(items),
            "rerank_questions": len(subset),
            "chunks": index.size,
            "plain": ranking_summary(outcomes["plain"], top_k),
            "plain_on_rerank_questions": ranking_summary(plain_subset, top_k),
            "rerank": ranking_summary(outcomes["rerank"], top_k),
            "rerank_minus_plain": compare_rerank(plain_subset, outcomes["rerank"], top_k),
            "reranker_reads_questions": getattr(reranker, "languages", None) is None
            or DATASETS[name][1] in reranker.languages,
        }
        _write(out_path, result)

    result["refusal_threshold"] = {
        label: threshold_report(rows, base.min_relevance, args.keep) for label, rows in everything.items() if rows
    }
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write(out_path, result)
    print_summary(result, top_k)
    print(f"\nresults: {out_path}")
    return 0


def print_summary(result: dict[str, Any], top_k: int) -> None:
    print(
        f"\n{'set':8} {'setting':8} {'ans@1':>7} {f'ans@{top_k}':>7} {'MRR':>7} {'doc@1':>7} "
        f"{'p50 ms':>8} {'p95 ms':>8}"
    )
    for name, data in result["datasets"].items():
        for label in ("plain", "plain_on_rerank_questions", "rerank"):
            s = data[label]
            shown = "plain*" if label.startswith("plain_on") else label
            print(
                f"{name:8} {shown:8} {s['answer_hit@1']:7.3f} {s[f'answer_hit@{top_k}']:7.3f} "
                f"{s[f'answer_mrr@{top_k}']:7.3f} {s['doc_hit@1']:7.3f} {s['latency']['p50_ms']:8.1f} "
                f"{s['latency']['p95_ms']:8.1f}"
            )
        for metric, c in data["rerank_minus_plain"].items():
            print(
                f"   rerank - plain* ({data['rerank_questions']} questions), {metric}: {c['diff']:+.3f} "
                f"(95% CI {c['ci95'][0]:+.3f}..{c['ci95'][1]:+.3f}, "
                f"p={c['p_value']:.3f})"
            )
    for label, t in result.get("refusal_threshold", {}).items():
        h, cur = t["held_out_at_chosen"], t["held_out_at_current"]
        print(
            f"\nrefusal threshold ({label}): chosen {t['chosen']:.2f} on {t['calibration_questions']} questions; "
            f"held-out {t['held_out_questions']}: keeps {h['answerable_kept']:.3f} of answerable, refuses "
            f"{h['hidden_refused']:.3f} of gold-hidden (current {t['current']:.2f}: {cur['answerable_kept']:.3f} / "
            f"{cur['hidden_refused']:.3f})"
        )
        for lang, r in t["per_language_held_out_at_chosen"].items():
            print(f"   {lang}: keeps {r['answerable_kept']:.3f}, refuses {r['hidden_refused']:.3f}")


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    tmp.replace(path)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
