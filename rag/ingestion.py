"""Ingestion: folder -> parse -> chunk -> embed -> index, incrementally and crash-safely.

The rules, as a user sees them:

* A file is identified by its path relative to the ingested folder and its SHA-256. A file
  whose hash is unchanged is neither parsed nor embedded again.
* A changed file's chunks are replaced; chunks whose text did not change keep their
  embeddings (the chunk id is a hash of the file path and the chunk text).
* A file that is gone from the folder is removed from the index, and so is a file that
  changed into something that can no longer be parsed (it is reported as failed).
* A file that fails to parse is reported and skipped; it is tried again once it changes.
* Everything a run changes is committed at once at the end; a run that is killed leaves the
  previous index as it was. Only one ingest may write an index at a time.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from rag.config import Settings
from rag.documents import Chunk
from rag.errors import IndexLockedError, InputError, ParseError
from rag.index import DB_NAME, check_model, dense_params, generation_files

EMBED_BLOCK = 1024  # chunks embedded per call: big enough for length-sorted batching


class Progress(Protocol):
    """Where the pipeline reports what it is doing; the CLI draws bars from this."""

    def stage(self, name: str, total: int) -> None: ...

    def advance(self, n: int = 1, chunks: int = 0) -> None: ...

    def log(self, line: str) -> None: ...

    def done(self) -> None:
        """The current stage is finished."""


class SilentProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def done(self) -> None:
        pass


@dataclass
class SourceFile:
    path: str            # relative to the ingested root, forward slashes
    abspath: Path
    size: int
    mtime: float
    sha256: str = ""


@dataclass
class IngestReport:
    """The summary printed at the end of an ingest (``--json`` prints it as is)."""

    root: str
    index_dir: str
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_failed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)      # {path, reason}
    skipped: list[dict[str, str]] = field(default_factory=list)     # unsupported types
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    documents_total: int = 0
    generation: int = 0
    dense_kind: str = ""
    seconds: float = 0.0
    chunks_per_s: float = 0.0
    index_bytes: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # Why every file was parsed again, when the parser, the chunker or the chunk settings
    # changed since the index was built; "" otherwise.
    reprocessed: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# -- scanning ------------------------------------------------------------------------------


def scan_folder(root: Path, supported: Iterable[str], exclude: Path | None = None) -> tuple[list[SourceFile], list[str]]:
    """Supported files under ``root`` (hidden files and folders skipped) and unsupported ones."""
    supported = set(supported)
    files: list[SourceFile] = []
    unsupported: list[str] = []
    exclude_resolved = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and (exclude_resolved is None or (here / d).resolve() != exclude_resolved)
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = here / name
            if not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            if full.suffix.lower() not in supported:
                unsupported.append(rel)
                continue
            stat = full.stat()
            files.append(SourceFile(rel, full, stat.st_size, stat.st_mtime))
    return files, unsupported


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- locking -------------------------------------------------------------------------------


class WriteLock:
    """An exclusive, non-blocking lock on the index folder; the OS drops it if we die."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._handle = None

    def __enter__(self) -> "WriteLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise IndexLockedError(
                f"Another ingest (pid {holder}) is writing to {self.path.parent}; wait for it to finish and run again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


# -- preparing files: parse -> chunk -> search tokens ---------------------------------------

# With at least this many files to prepare, preparation runs in worker processes while the
# main process embeds; below it, starting workers (a few seconds each) costs more than it saves.
POOL_MIN_FILES = 16


@dataclass(frozen=True)
class ChunkPlan:
    """What a worker needs to chunk exactly as the main process would."""

    tokenizer: str        # anything transformers.AutoTokenizer loads: the embedder's own tokenizer
    max_tokens: int
    overlap: int
    max_bytes: int


