"""The processing step: prepare the new and changed files and embed the chunks the index does
not hold yet. ``rag.ingestion.ray`` does the same work on a Ray cluster."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.config import Settings
from rag.documents import Chunk
from rag.ingestion.preparing import ChunkPlan, Prepared
from rag.ingestion.report import IngestReport, Progress
from rag.ingestion.scanning import SourceFile
from rag.ingestion.tokens import remembering
from rag.ingestion.workers import PARSE_WAVE_FILES, prepare_files

if TYPE_CHECKING:
    from rag.stores.chunk_store import ChunkStore, DocumentRecord

EMBED_BLOCK = 1024  # chunks embedded per call: big enough for length-sorted batching

# How the files are prepared: ``(files, plan, workers, chunker)`` -> Prepared items, in any order.
PrepareFiles = Callable[..., Iterable[Prepared]]


@dataclass
class FilesToProcess:
    """What :func:`rag.ingestion.run_ingest` hands the processing step: the files to (re)parse,
    the manifest as it was, the open store, and the report and stage timings to fill in."""

    to_parse: list[SourceFile]
    known: dict[str, DocumentRecord]
    store: ChunkStore
    report: IngestReport
    stages: dict[str, float]
    settings: Settings
    progress: Progress
    rebuild: bool


@dataclass
class ProcessedFiles:
    """What the processing step gives the commit: the chunks to add with their vectors and
    search tokens (row for row), each parsed file's chunk ids, and the files that failed."""

    new_chunks: list[Chunk]
    vectors: np.ndarray
    tokens: list[list[str]]
    per_file: list[tuple[SourceFile, list[str]]]
    failed_now: list[tuple[SourceFile, str]]


# What the processing step is: ``run_ingest`` calls it only when something changed.
ProcessStep = Callable[[FilesToProcess], ProcessedFiles]


class _EmbeddingQueue:
    """Chunks waiting for their vectors, embedded ``EMBED_BLOCK`` at a time; a file counts as
    done on ``progress`` once its chunks are embedded, so the ETA covers embedding."""

    def __init__(self, embed_documents: Callable[[list[str]], np.ndarray], progress: Progress) -> None:
        self.embed_documents = embed_documents
        self.progress = progress
        self.pending: list[Chunk] = []
        self.pending_tokens: list[list[str]] = []
        self.chunks: list[Chunk] = []
        self.tokens: list[list[str]] = []
        self.vectors: list[np.ndarray] = []
        self.seen_ids: set[str] = set()
        self.seconds = 0.0
        self.waiting_files = 0  # prepared files whose chunks are not embedded yet

    def add_file(self, chunks: list[Chunk], tokens: list[list[str]], keep: set[str]) -> None:
        """Queue a prepared file's chunks that are neither in ``keep`` (the index holds them)
        nor queued already; embeds once a block is full."""
        for chunk, chunk_tokens in zip(chunks, tokens):
            if chunk.id not in keep and chunk.id not in self.seen_ids:
                self.pending.append(chunk)
                self.pending_tokens.append(chunk_tokens)
                self.seen_ids.add(chunk.id)
        self.waiting_files += 1
        if len(self.pending) >= EMBED_BLOCK:
            self.flush()

    def flush(self) -> None:
        """Embed what is queued."""
        pending = self.pending
        if pending:
            t0 = time.perf_counter()
            # Repeated texts (a repetitive file, boilerplate) are embedded once.
            unique = list(dict.fromkeys(c.text for c in pending))
            embedded = self.embed_documents(unique)
            if len(unique) < len(pending):
                row = {text: i for i, text in enumerate(unique)}
                embedded = embedded[[row[c.text] for c in pending]]
            self.vectors.append(embedded)
            self.seconds += time.perf_counter() - t0
            self.chunks.extend(pending)
            self.tokens.extend(self.pending_tokens)
        self.progress.advance(self.waiting_files, chunks=len(pending))
        self.waiting_files = 0
        pending.clear()
        self.pending_tokens.clear()


def _load_embedder(embedder: Any, stages: dict[str, float]) -> Callable[[list[str]], np.ndarray]:
    """Warm ``embedder`` up; returns what embeds passages with it."""
    t = time.perf_counter()
    embedder.warm_up()
    # Passages may go through a faster copy of the model than questions (rag/document_encoding.py).
    embed_documents = getattr(embedder, "embed_documents", embedder.embed)
    if hasattr(embedder, "warm_up_documents"):
        embedder.warm_up_documents()
    stages["load_model"] = time.perf_counter() - t
    return embed_documents


