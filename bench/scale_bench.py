"""``python -m bench.scale_bench --chunks 1000000``: a million-chunk index opened, searched and updated.

The store is synthetic; the path that reads and updates it is the real one:

1. **Build** (synthetic, in this process): ``--chunks`` rows in ``chunks.sqlite`` (texts, tokens
   and float32 vectors, as an ingest writes them), half English and half Chinese texts of ~60
   words drawn by frequency from real vocabularies (words of ../shared/data's XQuAD documents, or
   of bench/data/docs without it; jieba's dictionary), and random unit vectors of the embedder's
   dimension (``rag.embedding.make_embedder``: 384 for MiniLM, 512 for use-multilingual-v3). The
   vector store (``--backend``, default ``faiss-ivf-sq8``) is filled through its ``add`` and
   ``save``; the BM25 base segment is built straight from numpy arrays (the same segment format).
   These chunks belong to no document of the folder, so ingests never touch them.
2. **Open and search** (a fresh ``python`` process, the real ``rag.index.Index``): open time, RSS
   after opening and after the queries, then hybrid search latency (``Index.search``, k=10, with the
   query embedding) over real English and Chinese questions, p50/p95, and dense-only and BM25-only
   beside it; a question about one of the real files must find it among the synthetic million.
3. **Incremental ingest** (``rag.ingestion.ingest_folder``, real parser and embedder, loaded once
   before as the API server has it): 10 real files (bench/data/docs) added, then all 10 changed,
   then 5 deleted; for each, the wall time, the store bytes the ingest wrote, and what the process
   wrote to disk (``/proc/self/io`` write_bytes, SQLite included), against the size of the index;
   the same change through ``python -m ingest`` (model loading included) once.
4. Search again in a fresh process (over the base, deltas and deletion sets).

Writes JSON to ``--out`` and prints a summary. ``--chunks 20000`` is the small mode a test runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

import rag  # noqa: E402,F401
from rag.config import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL_DOCS = REPO / "bench" / "data" / "docs"
XQUAD_DOCS = REPO.parent / "shared" / "data" / "xquad-en" / "docs"
WORDS_PER_CHUNK = 60
BATCH = 50_000

# Real questions, both languages; the first ones are about the real files the bench ingests.
QUESTIONS = [
    ("How long should sourdough dough rise before baking?", "sourdough-baking.md"),
    ("员工每年有几天带薪年假？", "公司年假制度.md"),
    ("健身房的营业时间是几点到几点？", "健身房会员须知.txt"),
    ("咖啡冲煮的水温应该是多少度？", "咖啡冲煮指南.md"),
    # About a file the bench deletes (the first five of the ten sorted by name): must not be found after.
    ("How long must the SK200 kettle cool down before it is descaled?", "sk200-kettle-faq.txt"),
]
MORE_QUESTIONS = [
    "When was the harbour museum founded?",
    "How many watts does the solar kit panel give?",
    "How long should sourdough rise before baking?",
    "Can I work remotely on Fridays?",
    "What temperature is best for brewing coffee?",
    "Which bin do batteries go in?",
    "What is the nightly hotel limit in London?",
    "How do I reset the router?",
    "健身房几点关门？",
    "空气净化器的滤网多久更换一次？",
    "咖啡豆应该怎么保存？",
    "厨余垃圾应该怎么分类？",
    "图书馆每次最多可以借几本书？",
    "绿茶用多少度的水冲泡？",
    "Who designed the museum building?",
    "What is the maximum rental time for a bike?",
    "年假可以顺延到下一年吗？",
    "列车上可以吸烟吗？",
    "How much flour does the recipe need?",
    "What does the warranty of the kettle cover?",
]


# -- measuring --------------------------------------------------------------------------------


def rss_mb() -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":")
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mb": out.get("VmRSS", 0.0), "peak_rss_mb": out.get("VmHWM", 0.0)}


def disk_writes() -> int:
    """Bytes this process has caused to be written to storage (/proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


# -- the synthetic corpus ----------------------------------------------------------------------


def english_vocabulary() -> tuple[list[str], np.ndarray]:
    """Words and their frequencies in real English text (XQuAD documents, else bench/data/docs)."""
    from rag.text import search_tokens

    files = sorted(XQUAD_DOCS.glob("*"))[:400] if XQUAD_DOCS.is_dir() else []
    files += [p for p in REAL_DOCS.iterdir() if p.suffix in (".md", ".txt")]
    counts: Counter[str] = Counter()
    for path in files:
        counts.update(t for t in search_tokens(path.read_text(encoding="utf-8", errors="replace")) if t.isascii())
    words = [w for w, _ in counts.most_common(40_000)]
    return words, np.array([counts[w] for w in words], dtype=np.float64)


def chinese_vocabulary() -> tuple[list[str], np.ndarray]:
    """Chinese words by frequency from jieba's dictionary."""
    import jieba

    rows = []
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                rows.append((parts[0], int(parts[1])))
    rows.sort(key=lambda r: -r[1])
    rows = rows[:50_000]
    return [w for w, _ in rows], np.array([f for _, f in rows], dtype=np.float64)


class SyntheticCorpus:
    """Chunks of ~60 words, alternately English and Chinese, words drawn by frequency."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        en_words, en_freq = english_vocabulary()
        zh_words, zh_freq = chinese_vocabulary()
        # One vocabulary for both: English words first, then Chinese words, then the single
        # characters of Chinese words (search_tokens emits those too).
        self.term: dict[str, int] = {}
        for word in en_words + zh_words + sorted({c for w in zh_words for c in w}):
            self.term.setdefault(word, len(self.term))
        self.words = list(self.term)
        self.en_cdf = np.cumsum(en_freq) / en_freq.sum()
        self.zh_cdf = np.cumsum(zh_freq) / zh_freq.sum()
        self.en_cdf[-1] = self.zh_cdf[-1] = 1.0
        self.en_ids = np.array([self.term[w] for w in en_words], dtype=np.int32)
        self.zh_ids = np.array([self.term[w] for w in zh_words], dtype=np.int32)
        self.zh_chars = [np.array([self.term[c] for c in w] if len(w) > 1 else [], dtype=np.int32) for w in zh_words]

    def batch(self, start: int, n: int) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
        """``n`` chunks from number ``start``: texts, term numbers (all chunks in a row), lengths, token strings."""
        counts = self.rng.integers(WORDS_PER_CHUNK // 2, WORDS_PER_CHUNK * 3 // 2, size=n)
        english = (np.arange(start, start + n) % 2) == 0
        counts[~english] //= 2  # a Chinese word is about two characters, and its characters are tokens too
        en_picks = np.searchsorted(self.en_cdf, self.rng.random(int(counts[english].sum())))
        zh_picks = np.searchsorted(self.zh_cdf, self.rng.random(int(counts[~english].sum())))
        texts, term_parts, token_texts = [], [], []
        lengths = np.zeros(n, dtype=np.int64)
        en_at = zh_at = 0
        words = self.words
        for j in range(n):
            count = int(counts[j])
            if english[j]:
                terms = self.en_ids[en_picks[en_at : en_at + count]]
                en_at += count
                texts.append(" ".join([words[t] for t in terms]) + ".")
            else:
                picks = zh_picks[zh_at : zh_at + count]
                zh_at += count
                word_terms = self.zh_ids[picks]
                texts.append("".join([words[t] for t in word_terms]) + "。")
                terms = np.concatenate([word_terms] + [self.zh_chars[i] for i in picks])
            term_parts.append(terms)
            lengths[j] = len(terms)
            token_texts.append(" ".join([words[t] for t in terms]))
        return texts, np.concatenate(term_parts), lengths, token_texts


def build(settings: Settings, chunks: int, dimension: int, log) -> dict[str, Any]:
    """Write the synthetic index (generation 1) into ``settings.index_dir``."""
    from rag.documents import Chunk
    from rag.index import DB_NAME
    from rag.ingestion import processing_signature
    from rag.stores.bm25 import BM25Store, segment_from_arrays
    from rag.stores.chunk_store import ChunkStore
    from rag.stores.registry import StoreOpener
    from rag.stores.segments import DeletionSet

    directory = Path(settings.index_dir)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpus = SyntheticCorpus()
    store = ChunkStore(directory / DB_NAME)
    vectors_store = StoreOpener(settings, directory).vector(None, dimension)
    rng = np.random.default_rng(1)
    term_parts, length_parts = [], []
    timings: dict[str, float] = {}
    t = time.perf_counter()
    store.begin()
    for start in range(0, chunks, BATCH):
        n = min(BATCH, chunks - start)
        texts, terms, lengths, token_texts = corpus.batch(start, n)
        vectors = rng.standard_normal((n, dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [
            Chunk(
                f"synthetic-{start + j:08d}",
                texts[j],
                f"synthetic/{(start + j) // 10:06d}.txt",
                None,
                None,
                "text",
                0,
                len(texts[j]),
            )
            for j in range(n)
        ]
        store._db.executemany(
            "INSERT INTO chunks (id, source, page, section, kind, start, end, text, tokens, vector)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (c.id, c.source, c.page, c.section, c.kind, c.start, c.end, c.text, tok, v.tobytes())
                for c, tok, v in zip(rows, token_texts, vectors)
            ),
        )
        first_row = int(store._db.execute("SELECT row FROM chunks WHERE id = ?", (rows[0].id,)).fetchone()[0])
        ids = np.arange(first_row, first_row + n, dtype=np.int64)
        vectors_store.add(ids, vectors)
        term_parts.append(terms)
        length_parts.append(lengths)
        log(f"  {start + n:,} chunks written ({time.perf_counter() - started:.0f} s)")
    timings["chunks_sqlite_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    vector_state = vectors_store.save(1)
    timings["vector_store_s"] = round(time.perf_counter() - t, 1)
    del vectors_store
    t = time.perf_counter()
    all_rows = store.all_rows()
    segment = segment_from_arrays(np.concatenate(term_parts), np.concatenate(length_parts), dict(corpus.term), all_rows)
    del term_parts
    keywords = BM25Store(directory, [], DeletionSet())
    written = keywords._write(1, "", segment)
    keyword_state = {"name": "bm25", "segments": [{"file": written.file}], "deleted": None}
    timings["keyword_store_s"] = round(time.perf_counter() - t, 1)
    store.set_meta(
        {
            "generation": 1,
            "embed_model": settings.embed_model,
            "dimension": dimension,
            "dense_kind": vector_state.get("kind", ""),
            "vector_store": json.dumps(vector_state),
            "keyword_store": json.dumps(keyword_state),
            "documents": 0,
            "chunks": chunks,
            "updated_at": time.time(),
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap,
            "processing": processing_signature(settings),
            "root": "",
        }
    )
    store.commit()
    store.close()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "stages": timings,
        "load": load_average(),
        "index_mb": round(folder_bytes(directory) / 1e6, 1),
        **rss_mb(),
    }


# -- searching (in a fresh process) -------------------------------------------------------------


def measure_search(settings: Settings, rounds: int) -> dict[str, Any]:
    """Open the index and time searches; run in its own process (python -m bench.scale_bench --search)."""
    from rag.embedding import make_embedder
    from rag.index import Index

    baseline = rss_mb()
    t = time.perf_counter()
    embedder = make_embedder(settings)
    embedder.warm_up_queries()
    load_model_s = time.perf_counter() - t
    model_rss = rss_mb()
    t = time.perf_counter()
    index = Index.open(settings, embedder=embedder)
    open_s = time.perf_counter() - t
    opened = rss_mb()
    questions = [q for q, _ in QUESTIONS] + MORE_QUESTIONS
    for q in questions[:4]:  # warm-up
        index.search(q, 10)
    times: dict[str, list[float]] = {"hybrid": [], "dense": [], "sparse": [], "embed": []}
    for _ in range(rounds):
        for q in questions:
            for mode in ("hybrid", "dense", "sparse"):
                t = time.perf_counter()
                index.search(q, 10, mode=mode)
                times[mode].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index.embed_query(q)
            times["embed"].append((time.perf_counter() - t) * 1000)
    # Recall of the vector store on planted neighbours: a stored vector plus noise (cosine ~0.9 to
    # it) is asked for; among random unit vectors its own row is the true nearest.
    import sqlite3

    db = sqlite3.connect(f"file:{Path(settings.index_dir) / 'chunks.sqlite'}?mode=ro", uri=True)
    top_row = db.execute("SELECT MAX(row) FROM chunks").fetchone()[0]
    rng = np.random.default_rng(7)
    picked = [int(r) for r in rng.choice(top_row, size=200, replace=False) + 1]
    planted = {
        r: np.frombuffer(v, dtype=np.float32)
        for r, v in db.execute(f"SELECT row, vector FROM chunks WHERE row IN ({','.join('?' * len(picked))})", picked)
    }
    db.close()
    rows = np.array(list(planted))
    vectors = np.stack([planted[r] for r in rows])
    noise = rng.standard_normal(vectors.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    queries = vectors + 0.45 * noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, found_rows = index._vectors.search(queries, 10)
    recall = {
        "recall_at_1": round(float(np.mean(found_rows[:, 0] == rows)), 3),
        "recall_at_10": round(float(np.mean([r in f for r, f in zip(rows, found_rows)])), 3),
        "query_cosine": round(float(np.mean(np.sum(queries * vectors, axis=1))), 3),
    }
    found = {}
    for question, _source in QUESTIONS:
        hits = index.search(question, 5)
        found[question] = [h.chunk.source for h in hits][:3]
    return {
        "chunks": index.size,
        "generation": index.generation,
        "open_s": round(open_s, 2),
        "load_model_s": round(load_model_s, 2),
        "rss_before_mb": baseline["rss_mb"],
        "rss_with_model_mb": model_rss["rss_mb"],
        "rss_open_mb": opened["rss_mb"],
        **rss_mb(),
        "queries": len(times["hybrid"]),
        **{f"{mode}_p50_ms": percentile(v, 50) for mode, v in times.items()},
        **{f"{mode}_p95_ms": percentile(v, 95) for mode, v in times.items()},
        "planted_neighbours": recall,
        "real_file_top3": found,
        "load": load_average(),
    }


def search_in_fresh_process(settings: Settings, rounds: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_VECTOR_STORE": settings.vector_store,
        "RAG_EMBED_MODEL": settings.embed_model,
    }
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale_bench", "--search", "--rounds", str(rounds)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the search process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- incremental ingests -----------------------------------------------------------------------


def timed_ingest(folder: Path, settings: Settings, embedder) -> dict[str, Any]:
    from rag.ingestion import ingest_folder

    directory = Path(settings.index_dir)
    size_before = folder_bytes(directory)
    writes = disk_writes()
    t = time.perf_counter()
    report = ingest_folder(folder, settings, embedder=embedder)
    seconds = time.perf_counter() - t
    os.sync()
    return {
        "seconds": round(seconds, 2),
        "files_new": report.files_new,
        "files_changed": report.files_changed,
        "files_removed": report.files_removed,
        "chunks_added": report.chunks_added,
        "chunks_removed": report.chunks_removed,
        "generation": report.generation,
        "store_bytes_written": report.bytes_written,
        "disk_bytes_written": disk_writes() - writes,
        "index_bytes_before": size_before,
        "index_bytes_after": folder_bytes(directory),
        "stages": report.stage_seconds,
        "load": load_average(),
    }


def change_files(folder: Path, names: list[str], round_: int) -> None:
    for name in names:
        path = folder / name
        note = (
            f"\n\nUpdate {round_}: this section was revised for the scale benchmark."
            if path.name.isascii()
            else f"\n\n第{round_}次更新：本节为规模测试修订。"
        )
        path.write_text(path.read_text(encoding="utf-8") + note + "\n", encoding="utf-8")


def cli_ingest(folder: Path, settings: Settings, backend: str) -> dict[str, Any]:
    """The same kind of change through ``python -m ingest`` (start-up and model loading included)."""
    t = time.perf_counter()
    cli = subprocess.run(
        [sys.executable, "-m", "ingest", str(folder), "--index-dir", str(settings.index_dir), "--quiet", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "RAG_VECTOR_STORE": backend},
    )
    report = json.loads(cli.stdout) if cli.returncode == 0 else {}
    return {
        "seconds": round(time.perf_counter() - t, 2),
        "returncode": cli.returncode,
        "files_changed": report.get("files_changed"),
        "store_bytes_written": report.get("bytes_written"),
        "stages": report.get("stage_seconds"),
        "load": load_average(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rag.embedding import make_embedder
    from rag.index import resolve_embed_model

    work = Path(args.dir)
    if work.exists() and not args.reuse:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    # embed_model "auto" names the default embedder for a new index; the index records the name.
    settings = resolve_embed_model(
        Settings.load(overrides={"index_dir": work / "index", "vector_store": args.backend}), rebuild=not args.reuse
    )
    embedder = make_embedder(settings)
    embedder.warm_up()
    dimension = int(embedder.dimension)
    result: dict[str, Any] = {
        "command": " ".join(["python -m bench.scale_bench", *sys.argv[1:]]),
        "chunks": args.chunks,
        "backend": args.backend,
        "embed_model": settings.embed_model,
        "dimension": dimension,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
    }

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if not (args.reuse and (work / "index" / "chunks.sqlite").exists()):
        log(f"building {args.chunks:,} synthetic chunks ({dimension}-d, {args.backend}) in {work / 'index'}")
        result["build"] = build(settings, args.chunks, dimension, log)
        log(f"  built: {result['build']}")
    log("searching in a fresh process")
    result["search"] = search_in_fresh_process(settings, args.rounds)
    log(f"  {result['search']}")

    folder = work / "docs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    names = sorted(p.name for p in REAL_DOCS.iterdir() if p.suffix in (".md", ".txt"))[:10]
    for name in names:
        shutil.copy(REAL_DOCS / name, folder / name)
    steps = {}
    log("ingest: 10 new real files")
    steps["add_10_files"] = timed_ingest(folder, settings, embedder)
    change_files(folder, names, 1)
    log("ingest: the 10 files changed")
    steps["change_10_files"] = timed_ingest(folder, settings, embedder)
    for name in names[:5]:
        (folder / name).unlink()
    log("ingest: 5 files deleted")
    steps["delete_5_files"] = timed_ingest(folder, settings, embedder)
    change_files(folder, names[5:], 2)
    if args.skip_cli:
        steps["change_5_files"] = timed_ingest(folder, settings, embedder)
    else:
        steps["cli_change_5_files"] = cli_ingest(folder, settings, args.backend)
    for step, figures in steps.items():
        log(f"  {step}: {figures}")
    result["ingests"] = steps
    log("searching again (base + deltas + deletion sets) in a fresh process")
    result["search_after"] = search_in_fresh_process(settings, args.rounds)
    deleted_sources = set(names[:5])
    after = result["search_after"]
    after["deleted_files_found"] = [s for top in after["real_file_top3"].values() for s in top if s in deleted_sources]
    after["real_files_in_top3"] = sum(
        source in after["real_file_top3"][question] for question, source in QUESTIONS if source not in deleted_sources
    )
    after["real_files_asked"] = sum(source not in deleted_sources for _, source in QUESTIONS)
    log(f"  {result['search_after']}")
    result["index_mb"] = round(folder_bytes(work / "index") / 1e6, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--backend", default="faiss-ivf-sq8")
    parser.add_argument("--dir", default="/tmp/rag-scale-bench")
    parser.add_argument("--rounds", type=int, default=5, help="times each of the 24 questions is asked per mode")
    parser.add_argument("--out", default="")
    parser.add_argument("--reuse", action="store_true", help="keep an index already built in --dir")
    parser.add_argument(
        "--skip-cli", action="store_true", help="do the last change in this process, not python -m ingest"
    )
    parser.add_argument("--search", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search:
        print(json.dumps(measure_search(Settings.load(), args.rounds)))
        return
    result = run(args)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