@dataclass
class Prepared:
    """One file made ready for embedding, or the reason it was skipped."""

    path: str
    chunks: list[Chunk] | None = None
    tokens: list[list[str]] | None = None     # BM25 tokens, one list per chunk
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_file(abspath: Path, rel: str, plan: ChunkPlan, chunker=None) -> Prepared:
    """Parse, chunk and tokenise one file; never raises for a bad file."""
    from rag.parsing import parse_file
    from rag.text import search_tokens

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    try:
        elements = parse_file(Path(abspath), plan.max_bytes)
    except ParseError as exc:
        return Prepared(rel, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the whole run
        return Prepared(rel, error=f"{rel} could not be parsed ({exc.__class__.__name__}: {exc}); remove it or report the bug.")
    seconds["parse"] = time.perf_counter() - t
    t = time.perf_counter()
    chunks = (chunker or _worker_chunker(plan)).chunk(rel, elements)
    seconds["chunk"] = time.perf_counter() - t
    t = time.perf_counter()
    tokens = [search_tokens(c.text) for c in chunks]
    seconds["tokenize"] = time.perf_counter() - t
    return Prepared(rel, chunks, tokens, None, seconds)


@functools.lru_cache(maxsize=2)
def _worker_chunker(plan: ChunkPlan):
    """A chunker built from the embedder's tokenizer, once per worker process."""
    from rag.chunking import Chunker

    count, split = token_functions(plan.tokenizer)
    return Chunker(count, plan.max_tokens, plan.overlap, split)


def token_functions(source: str) -> tuple[Callable[[Sequence[str]], list[int]], Callable[[str, int], list[str]]]:
    """Token counting and cutting with the tokenizer at ``source``, as the embedder counts.

    A model folder with a ``tokenizer.json`` is read with the ``tokenizers`` library alone:
    importing transformers took most of a parsing worker's ~7 s start (same tokens; tested).
    Anything else goes through ``transformers.AutoTokenizer``.
    """
    path = Path(source) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(path))
        fast.no_truncation()
        fast.no_padding()

        def count(texts: Sequence[str]) -> list[int]:
            return [len(e.ids) for e in fast.encode_batch(list(texts), add_special_tokens=False)] if texts else []

        def offsets(text: str) -> list[tuple[int, int]]:
            return fast.encode(text, add_special_tokens=False).offsets
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)

        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            ids = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False, verbose=False)["input_ids"]
            return [len(i) for i in ids]

        def offsets(text: str) -> list[tuple[int, int]]:
            return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]

    def split(text: str, max_tokens: int) -> list[str]:
        marks = offsets(text)
        cuts = [marks[i][0] for i in range(max_tokens, len(marks), max_tokens)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b] for a, b in zip(bounds, bounds[1:]) if text[a:b]]

    return count, split


def _prepare_in_worker(abspath: str, rel: str, plan: ChunkPlan) -> Prepared:
    return prepare_file(Path(abspath), rel, plan)


PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when the process that started it is gone. A killed
    ingest (or server) otherwise leaves its parsing workers waiting for work forever, since
    each holds both ends of the pool's task pipe."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# On a CPU, parsing beside embedding slows torch far more than the parsing costs: torch's
# threads meet at every operation, and the one that lost its core to a parser holds up the
# rest (CMRC 2018: embedding took 123 s inside the pipeline against 105 s alone, beside 17 s
# of parsing). So on a CPU files are parsed in waves on every core while the embedder waits,
# and each wave is embedded while the parsers wait. On a GPU, parsing overlaps embedding.
# (Overlapping with the parsers at the lowest priority, os.nice(19), was no better on CMRC:
# 134.0 s against 135.8 s, one run each.)
PARSE_WAVE_FILES = 512


def prepare_files(files: list[SourceFile], plan: ChunkPlan, workers: int, chunker=None,
                  wave_files: int | None = None) -> Iterator[Prepared]:
    """Prepare files, in worker processes for larger batches; results arrive as they finish.

    Without ``wave_files`` every file is handed to the workers at once, so parsing overlaps
    whatever the caller does between results (embedding on a GPU). With it, the files go in
    waves on one worker per core: a wave's results are handed over only when the whole wave is
    done, and the next wave starts when the caller asks for more, so parsing and embedding
    take turns on the CPU.
    """
    if len(files) < POOL_MIN_FILES and workers <= 1:
        for source in files:
            yield prepare_file(source.abspath, source.path, plan, chunker)
        return
    if wave_files:
        workers = max(workers, os.cpu_count() or 1)
    wave = wave_files or len(files)
    # spawn, not fork: the parent already holds torch's thread pools.
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        for start in range(0, len(files), wave):
            futures = [pool.submit(_prepare_in_worker, str(s.abspath), s.path, plan) for s in files[start:start + wave]]
            if wave_files:
                wait(futures)
            for future in as_completed(futures):
                yield future.result()


# -- the run -------------------------------------------------------------------------------


def ingest_folder(
    root: str | Path,
    settings: Settings,
    progress: Progress | None = None,
    embedder=None,
    rebuild: bool = False,
    prepare: Callable[..., Iterable[Prepared]] | None = None,
) -> IngestReport:
    """Bring the index in ``settings.index_dir`` up to date with the folder ``root``."""
    progress = progress or SilentProgress()

    def process(to_parse, known, store, report, stages):
        return _process(to_parse, known, store, settings, progress, embedder, report, stages, prepare, rebuild)

    return run_ingest(root, settings, process, progress=progress, rebuild=rebuild)