def _take(
    item: Prepared,
    source: SourceFile,
    work: FilesToProcess,
    queue: _EmbeddingQueue,
    per_file: list[tuple[SourceFile, list[str]]],
    failed_now: list[tuple[SourceFile, str]],
) -> None:
    """Record one prepared file: its failure, or its chunk ids and the chunks to embed."""
    report, progress = work.report, work.progress
    if item.sha256 and item.sha256 != source.sha256:
        # It changed between the hashing and the parsing: record what was parsed.
        source.sha256, source.size, source.mtime = item.sha256, item.size, item.mtime
        progress.log(
            f"{source.path}: changed while the ingest ran; indexed as it was read (SHA-256 {item.sha256[:12]})."
        )
    if item.error is not None:
        failed_now.append((source, item.error))
        report.files_failed += 1
        report.failed.append({"path": source.path, "reason": item.error})
        progress.log(f"skipped {item.error}")
        progress.advance(1)
        return
    assert item.chunks is not None and item.tokens is not None  # prepared without an error
    ids = [c.id for c in item.chunks]
    per_file.append((source, ids))
    if source.path in work.known:
        report.files_changed += 1
    else:
        report.files_new += 1
    keep = set() if work.rebuild else work.store.existing_ids(ids)
    queue.add_file(item.chunks, item.tokens, keep)


def process_files(work: FilesToProcess, embedder: Any = None, prepare: PrepareFiles | None = None) -> ProcessedFiles:
    """Prepare and embed ``work.to_parse`` with ``embedder`` (made from the settings when
    None); ``prepare`` replaces :func:`prepare_files`. Returns the rows to insert and per-file
    results."""
    from rag.chunking import Chunker
    from rag.embedding import make_embedder, pick_device

    settings, progress, stages = work.settings, work.progress, work.stages
    embedder = embedder or make_embedder(settings)
    progress.stage("ingest", len(work.to_parse))
    queue = _EmbeddingQueue(_load_embedder(embedder, stages), progress)
    plan = ChunkPlan(
        tokenizer=embedder.tokenizer_source,
        max_tokens=min(settings.chunk_tokens, embedder.max_tokens),
        overlap=settings.chunk_overlap,
        max_bytes=int(settings.max_file_mb * 1024 * 1024),
        parse_timeout_s=settings.parse_timeout_s,
    )
    # In-process preparation reuses the loaded model's tokenizer instead of loading another.
    local_chunker = Chunker(remembering(embedder.count_tokens), plan.max_tokens, plan.overlap, embedder.split_tokens)
    by_path = {s.path: s for s in work.to_parse}
    per_file: list[tuple[SourceFile, list[str]]] = []
    failed_now: list[tuple[SourceFile, str]] = []
    worker_seconds = {"parse": 0.0, "chunk": 0.0, "tokenize": 0.0}

    t_prepare = time.perf_counter()
    prepare = prepare or functools.partial(
        prepare_files,
        wave_files=None if pick_device(settings.device) == "cuda" else PARSE_WAVE_FILES,
        progress=progress,
    )
    took: list[tuple[float, str]] = []
    for item in prepare(work.to_parse, plan, settings.workers, local_chunker):
        source = by_path[item.path]
        for key, value in item.seconds.items():
            worker_seconds[key] = worker_seconds.get(key, 0.0) + value
        took.append((sum(item.seconds.values()), source.path))
        _take(item, source, work, queue, per_file, failed_now)
    queue.flush()
    progress.done()
    stages["prepare_and_embed"] = time.perf_counter() - t_prepare
    stages["embed"] = queue.seconds
    stages.update({f"{k}_cpu": v for k, v in worker_seconds.items()})
    return _result(work.report, embedder, queue, took, per_file, failed_now)


def _result(
    report: IngestReport,
    embedder: Any,
    queue: _EmbeddingQueue,
    took: Sequence[tuple[float, str]],
    per_file: list[tuple[SourceFile, list[str]]],
    failed_now: list[tuple[SourceFile, str]],
) -> ProcessedFiles:
    """Fill in the report's slowest files and embedding totals; the step's result."""
    report.slowest = [{"path": path, "seconds": round(seconds, 2)} for seconds, path in sorted(took, reverse=True)[:5]]
    report.chunks_embedded = len(queue.chunks)
    if queue.chunks:
        report.document_encoder = getattr(embedder, "document_encoder_name", "") or getattr(embedder, "name", "")
    vectors = queue.vectors
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, embedder.dimension), dtype=np.float32)
    return ProcessedFiles(queue.chunks, matrix, queue.tokens, per_file, failed_now)
