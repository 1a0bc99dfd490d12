"""``python -m bench.ingest_bench``: ingestion throughput, re-ingest cost and search latency.

For each corpus (the CMRC 2018 documents, a generated corpus, or both) it measures, through
the real pipeline and in one process:

1. a first full ingest into a fresh index folder (``rag.ingestion.ingest_folder``): files/s,
   chunks/s (chunks / total wall time, model loading included) and the pipeline's own stage
   timings;
2. raw ``SentenceTransformer.encode`` on the very chunk texts the pipeline stored (read back
   from the index's SQLite ``chunks`` table), same model, batch size and normalisation: the
   pipeline's chunks/s as a share of it;
3. an unchanged re-ingest, in this process and as ``python -m ingest`` in a subprocess (whose
   wall time includes Python start-up), each as a share of the first ingest;
4. hybrid search latency (k=10, query embedding included) over a few hundred distinct queries,
   after a warm-up;
5. peak RSS of this process and of its children (parsing workers, the CLI run).

It prints a table and writes everything, with machine information, to ``--out`` as JSON.
The machine's load average is recorded beside each phase: on a shared 2-core machine, other
processes' work shows up directly in the wall times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import rag  # noqa: E402,F401  (telemetry off before anything heavy loads)
from bench.corpus import make_queries, sections_for_chunks, write_corpus  # noqa: E402
from rag.config import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CMRC_DOCS = REPO.parent / "shared" / "data" / "cmrc2018" / "docs"
CMRC_QA = CMRC_DOCS.parent / "qa.jsonl"

# The bars.
BAR_RATIO = 0.85  # pipeline chunks/s >= 85% of raw encode
BAR_REINGEST = 0.03  # unchanged re-ingest <= 3% of the first ingest
BAR_P95_MS = 30.0  # hybrid search p95 at 100k chunks
BAR_SEARCH_CHUNKS = 100_000


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Phase:
    """Wall time, CPU time (this process and its children) and machine load of one step."""

    name: str
    wall_s: float = 0.0
    cpu_self_s: float = 0.0
    cpu_children_s: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0
    peak_rss_mb: float = 0.0  # this process, since it started (ru_maxrss)
    peak_rss_children_mb: float = 0.0  # all child processes together, sampled during this step
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


def _peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # KiB on Linux


class ChildRssSampler:
    """The largest combined RSS of this process's children, sampled twice a second.

    ``ru_maxrss`` of children is no use here: Linux carries the parent's high-water mark into
    a child that forks and execs, so every child would look as big as this process.
    """

    def __init__(self, every: float = 0.5) -> None:
        import psutil

        self._me = psutil.Process()
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_bytes = 0

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for child in self._me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self._every)

    def __enter__(self) -> ChildRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def phase(name: str, log: bool = True, children_every: float | None = None) -> Iterator[Phase]:
    """Time a step; ``children_every`` samples child processes' RSS at that interval (s)."""
    record = Phase(name, load_before=os.getloadavg()[0])
    if log:
        _log(f"[{name}] start (load average {record.load_before:.2f})")
    before = os.times()
    started = time.perf_counter()
    sampler = ChildRssSampler(children_every) if children_every else None
    if sampler is None:
        yield record
    else:
        with sampler:
            yield record
    record.wall_s = time.perf_counter() - started
    after = os.times()
    record.cpu_self_s = (after.user - before.user) + (after.system - before.system)
    record.cpu_children_s = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    record.load_after = os.getloadavg()[0]
    record.peak_rss_mb = _peak_rss_mb(resource.RUSAGE_SELF)
    record.peak_rss_children_mb = sampler.peak_bytes / 2**20 if sampler else 0.0
    if log:
        _log(
            f"[{name}] {record.wall_s:.1f} s wall, {record.cpu_self_s:.1f} s CPU here, "
            f"{record.cpu_children_s:.1f} s CPU in children, load {record.load_after:.2f}"
        )


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def pick(q: float) -> float:
        # Nearest-rank percentile: the smallest sample with at least q of the samples at or below it.
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]

    return {
        "n": len(ordered),
        "p50_ms": round(pick(0.50), 2),
        "p95_ms": round(pick(0.95), 2),
        "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "max_ms": round(ordered[-1], 2),
    }