def _leave_out_removed(files: list[SourceFile], directory: Path, report: IngestReport,
                       progress: Progress) -> list[SourceFile]:
    """The files, less those removed from the index through the API (see :mod:`rag.removals`)."""
    from rag.removals import removed_paths

    removed = removed_paths(directory)
    kept = []
    for source in files:
        if source.path in removed:
            reason = (f"{source.path}: removed from the index through the API; left out "
                      "(python -m ingest --include-removed indexes it again).")
            report.skipped.append({"path": source.path, "reason": reason})
            progress.log(reason)
        else:
            kept.append(source)
    return kept


def processing_signature(settings: Settings) -> str:
    """What decides how a file becomes chunks, besides its bytes and the embedder (checked
    apart): the parser's and chunker's versions and the chunk settings."""
    from rag.chunking import CHUNKER_VERSION
    from rag.parsing import PARSER_VERSION

    return (f"parser {PARSER_VERSION}, chunker {CHUNKER_VERSION}, chunk_tokens {settings.chunk_tokens}, "
            f"chunk_overlap {settings.chunk_overlap}")


def run_ingest(
    root: str | Path,
    settings: Settings,
    process: Callable[..., tuple],
    progress: Progress | None = None,
    rebuild: bool = False,
) -> IngestReport:
    """Scan, diff and commit around ``process``, which parses, chunks and embeds what changed.

    ``process(to_parse, known, store, report, stages)`` gets the files to (re)parse, the
    manifest as it was, the open store, and the report and stage timings to fill in; it
    returns ``(new_chunks, vectors, tokens, per_file, failed_now)`` as :func:`_process` does,
    and is only called when something changed. ``rag.ingestion_ray`` passes its own, so the
    Ray path shares the incremental rules and the crash-safe commit.
    """
    from rag.parsing import SUPPORTED_SUFFIXES

    started = time.perf_counter()
    progress = progress or SilentProgress()
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root} does not exist; give the folder that holds your documents.")
    if root.is_file():
        raise InputError(f"{root} is a file; give the folder that holds it.")
    directory = Path(settings.index_dir)
    report = IngestReport(root=str(root), index_dir=str(directory))
    stages: dict[str, float] = {}

    files, unsupported = scan_folder(root, SUPPORTED_SUFFIXES, exclude=directory)
    for rel in unsupported:
        reason = f"{rel}: file type '{Path(rel).suffix or '(none)'}' is not supported; skipped."
        report.skipped.append({"path": rel, "reason": reason})
        progress.log(reason)
    files = _leave_out_removed(files, directory, report, progress)
    if not files:
        raise InputError(
            f"{root} holds no supported documents; supported types are {', '.join(sorted(SUPPORTED_SUFFIXES))}."
        )

    from rag.stores.chunk_store import ChunkStore

    with WriteLock(directory):
        store = ChunkStore(directory / DB_NAME)
        try:
            meta = store.get_meta()
            if not rebuild:
                check_model(meta, settings.embed_model, directory)
            known = {} if rebuild else store.documents()
            failures = {} if rebuild else store.failures()
            processing = processing_signature(settings)
            if known and meta.get("processing") != processing:
                # Unchanged files would keep chunks cut another way: parse them all again (chunks
                # whose text comes out the same keep their embeddings).
                report.reprocessed = (f"the index was built with {meta.get('processing') or 'an older version'}, "
                                      f"now {processing}: every file is parsed and chunked again")
                progress.log(report.reprocessed)
                failures = {}

            # 1. What changed: hash every file (cheap next to parsing and embedding).
            t = time.perf_counter()
            progress.stage("hash", len(files))
            to_parse: list[SourceFile] = []
            unchanged: list[SourceFile] = []
            for source in files:
                source.sha256 = file_sha256(source.abspath)
                old = known.get(source.path)
                if old is not None and old.sha256 == source.sha256 and not report.reprocessed:
                    unchanged.append(source)
                elif source.path in failures and failures[source.path][0] == source.sha256:
                    report.files_failed += 1
                    report.failed.append({"path": source.path, "reason": failures[source.path][1] + " (unchanged since)"})
                else:
                    to_parse.append(source)
                progress.advance(1)
            progress.done()
            on_disk = {s.path for s in files}
            removed = [path for path in known if path not in on_disk]
            vanished_failures = [path for path in failures if path not in on_disk]
            report.files_unchanged = len(unchanged)
            report.files_removed = len(removed)
            stages["hash"] = time.perf_counter() - t

            if not to_parse and not removed and not rebuild:
                for path in vanished_failures:
                    store.delete_failure(path)
                return _finish(report, store, directory, started, stages, meta)

            # 2. Parse, chunk and embed what is new or changed.
            new_chunks, new_vectors, new_tokens, per_file, failed_now = process(to_parse, known, store, report, stages)

            # 3. Commit everything at once, with the next generation's index files.
            t = time.perf_counter()
            store.begin()
            try:
                if rebuild:
                    store.clear()
                for path in removed:
                    report.chunks_removed += store.delete_chunks(known[path].chunk_ids)
                    store.delete_document(path)
                for path in vanished_failures:
                    store.delete_failure(path)
                for source, reason in failed_now:
                    if source.path in known:  # it was good before: its old chunks go
                        report.chunks_removed += store.delete_chunks(known[source.path].chunk_ids)
                        store.delete_document(source.path)
                    store.put_failure(source.path, source.sha256, reason)
                for source, chunk_ids in per_file:
                    if source.path in known:
                        stale = set(known[source.path].chunk_ids) - set(chunk_ids)
                        report.chunks_removed += store.delete_chunks(stale)
                    store.put_document(source.path, source.sha256, source.size, source.mtime, chunk_ids)
                store.add_chunks(new_chunks, new_tokens, new_vectors)
                report.chunks_added = len(new_chunks)
                for source in unchanged:
                    store.touch_document(source.path, source.mtime)

                generation = int(meta.get("generation", "0")) + 1
                dense_kind = _write_generation(store, directory, generation, settings, progress)
                dimension = new_vectors.shape[1] if len(new_vectors) else int(meta.get("dimension", "0") or 0)
                store.set_meta({
                    "generation": generation,
                    "embed_model": settings.embed_model,
                    "dimension": dimension,
                    "dense_kind": dense_kind,
                    "documents": len(store.documents()),
                    "chunks": store.count_chunks(),
                    "updated_at": time.time(),
                    "chunk_tokens": settings.chunk_tokens,
                    "chunk_overlap": settings.chunk_overlap,
                    "processing": processing,
                    "root": str(root.resolve()),
                })
                _before_commit_hook()
                store.commit()
            except BaseException:
                store.rollback()
                raise
            stages["write"] = time.perf_counter() - t
            _remove_old_generations(directory, generation)
            return _finish(report, store, directory, started, stages, store.get_meta())
        finally:
            store.close()