# -- machine ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import faiss
    import numpy
    import psutil
    import sentence_transformers
    import torch
    import transformers

    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.cuda.is_available(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "faiss": getattr(faiss, "__version__", "?"),
            "numpy": numpy.__version__,
        },
        "git": _git_state(),
    }


def _git_state() -> dict[str, Any]:
    """The commit benchmarked and whether the tree had local changes (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


# -- the steps -------------------------------------------------------------------------------


def first_ingest(docs: Path, settings: Settings) -> tuple[Phase, Any]:
    from ingest.progress import PlainProgress
    from rag.energy import EnergyMeter
    from rag.ingestion import ingest_folder

    # Started before the timed step: codecarbon's own start (~2 s) is not ingest time.
    meter = EnergyMeter(settings.energy_country, "process").start()
    try:
        with phase("first ingest", children_every=0.5) as record:
            report = ingest_folder(docs, settings, progress=PlainProgress(every=30.0))
    finally:
        energy = meter.stop()
    files = report.files_new + report.files_changed
    record.extra = {
        "files": files,
        "files_failed": report.files_failed,
        "chunks": report.chunks_embedded,
        "files_per_s": round(files / record.wall_s, 2),
        "chunks_per_s": round(report.chunks_embedded / record.wall_s, 2),
        "report_seconds": report.seconds,
        "stage_seconds": report.stage_seconds,
        "dense_kind": report.dense_kind,
        "index_mb": round(report.index_bytes / 1e6, 1),
        # this process and its parse workers (rag/energy.py: how codecarbon estimates here)
        "energy": energy.to_dict(files, "documents"),
    }
    _log(f"[first ingest] {energy.summary_line(files, 'documents')}")
    if report.failed:
        record.extra["failed_examples"] = report.failed[:5]
    return record, report


def stored_chunks(index_dir: Path) -> tuple[list[str], Any]:
    """Chunk texts and their stored vectors, in row order, from the index's SQLite file."""
    import numpy as np

    from rag.index import DB_NAME

    db = sqlite3.connect(f"file:{index_dir / DB_NAME}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT text, vector FROM chunks ORDER BY row").fetchall()
    finally:
        db.close()
    texts = [r[0] for r in rows]
    vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
    return texts, vectors