def _before_commit_hook() -> None:
    """Test seam: lets a test hold the process just before the commit to kill it there."""
    pause = os.environ.get("RAG_TEST_PAUSE_BEFORE_COMMIT")
    if pause:
        marker = Path(pause)
        marker.write_text("waiting")
        time.sleep(60)


def _process(to_parse, known, store, settings, progress, embedder, report, stages, prepare, rebuild):
    """Prepare and embed ``to_parse``; returns the rows to insert and per-file results."""
    from rag.chunking import Chunker
    from rag.embedding import make_embedder, pick_device

    embedder = embedder or make_embedder(settings)
    progress.stage("ingest", len(to_parse))
    t = time.perf_counter()
    embedder.warm_up()
    stages["load_model"] = time.perf_counter() - t
    plan = ChunkPlan(
        tokenizer=embedder.tokenizer_source,
        max_tokens=min(settings.chunk_tokens, embedder.max_tokens),
        overlap=settings.chunk_overlap,
        max_bytes=int(settings.max_file_mb * 1024 * 1024),
    )
    # In-process preparation reuses the loaded model's tokenizer instead of loading another.
    local_chunker = Chunker(embedder.count_tokens, plan.max_tokens, plan.overlap, embedder.split_tokens)
    by_path = {s.path: s for s in to_parse}

    per_file: list[tuple[SourceFile, list[str]]] = []
    failed_now: list[tuple[SourceFile, str]] = []
    pending: list[Chunk] = []
    pending_tokens: list[list[str]] = []
    new_chunks: list[Chunk] = []
    new_tokens: list[list[str]] = []
    vectors: list[np.ndarray] = []
    seen_ids: set[str] = set()
    worker_seconds = {"parse": 0.0, "chunk": 0.0, "tokenize": 0.0}
    embed_seconds = 0.0
    waiting_files = 0  # prepared files whose chunks are not embedded yet

    def flush() -> None:
        nonlocal embed_seconds, waiting_files
        if pending:
            t0 = time.perf_counter()
            vectors.append(embedder.embed([c.text for c in pending]))
            embed_seconds += time.perf_counter() - t0
            new_chunks.extend(pending)
            new_tokens.extend(pending_tokens)
        # A file counts as done once its chunks are embedded, so the ETA covers embedding.
        progress.advance(waiting_files, chunks=len(pending))
        waiting_files = 0
        pending.clear()
        pending_tokens.clear()

    t_prepare = time.perf_counter()
    prepare = prepare or functools.partial(
        prepare_files, wave_files=None if pick_device(settings.device) == "cuda" else PARSE_WAVE_FILES)
    for item in prepare(to_parse, plan, settings.workers, local_chunker):
        source = by_path[item.path]
        for key, value in item.seconds.items():
            worker_seconds[key] = worker_seconds.get(key, 0.0) + value
        if item.error is not None:
            failed_now.append((source, item.error))
            report.files_failed += 1
            report.failed.append({"path": source.path, "reason": item.error})
            progress.log(f"skipped {item.error}")
            progress.advance(1)
            continue
        ids = [c.id for c in item.chunks]
        per_file.append((source, ids))
        if source.path in known:
            report.files_changed += 1
        else:
            report.files_new += 1
        keep = set() if rebuild else store.existing_ids(ids)
        for chunk, tokens in zip(item.chunks, item.tokens):
            if chunk.id not in keep and chunk.id not in seen_ids:
                pending.append(chunk)
                pending_tokens.append(tokens)
                seen_ids.add(chunk.id)
        waiting_files += 1
        if len(pending) >= EMBED_BLOCK:
            flush()
    flush()
    progress.done()
    stages["prepare_and_embed"] = time.perf_counter() - t_prepare
    stages["embed"] = embed_seconds
    stages.update({f"{k}_cpu": v for k, v in worker_seconds.items()})
    report.chunks_embedded = len(new_chunks)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, embedder.dimension), dtype=np.float32)
    return new_chunks, matrix, new_tokens, per_file, failed_now