def raw_encode(index_dir: Path, settings: Settings, first: Phase) -> Phase:
    """Plain ``SentenceTransformer.encode`` over the stored chunk texts, timed without loading."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from rag.embedding import pick_device, resolve_model_path

    texts, stored = stored_chunks(index_dir)
    started = time.perf_counter()
    model = SentenceTransformer(resolve_model_path(settings.embed_model), device=pick_device(settings.device))
    model.eval()
    load_s = time.perf_counter() - started
    tokens = model.tokenizer(
        texts,
        add_special_tokens=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        truncation=True,
        max_length=model.max_seq_length,
        verbose=False,
    )["input_ids"]
    lengths = [len(t) for t in tokens]
    with phase("raw encode") as record:
        vectors = model.encode(
            texts,
            batch_size=settings.embed_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    chunks_per_s = len(texts) / record.wall_s if record.wall_s else 0.0
    pipeline_per_s = len(texts) / first.wall_s if first.wall_s else 0.0
    pipeline_cpu = first.cpu_self_s + first.cpu_children_s
    # The same texts through the same model must give the same vectors; a large difference
    # would mean the pipeline embedded something else than what it stored.
    max_diff = float(np.abs(vectors - stored).max()) if len(texts) else 0.0
    record.extra = {
        "chunks": len(texts),
        "model_load_s": round(load_s, 2),
        "batch_size": settings.embed_batch_size,
        "chunks_per_s": round(chunks_per_s, 2),
        "tokens_per_chunk_mean": round(statistics.fmean(lengths), 1) if lengths else 0,
        "tokens_per_chunk_p50": statistics.median(lengths) if lengths else 0,
        "tokens_per_chunk_max": max(lengths) if lengths else 0,
        "pipeline_over_raw": round(pipeline_per_s / chunks_per_s, 3) if chunks_per_s else 0.0,
        # CPU seconds the pipeline spent (main process and parsing workers) per CPU second of
        # raw encoding: on a busy machine this is steadier than the wall-time ratio.
        "pipeline_cpu_over_raw_cpu": round(pipeline_cpu / record.cpu_self_s, 3) if record.cpu_self_s else 0.0,
        "max_abs_diff_vs_stored": round(max_diff, 6),
    }
    del model
    return record


def reingest_in_process(docs: Path, settings: Settings, first_wall_s: float) -> Phase:
    from rag.ingestion import ingest_folder

    with phase("re-ingest (in process)") as record:
        report = ingest_folder(docs, settings)
    record.extra = {
        "files_unchanged": report.files_unchanged,
        "chunks_embedded": report.chunks_embedded,
        "stage_seconds": report.stage_seconds,
        "share_of_first": round(record.wall_s / first_wall_s, 4),
    }
    if report.chunks_embedded or report.files_new or report.files_changed:
        raise RuntimeError(f"the unchanged re-ingest did work it should not have: {report.to_dict()}")
    return record


def reingest_cli(docs: Path, settings: Settings, first_wall_s: float) -> Phase:
    command = [
        sys.executable,
        "-m",
        "ingest",
        str(docs),
        "--index-dir",
        str(settings.index_dir),
        "--quiet",
        "--chunk-tokens",
        str(settings.chunk_tokens),
        "--chunk-overlap",
        str(settings.chunk_overlap),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # Python start-up and imports alone, to tell them apart from the re-ingest's own work.
    startup = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ingest", "--help"], cwd=REPO, env=env, capture_output=True, check=True)
        startup.append(time.perf_counter() - t)
    with phase("re-ingest (CLI subprocess)", children_every=0.05) as record:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    record.extra = {
        "command": " ".join(command),
        "share_of_first": round(record.wall_s / first_wall_s, 4),
        "cli_help_startup_s": round(min(startup), 3),
        "summary": result.stdout.strip().splitlines(),
    }
    return record


def search_latency(settings: Settings, queries: list[tuple[str, str]], warmup: list[tuple[str, str]]) -> Phase:
    """Hybrid search, k=10, one query at a time, the way the API serves them."""
    from rag.index import Index
    from rag.text import search_tokens

    with phase("search") as record:
        t = time.perf_counter()
        index = Index.open(settings)
        index.embedder.warm_up()
        open_s = time.perf_counter() - t
        for _, text in warmup:
            index.search(text, k=10, mode="hybrid")
        times: dict[str, list[float]] = {"all": [], "en": [], "zh": []}
        empty = 0
        for lang, text in queries:
            t = time.perf_counter()
            hits = index.search(text, k=10, mode="hybrid")
            ms = (time.perf_counter() - t) * 1000
            times["all"].append(ms)
            times[lang].append(ms)
            empty += not hits
        # Where a query's time goes, measured separately so it does not slow the pass above.
        # (The index's dense and sparse parts are private; a benchmark may look inside.)
        parts: dict[str, list[float]] = {
            "embed_query": [],
            "unknown_ratio": [],
            "dense": [],
            "bm25_tokens": [],
            "bm25": [],
        }
        dense, sparse = getattr(index, "_dense", None), getattr(index, "_sparse", None)
        depth = max(10, settings.retrieve_k)
        for _, text in queries:
            t0 = time.perf_counter()
            vector = index.embed_query(text)
            t1 = time.perf_counter()
            index.embedder.unknown_ratio(text)
            t2 = time.perf_counter()
            if dense is not None:
                dense.search(vector, depth)
            t3 = time.perf_counter()
            tokens = search_tokens(text)
            t4 = time.perf_counter()
            if sparse is not None:
                sparse.search(tokens, depth)
            t5 = time.perf_counter()
            for name, a, b in (
                ("embed_query", t0, t1),
                ("unknown_ratio", t1, t2),
                ("dense", t2, t3),
                ("bm25_tokens", t3, t4),
                ("bm25", t4, t5),
            ):
                parts[name].append((b - a) * 1000)
    record.extra = {
        "index_chunks": index.size,
        "dense_kind": index.meta.get("dense_kind"),
        "open_s": round(open_s, 2),
        "warmup_queries": len(warmup),
        "queries_without_hits": empty,
        "latency": {k: percentiles(v) for k, v in times.items() if v},
        "parts": {k: percentiles(v) for k, v in parts.items() if v},
    }
    return record


# -- corpora ---------------------------------------------------------------------------------


def cmrc_corpus(workdir: Path, quick: bool) -> Path:
    if not CMRC_DOCS.is_dir():
        raise SystemExit(f"{CMRC_DOCS} is missing; put the CMRC 2018 documents there or use --corpus synthetic.")
    if not quick:
        return CMRC_DOCS
    # A slice, copied so the ingest sees the same folder shape; >= 16 files keeps the
    # worker-pool path of the full run.
    root = workdir / "cmrc-quick"
    root.mkdir(parents=True, exist_ok=True)
    for path in sorted(CMRC_DOCS.glob("*.txt"))[:16]:
        shutil.copy2(path, root / path.name)
    return root


def cmrc_queries(count: int) -> list[tuple[str, str]]:
    """CMRC questions (Chinese) and generated English keyword queries, alternating."""
    questions: list[str] = []
    if CMRC_QA.is_file():
        seen: set[str] = set()
        for line in CMRC_QA.read_text(encoding="utf-8").splitlines():
            question = json.loads(line)["question"]
            if question not in seen:
                seen.add(question)
                questions.append(question)
    english = [text for lang, text in make_queries(count * 2, seed=11) if lang == "en"]
    out: list[tuple[str, str]] = []
    for i in range(count):
        if i % 2 and questions:
            out.append(("zh", questions[(i // 2) % len(questions)]))
        else:
            out.append(("en", english[i // 2]))
    return out


def run_corpus(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"corpus": name}
    index_dir = workdir / f"index-{name}"
    if index_dir.exists():
        shutil.rmtree(index_dir)
    if name == "cmrc":
        docs = cmrc_corpus(workdir, args.quick)
        settings = Settings.load(overrides={"index_dir": index_dir, "workers": args.workers})
        queries = cmrc_queries(args.queries)
        warmup = cmrc_queries(args.queries + args.warmup)[args.queries :]
        result["docs"] = str(docs)
    else:
        settings = Settings.load(
            overrides={
                "index_dir": index_dir,
                "workers": args.workers,
                "chunk_tokens": args.synthetic_chunk_tokens,
                "chunk_overlap": min(16, args.synthetic_chunk_tokens // 4),
            }
        )
        docs = workdir / "synthetic"
        if docs.exists():
            shutil.rmtree(docs)
        counter = _token_counter(settings)
        with phase("generate corpus") as record:
            corpus = write_corpus(
                docs,
                sections_for_chunks(args.chunks),
                chunk_tokens=settings.chunk_tokens,
                seed=args.seed,
                count_tokens=counter,
            )
        result["generate"] = record.to_dict() | {"corpus": corpus.to_dict()}
        all_queries = make_queries(args.queries + args.warmup, seed=args.seed + 1, corpus_seed=args.seed)
        queries, warmup = all_queries[: args.queries], all_queries[args.queries :]
    result["settings"] = {
        k: v
        for k, v in settings.to_dict().items()
        if k
        in (
            "chunk_tokens",
            "chunk_overlap",
            "embed_model",
            "embed_batch_size",
            "workers",
            "exact_search_max",
            "hnsw_m",
            "hnsw_ef_construction",
            "hnsw_ef_search",
            "retrieve_k",
            "device",
        )
    }

    first, report = first_ingest(docs, settings)
    result["first_ingest"] = first.to_dict()
    _checkpoint(args, result, name)
    result["raw_encode"] = raw_encode(index_dir, settings, first).to_dict()
    _checkpoint(args, result, name)
    result["reingest_in_process"] = reingest_in_process(docs, settings, first.wall_s).to_dict()
    result["reingest_cli"] = reingest_cli(docs, settings, first.wall_s).to_dict()
    _checkpoint(args, result, name)
    result["search"] = search_latency(settings, queries, warmup).to_dict()
    result["bars"] = bars(result)
    _checkpoint(args, result, name)
    return result


def _token_counter(settings: Settings):
    """The embedder's tokenizer, as the chunker counts with it (the model itself is not loaded)."""
    from transformers import AutoTokenizer

    from rag.embedding import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(settings.embed_model))

    def count(texts):
        ids = tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        return [len(i) for i in ids]

    return count


def bars(result: dict[str, Any]) -> dict[str, Any]:
    first = result["first_ingest"]
    latency = result["search"]["latency"]["all"]
    chunks = result["search"]["index_chunks"]
    return {
        "pipeline_over_raw >= 0.85": _verdict(result["raw_encode"]["pipeline_over_raw"], BAR_RATIO, higher=True),
        "reingest_in_process <= 0.03": _verdict(result["reingest_in_process"]["share_of_first"], BAR_REINGEST),
        "reingest_cli <= 0.03": _verdict(result["reingest_cli"]["share_of_first"], BAR_REINGEST),
        "search_p95_ms <= 30": _verdict(latency["p95_ms"], BAR_P95_MS)
        | (
            {}
            if chunks >= BAR_SEARCH_CHUNKS
            else {"note": f"bar is for {BAR_SEARCH_CHUNKS} chunks; index has {chunks}"}
        ),
        "chunks": first["chunks"],
    }


def _verdict(value: float, bar: float, higher: bool = False) -> dict[str, Any]:
    ok = value >= bar if higher else value <= bar
    return {"value": value, "bar": bar, "pass": ok}


# -- output ----------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _checkpoint(args: argparse.Namespace, result: dict[str, Any], name: str) -> None:
    """Write what is measured so far, so a long run that dies late still leaves its figures."""
    _STATE.setdefault("corpora", {})[name] = result
    _write(args)