def _write_generation(store, directory: Path, generation: int, settings: Settings, progress: Progress) -> str:
    """Build the dense and sparse indexes of all chunks and write them for ``generation``."""
    from rag.stores.dense import DenseIndex
    from rag.stores.sparse import SparseIndex

    ids_parts, vector_parts = [], []
    for ids, vectors in store.iter_vectors():
        ids_parts.append(ids)
        vector_parts.append(vectors)
    if ids_parts:
        ids = np.concatenate(ids_parts)
        vectors = np.concatenate(vector_parts)
    else:
        ids = np.zeros(0, dtype=np.int64)
        vectors = np.zeros((0, 1), dtype=np.float32)
    progress.log(f"building the search index over {len(ids)} chunks")
    # The stored index is a CPU index whatever the machine; GPU copies are made when loading.
    dense = DenseIndex.build(vectors, ids, dense_params(settings), on_gpu=False)
    token_ids, token_lists = [], []
    for rows, tokens in store.iter_tokens():
        token_ids.append(rows)
        token_lists.extend(tokens)
    sparse = SparseIndex.build(token_lists, np.concatenate(token_ids) if token_ids else np.zeros(0, np.int64))

    dense_path, sparse_path = generation_files(directory, generation)
    dense.save(dense_path)
    sparse.save(sparse_path)
    for path in (dense_path, sparse_path, Path(str(sparse_path) + ".vocab.json")):
        _fsync(path)
    _fsync(directory)
    return dense.kind


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_old_generations(directory: Path, live: int) -> None:
    """Keep the live generation and the one before it (a reader may still be loading it)."""
    for path in directory.iterdir():
        name = path.name
        if not (name.startswith("dense-") or name.startswith("sparse-")):
            continue
        try:
            generation = int(name.split("-", 1)[1].split(".", 1)[0])
        except ValueError:
            continue
        if generation not in (live, live - 1):
            path.unlink(missing_ok=True)


def _finish(report: IngestReport, store, directory: Path, started: float, stages: dict[str, float],
            meta: dict[str, str]) -> IngestReport:
    report.seconds = round(time.perf_counter() - started, 3)
    report.chunks_total = int(meta.get("chunks", "0") or 0)
    report.documents_total = int(meta.get("documents", "0") or 0)
    report.generation = int(meta.get("generation", "0") or 0)
    report.dense_kind = meta.get("dense_kind", "")
    report.chunks_per_s = round(report.chunks_embedded / report.seconds, 2) if report.seconds else 0.0
    report.index_bytes = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    report.stage_seconds = {k: round(v, 3) for k, v in stages.items()}
    return report