def _write(args: argparse.Namespace) -> None:
    _STATE["peak_rss_mb"] = round(_peak_rss_mb(resource.RUSAGE_SELF), 1)
    _STATE["peak_rss_children_mb"] = round(
        max(
            (
                p.get("peak_rss_children_mb", 0.0)
                for c in _STATE.get("corpora", {}).values()
                for p in c.values()
                if isinstance(p, dict)
            ),
            default=0.0,
        ),
        1,
    )
    _STATE["load_average_now"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(_STATE, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(out)


def _energy_cell(energy: dict[str, Any], unit: str) -> str:
    """kWh / g CO2e per 1,000 ``unit`` for a table cell, or why there is none."""
    per = energy.get(f"per_1000_{unit}") if energy.get("measured") else None
    if not per:
        return "not measured" + (f" ({energy.get('reason')})" if energy.get("reason") else "")
    return f"{per['kwh']:.3g} / {per['g_co2e']:.3g}"


def format_table(state: dict[str, Any]) -> str:
    corpora = state.get("corpora", {})
    names = list(corpora)
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, getter) -> None:
        cells = []
        for name in names:
            try:
                cells.append(getter(corpora[name]))
            except (KeyError, TypeError):
                cells.append("-")
        rows.append((label, cells))

    def mark(c, key):
        verdict = c["bars"][key]
        return "PASS" if verdict["pass"] else "FAIL"

    row("files", lambda c: f"{c['first_ingest']['files']}")
    row("chunks", lambda c: f"{c['first_ingest']['chunks']}")
    row(
        "chunk tokens (setting / mean incl. CLS,SEP)",
        lambda c: f"{c['settings']['chunk_tokens']} / {c['raw_encode']['tokens_per_chunk_mean']}",
    )
    row("first ingest wall s", lambda c: f"{c['first_ingest']['wall_s']:.1f}")
    row("  files/s", lambda c: f"{c['first_ingest']['files_per_s']:.2f}")
    row("  chunks/s (pipeline)", lambda c: f"{c['first_ingest']['chunks_per_s']:.2f}")
    row("  stages s", lambda c: ", ".join(f"{k}={v:.1f}" for k, v in c["first_ingest"]["stage_seconds"].items()))
    row("  energy kWh / g CO2e per 1,000 files", lambda c: _energy_cell(c["first_ingest"]["energy"], "documents"))
    row("raw encode s", lambda c: f"{c['raw_encode']['wall_s']:.1f}")
    row("  chunks/s (raw)", lambda c: f"{c['raw_encode']['chunks_per_s']:.2f}")
    row(
        "pipeline / raw (bar >= 0.85)",
        lambda c: f"{c['raw_encode']['pipeline_over_raw']:.3f} {mark(c, 'pipeline_over_raw >= 0.85')}",
    )
    row(
        "  CPU s: pipeline main+workers / raw",
        lambda c: (
            f"{c['first_ingest']['cpu_self_s']:.0f}+{c['first_ingest']['cpu_children_s']:.0f} / "
            f"{c['raw_encode']['cpu_self_s']:.0f}"
        ),
    )
    row(
        "re-ingest in-process s (share)",
        lambda c: (
            f"{c['reingest_in_process']['wall_s']:.2f} ({c['reingest_in_process']['share_of_first']:.2%}) "
            f"{mark(c, 'reingest_in_process <= 0.03')}"
        ),
    )
    row(
        "re-ingest CLI s (share)",
        lambda c: (
            f"{c['reingest_cli']['wall_s']:.2f} ({c['reingest_cli']['share_of_first']:.2%}) "
            f"{mark(c, 'reingest_cli <= 0.03')}"
        ),
    )
    row("  of which CLI start-up s", lambda c: f"{c['reingest_cli']['cli_help_startup_s']:.2f}")
    row("search index chunks / kind", lambda c: f"{c['search']['index_chunks']} / {c['search']['dense_kind']}")
    row(
        "search p50 / p95 / p99 ms",
        lambda c: (
            "{p50_ms:.1f} / {p95_ms:.1f} / {p99_ms:.1f}".format(**c["search"]["latency"]["all"])
            + f" {mark(c, 'search_p95_ms <= 30')}"
            + ("" if "note" not in c["bars"]["search_p95_ms <= 30"] else "*")
        ),
    )
    row(
        "  en p95 / zh p95 ms",
        lambda c: f"{c['search']['latency']['en']['p95_ms']:.1f} / {c['search']['latency']['zh']['p95_ms']:.1f}",
    )
    row("  parts p50 ms", lambda c: ", ".join(f"{k}={v['p50_ms']:.1f}" for k, v in c["search"]["parts"].items()))
    row(
        "peak RSS MB: process / parse workers",
        lambda c: f"{c['search']['peak_rss_mb']:.0f} / {c['first_ingest']['peak_rss_children_mb']:.0f}",
    )
    row("peak RSS MB: CLI re-ingest", lambda c: f"{c['reingest_cli']['peak_rss_children_mb']:.0f}")
    row(
        "load average (ingest start/end, raw end)",
        lambda c: (
            f"{c['first_ingest']['load_before']:.1f} / {c['first_ingest']['load_after']:.1f}, "
            f"{c['raw_encode']['load_after']:.1f}"
        ),
    )

    width = max(len(label) for label, _ in rows)
    col = [max([len(n)] + [len(cells[i]) for _, cells in rows]) for i, n in enumerate(names)]
    lines = [" " * width + " | " + " | ".join(n.ljust(col[i]) for i, n in enumerate(names))]
    lines.append("-" * len(lines[0]))
    for label, cells in rows:
        lines.append(label.ljust(width) + " | " + " | ".join(c.ljust(col[i]) for i, c in enumerate(cells)))
    if any("note" in c.get("bars", {}).get("search_p95_ms <= 30", {}) for c in corpora.values()):
        lines.append(f"* the search bar is set for {BAR_SEARCH_CHUNKS} chunks; this index is smaller.")
    method = next(
        (
            c["first_ingest"]["energy"].get("method")
            for c in corpora.values()
            if c.get("first_ingest", {}).get("energy", {}).get("measured")
        ),
        None,
    )
    if method:
        lines.append(f"energy: {method}")
    machine = state.get("machine", {})
    lines.append(
        f"machine: {machine.get('cpu_model')}, {machine.get('usable_cores')} cores, "
        f"torch threads {machine.get('torch_threads')}; peak RSS {state.get('peak_rss_mb')} MB "
        f"(children {state.get('peak_rss_children_mb')} MB)"
    )
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=["cmrc", "synthetic", "both"], default="both")
    parser.add_argument(
        "--chunks",
        type=int,
        default=None,
        help=f"chunks in the generated corpus (default {BAR_SEARCH_CHUNKS}; 300 with --quick)",
    )
    parser.add_argument(
        "--synthetic-chunk-tokens",
        type=int,
        default=64,
        help="chunk size for the generated corpus (default 64; sections are 60-85%% of it)",
    )
    parser.add_argument("--workers", type=int, default=None, help="parsing processes (default: the setting, 1)")
    parser.add_argument(
        "--queries", type=int, default=None, help="distinct measured queries (default 300; 40 with --quick)"
    )
    parser.add_argument("--warmup", type=int, default=30, help="warm-up queries before measuring")
    parser.add_argument("--seed", type=int, default=2018, help="seed of the generated corpus and its queries")
    parser.add_argument("--workdir", help="where corpora and indexes go (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (indexes, corpus) afterwards")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test in under two minutes")
    parser.add_argument(
        "--out", default=str(REPO / "bench" / "results" / "ingest_bench.json"), help="JSON results file"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.chunks = args.chunks or (300 if args.quick else BAR_SEARCH_CHUNKS)
    args.queries = args.queries or (40 if args.quick else 300)
    if args.quick:
        args.warmup = min(args.warmup, 5)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _STATE.update(
        {
            "command": " ".join(
                [Path(sys.executable).name, "-m", "bench.ingest_bench", *(argv if argv is not None else sys.argv[1:])]
            ),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": args.quick,
            "machine": machine_info(),
            "workdir": str(workdir),
        }
    )
    names = ["cmrc", "synthetic"] if args.corpus == "both" else [args.corpus]
    started = time.perf_counter()
    try:
        for name in names:
            _log(f"=== corpus {name} ===")
            run_corpus(name, args, workdir)
    finally:
        _STATE["total_s"] = round(time.perf_counter() - started, 1)
        _write(args)
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(format_table(_STATE))
    print(f"results: {args.out}")
    failed = [
        f"{name}: {key}"
        for name, c in _STATE.get("corpora", {}).items()
        for key, v in c.get("bars", {}).items()
        if isinstance(v, dict) and not v["pass"] and "note" not in v
    ]
    if failed:
        print("bars missed: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
