"""Ingestion: folder -> parse -> chunk -> embed -> index, incrementally and crash-safely.

The rules, as a user sees them:

* A file is identified by its path relative to the ingested folder and its SHA-256. A file
  whose hash is unchanged is neither parsed nor embedded again.
* A changed file's chunks are replaced; chunks whose text did not change keep their
  embeddings (the chunk id is a hash of the file path and the chunk text).
* A file that is gone from the folder is removed from the index, and so is a file that
  changed into something that can no longer be parsed (it is reported as failed).
* A file that fails to parse is reported and skipped; it is tried again once it changes.
* No single file stops a run: what cannot be read (permissions, a file gone since the scan,
  dangling or looping links, FIFOs and devices, folders that cannot be listed) is skipped with
  one line naming it and why; a file that takes longer than ``parse_timeout_s`` to prepare is
  stopped and reported; a file that changed while it was read is recorded with the hash of
  exactly the bytes that were parsed.
* Everything a run changes is committed at once at the end; a run that is killed leaves the
  previous index as it was. Only one ingest may write an index at a time.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.config import Settings
from rag.documents import Chunk
from rag.errors import IndexLockedError, InputError, ParseError
from rag.index import DB_NAME, check_model, resolve_embed_model
from rag.stores.segments import fsync

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
    path: str  # relative to the ingested root, forward slashes
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
    failed: list[dict[str, str]] = field(default_factory=list)  # {path, reason}
    # {path, reason}: unsupported types, and what was never read (unreadable, gone, links,
    # FIFOs, devices, folders that cannot be listed)
    skipped: list[dict[str, str]] = field(default_factory=list)
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
    bytes_written: int = 0  # store files this ingest wrote (chunks.sqlite aside)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # The files that took longest to prepare (read, parse, chunk, tokenise): {path, seconds}.
    slowest: list[dict[str, object]] = field(default_factory=list)
    # Why every file was parsed again, when the parser, the chunker or the chunk settings
    # changed since the index was built; "" otherwise.
    reprocessed: str = ""
    # What embedded this run's chunks (the embedder's document_encoder_name, e.g. the int8 ONNX
    # copy); "" when nothing was embedded.
    document_encoder: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# -- scanning ------------------------------------------------------------------------------


def scan_folder(
    root: Path, supported: Iterable[str], exclude: Path | None = None, problems: list[dict[str, str]] | None = None
) -> tuple[list[SourceFile], list[str]]:
    """Supported files under ``root`` (hidden files and folders skipped) and unsupported ones.

    Only regular files (or links to them) are taken, and nothing is opened here: dangling
    links, link loops, FIFOs, devices and sockets, links to folders (never followed) and
    folders that cannot be listed are left out, each added to ``problems`` when it is given as
    ``{path, reason}``, the reason one sentence naming the file.
    """
    supported = set(supported)
    files: list[SourceFile] = []
    unsupported: list[str] = []
    exclude_resolved = exclude.resolve() if exclude is not None else None

    def note(rel: str, why: str) -> None:
        if problems is not None:
            problems.append({"path": rel, "reason": f"{rel}: {why}; skipped."})

    def unlistable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        rel = where.relative_to(root).as_posix() if where != root and where.is_relative_to(root) else str(where)
        why = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else (exc.strerror or "error")
        note(rel + "/", f"the folder cannot be listed ({why}), so none of its files were read")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        here = Path(dirpath)
        folders = []
        for name in sorted(dirnames):
            full = here / name
            if name.startswith(".") or (exclude_resolved is not None and full.resolve() == exclude_resolved):
                continue
            if full.is_symlink():
                # os.walk does not follow them either; following could loop or leave the folder.
                note(
                    full.relative_to(root).as_posix(),
                    "a link to a folder, and links to folders are not followed (ingest that folder itself)",
                )
                continue
            folders.append(name)
        dirnames[:] = folders
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = here / name
            rel = full.relative_to(root).as_posix()
            try:
                info = os.stat(full)  # follows links; opens nothing
            except OSError as exc:
                note(rel, _stat_reason(full, exc))
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                note(rel, f"{_file_kind(info.st_mode)}, not a regular file, so it was not opened")
                continue
            if full.suffix.lower() not in supported:
                unsupported.append(rel)
                continue
            files.append(SourceFile(rel, full, info.st_size, info.st_mtime))
    return files, unsupported


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _stat_reason(path: Path, exc: OSError) -> str:
    """Why ``os.stat`` failed on a name the folder listing gave, in words."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR) and path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a dangling symbolic link (its target {target} does not exist)"
    return _os_reason(exc)


def _os_reason(exc: OSError) -> str:
    """An OS error on a file as a user reads it."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the service cannot read it)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "it vanished (deleted or moved while the ingest ran)"
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself)"
    if isinstance(exc, NotRegularFileError):
        return str(exc)
    return f"it could not be read ({exc.strerror or exc.__class__.__name__})"


class NotRegularFileError(OSError):
    """A path that was a regular file at the scan is now something else (a FIFO, a folder)."""


def open_regular(path: Path):
    """Open a regular file for reading, never blocking: a FIFO put in a file's place after the
    scan would otherwise hang the ingest on ``open``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(
                f"{_file_kind(mode) if not stat.S_ISDIR(mode) else 'a folder'} now, "
                "not the regular file it was when the folder was scanned"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- locking -------------------------------------------------------------------------------


class WriteLock:
    """An exclusive, non-blocking lock on the index folder; the OS drops it if we die."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._handle = None

    def __enter__(self) -> WriteLock:
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

    tokenizer: str  # anything transformers.AutoTokenizer loads: the embedder's own tokenizer
    max_tokens: int
    overlap: int
    max_bytes: int
    parse_timeout_s: float = 0.0  # Settings.parse_timeout_s; 0 = no limit


@dataclass
class Prepared:
    """One file made ready for embedding, or the reason it was skipped."""

    path: str
    chunks: list[Chunk] | None = None
    tokens: list[list[str]] | None = None  # BM25 tokens, one list per chunk
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    # What was read: the SHA-256, size and mtime of exactly the bytes parsed ("" when the file
    # could not be read at all).
    sha256: str = ""
    size: int = 0
    mtime: float = 0.0


class ParseTimeout(BaseException):
    """Raised inside a file's preparation when it runs past its time budget. A BaseException,
    so the ``except Exception`` of parsers and format libraries cannot swallow it."""


def prepare_file(abspath: Path, rel: str, plan: ChunkPlan, chunker=None) -> Prepared:
    """Read, parse, chunk and tokenise one file; never raises for a bad file.

    The file is read once: its hash is taken of those bytes and they are what is parsed, so a
    file changing meanwhile cannot be recorded with one version's hash and another's text.
    Past ``plan.parse_timeout_s`` the work is stopped (where a timer can interrupt it: the
    main thread of a process) and the file reported.
    """
    if plan.parse_timeout_s:
        _warm_up(plan, chunker)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    try:
        with time_limit(plan.parse_timeout_s):
            return _prepare(Path(abspath), rel, plan, chunker, seconds)
    except ParseTimeout:
        seconds["parse"] = time.perf_counter() - started - sum(seconds.values())
        return Prepared(rel, error=timeout_reason(rel, plan.parse_timeout_s), seconds=seconds)


def _warm_up(plan: ChunkPlan, chunker) -> None:
    """Load the parser and tokenizer outside any file's time budget (once per process)."""
    from rag.parsing import warm_up

    try:
        warm_up()
        if chunker is None:
            _worker_chunker(plan)
    except Exception:  # noqa: BLE001 - the file's own preparation reports what is wrong
        pass


def timeout_reason(rel: str, limit: float) -> str:
    return (
        f"{rel}: preparing it took longer than the {limit:g} s budget (parse_timeout_s), so it was "
        "stopped; split the file, or raise parse_timeout_s (RAG_PARSE_TIMEOUT_S) and retry."
    )


def _prepare(abspath: Path, rel: str, plan: ChunkPlan, chunker, seconds: dict[str, float]) -> Prepared:
    from rag.parsing import parse_file, too_big
    from rag.text import search_tokens

    t = time.perf_counter()
    try:
        with open_regular(abspath) as handle:
            info = os.fstat(handle.fileno())
            if info.st_size > plan.max_bytes:  # reported from its size, unread
                return Prepared(rel, error=str(too_big(abspath, info.st_size, plan.max_bytes)))
            data = handle.read(plan.max_bytes + 1)
    except OSError as exc:
        return Prepared(rel, error=f"{rel}: {_os_reason(exc)}")
    read = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mtime": info.st_mtime}
    seconds["read"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        elements = parse_file(abspath, plan.max_bytes, data)
    except ParseError as exc:
        return Prepared(rel, error=str(exc), seconds=seconds, **read)
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the whole run
        return Prepared(
            rel,
            error=f"{rel} could not be parsed ({exc.__class__.__name__}: {exc}); remove it or report the bug.",
            seconds=seconds,
            **read,
        )
    seconds["parse"] = time.perf_counter() - t
    t = time.perf_counter()
    chunks = (chunker or _worker_chunker(plan)).chunk(rel, elements)
    seconds["chunk"] = time.perf_counter() - t
    t = time.perf_counter()
    seen: dict[str, list[str]] = {}  # a repetitive file repeats chunk texts: tokenise each once
    tokens = [seen[c.text] if c.text in seen else seen.setdefault(c.text, search_tokens(c.text)) for c in chunks]
    seconds["tokenize"] = time.perf_counter() - t
    return Prepared(rel, chunks, tokens, None, seconds, **read)


def can_time_limit() -> bool:
    """Whether :func:`time_limit` can interrupt work here: a timer signal reaches only the main
    thread of a process (an API server ingests in a worker thread)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`ParseTimeout` in this block once ``seconds`` have passed (0: no limit, and
    no limit where :func:`can_time_limit` is false). Python code is stopped at once; a long call
    into a C library at its return."""
    if not seconds or seconds <= 0 or not can_time_limit():
        yield
        return

    def expired(signum, frame):
        raise ParseTimeout()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# A file still being prepared after this long gets a line "still parsing X (N s)", and again
# at every multiple of it.
SLOW_NOTICE_S = 10.0


@contextlib.contextmanager
def slow_notice(progress: Progress, rel: str, every: float = SLOW_NOTICE_S) -> Iterator[None]:
    """Log "still parsing REL (N s)" every ``every`` seconds while the block runs."""
    done = threading.Event()
    started = time.monotonic()

    def watch() -> None:
        while not done.wait(every):
            progress.log(f"still parsing {rel} ({time.monotonic() - started:.0f} s)")

    watcher = threading.Thread(target=watch, name="slow-notice", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


@functools.lru_cache(maxsize=2)
def _worker_chunker(plan: ChunkPlan):
    """A chunker built from the embedder's tokenizer, once per worker process."""
    from rag.chunking import Chunker

    count, split = token_functions(plan.tokenizer)
    return Chunker(count, plan.max_tokens, plan.overlap, split)


COUNT_MEMO_CHARS = 50_000_000


def remembering(count: Callable[[Sequence[str]], list[int]]) -> Callable[[Sequence[str]], list[int]]:
    """``count`` (texts -> token counts), remembering recent answers.

    The chunker counts a section's elements, then the sentences of a section too big for one
    chunk: an element that is one sentence is counted twice, and repetitive files repeat whole
    paragraphs. Remembering halves the tokenising of a one-line 10 MB file. What is held is
    bounded by characters (COUNT_MEMO_CHARS).
    """
    memo: dict[str, int] = {}
    held = 0

    def counted(texts: Sequence[str]) -> list[int]:
        nonlocal held
        if not texts:
            return []
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            if held > COUNT_MEMO_CHARS:
                memo.clear()
                held = 0
            for text, n in zip(missing, count(missing)):
                memo[text] = n
                held += len(text)
        return [memo[t] for t in texts]

    return counted


def token_functions(source: str) -> tuple[Callable[[Sequence[str]], list[int]], Callable[[str, int], list[str]]]:
    """Token counting and cutting with the tokenizer at ``source``, as the embedder counts.

    A model folder with a ``tokenizer.json`` is read with the ``tokenizers`` library alone:
    importing transformers took most of a parsing worker's ~7 s start (same tokens; tested).
    ``"python:MODULE"`` (embedders that are not transformers models, ``rag/embedders/``) calls
    that module's ``token_functions()``. Anything else goes through ``transformers.AutoTokenizer``.
    """
    if source.startswith("python:"):
        import importlib

        count, split = importlib.import_module(source.removeprefix("python:")).token_functions()
        return remembering(count), split
    path = Path(source) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(path))
        fast.no_truncation()
        fast.no_padding()

        @remembering
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
            ids = tokenizer(
                list(texts),
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )["input_ids"]
            return [len(i) for i in ids]

        def offsets(text: str) -> list[tuple[int, int]]:
            return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
                "offset_mapping"
            ]

    def split(text: str, max_tokens: int) -> list[str]:
        marks = offsets(text)
        cuts = [marks[i][0] for i in range(max_tokens, len(marks), max_tokens)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b] for a, b in zip(bounds, bounds[1:]) if text[a:b]]

    return count, split


_STARTS = None  # in a pool worker: the queue on which it says which file it starts


def _prepare_in_worker(abspath: str, rel: str, plan: ChunkPlan) -> Prepared:
    if _STARTS is not None:
        _STARTS.put((rel, os.getpid(), time.monotonic()))
    return prepare_file(Path(abspath), rel, plan)


PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int, starts=None) -> None:
    """Pool initializer: end this worker when the process that started it is gone. A killed
    ingest (or server) otherwise leaves its parsing workers waiting for work forever, since
    each holds both ends of the pool's task pipe. ``starts`` is the queue on which the worker
    says which file it starts, so the parent can show and stop slow ones."""
    global _STARTS
    _STARTS = starts

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
# Without a way to stop a file in this thread (see can_time_limit), files bigger than this go
# to a worker process, where the time budget holds.
UNGUARDED_MAX_BYTES = 4 * 1024 * 1024


def prepare_files(
    files: list[SourceFile],
    plan: ChunkPlan,
    workers: int,
    chunker=None,
    wave_files: int | None = None,
    progress: Progress | None = None,
) -> Iterator[Prepared]:
    """Prepare files, in worker processes for larger batches; results arrive as they finish.

    Without ``wave_files`` every file is handed to the workers at once, so parsing overlaps
    whatever the caller does between results (embedding on a GPU). With it, the files go in
    waves on one worker per core: a wave's results are handed over only when the whole wave is
    done, and the next wave starts when the caller asks for more, so parsing and embedding
    take turns on the CPU. A file that takes long is named on ``progress`` while it runs.
    """
    progress = progress or SilentProgress()
    guarded = not plan.parse_timeout_s or can_time_limit() or all(s.size <= UNGUARDED_MAX_BYTES for s in files)
    if len(files) < POOL_MIN_FILES and workers <= 1 and guarded:
        for source in files:
            with slow_notice(progress, source.path):
                item = prepare_file(source.abspath, source.path, plan, chunker)
            yield item
        return
    if wave_files:
        workers = max(workers, os.cpu_count() or 1)
    yield from _WorkerPool(plan, max(1, workers), progress).prepare(files, wave_files)


# A worker whose file runs this long past its budget did not stop itself (stuck inside a C
# library that never returns to Python): it is killed, and the files it and its neighbours
# had are handed to a fresh pool.
HARD_STOP_GRACE_S = 10.0
POLL_S = 0.5


class _WorkerPool:
    """Parsing worker processes (spawned: the parent already holds torch's thread pools) that
    say which file each is on, so the parent can name slow files and stop stuck ones without
    losing the rest of the wave."""

    def __init__(self, plan: ChunkPlan, workers: int, progress: Progress) -> None:
        self.plan = plan
        self.workers = workers
        self.progress = progress
        self.context = get_context("spawn")
        self.pool: ProcessPoolExecutor | None = None
        self.starts = None
        self.crashes: dict[str, int] = {}

    def _start(self) -> None:
        self.starts = self.context.Queue()
        self.pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self.context,
            initializer=_exit_with_parent,
            initargs=(os.getpid(), self.starts),
        )

    def _stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        if self.starts is not None:
            self.starts.close()
            self.starts.cancel_join_thread()
            self.starts = None

    def prepare(self, files: list[SourceFile], wave_files: int | None) -> Iterator[Prepared]:
        wave = wave_files or len(files) or 1
        try:
            for start in range(0, len(files), wave):
                if wave_files:
                    yield from list(self._wave(files[start : start + wave]))
                else:
                    yield from self._wave(files[start : start + wave])
        finally:
            self._stop()

    def _wave(self, todo: list[SourceFile]) -> Iterator[Prepared]:
        remaining = {s.path: s for s in todo}
        while remaining:
            if self.pool is None:
                self._start()
            futures = {
                self.pool.submit(_prepare_in_worker, str(s.abspath), s.path, self.plan): s for s in remaining.values()
            }
            running: dict[str, tuple[int, float]] = {}  # path -> (worker pid, started)
            noticed: dict[str, int] = {}
            killed: dict[str, float] = {}
            pending = set(futures)
            broken = False
            while pending and not broken:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    source = futures[future]
                    try:
                        item = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be unpickled
                        item = Prepared(
                            source.path,
                            error=f"{source.path}: its parsing worker failed ({exc.__class__.__name__}: {exc})",
                        )
                    running.pop(source.path, None)
                    remaining.pop(source.path, None)
                    yield item
                self._read_starts(running, remaining)
                self._watch(running, noticed, killed)
            if broken or pending:
                # The pool broke (a worker we stopped, or one that crashed): report the stopped
                # files, hand everything else to a fresh pool. A file running when workers crashed
                # twice is reported instead of retried for ever.
                self._read_starts(running, remaining)
                for path, elapsed in killed.items():
                    remaining.pop(path, None)
                    yield Prepared(
                        path, error=timeout_reason(path, self.plan.parse_timeout_s), seconds={"parse": elapsed}
                    )
                for path in list(running):
                    if path in killed or path not in remaining:
                        continue
                    self.crashes[path] = self.crashes.get(path, 0) + 1
                    if self.crashes[path] >= 2:
                        remaining.pop(path)
                        yield Prepared(path, error=f"{path}: parsing it crashed its worker process twice")
                self._stop()

    def _read_starts(self, running: dict[str, tuple[int, float]], remaining: dict[str, SourceFile]) -> None:
        import queue

        while True:
            try:
                path, pid, started = self.starts.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                return
            if path in remaining:  # a finished file's start can arrive after its result
                running[path] = (pid, started)

    def _watch(self, running: dict[str, tuple[int, float]], noticed: dict[str, int], killed: dict[str, float]) -> None:
        now = time.monotonic()
        limit = self.plan.parse_timeout_s
        for path, (pid, started) in running.items():
            elapsed = now - started
            step = int(elapsed // SLOW_NOTICE_S)
            if step >= 1 and noticed.get(path, 0) < step and path not in killed:
                noticed[path] = step
                self.progress.log(f"still parsing {path} ({elapsed:.0f} s)")
            if limit and elapsed > limit + HARD_STOP_GRACE_S and path not in killed:
                killed[path] = elapsed
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


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
    settings = resolve_embed_model(settings, embedder=embedder, rebuild=rebuild)

    def process(to_parse, known, store, report, stages):
        return _process(to_parse, known, store, settings, progress, embedder, report, stages, prepare, rebuild)

    return run_ingest(root, settings, process, progress=progress, rebuild=rebuild)


def _leave_out_removed(
    files: list[SourceFile], directory: Path, report: IngestReport, progress: Progress
) -> list[SourceFile]:
    """The files, less those removed from the index through the API (see :mod:`rag.removals`)."""
    from rag.removals import removed_paths

    removed = removed_paths(directory)
    kept = []
    for source in files:
        if source.path in removed:
            reason = (
                f"{source.path}: removed from the index through the API; left out "
                "(python -m ingest --include-removed indexes it again)."
            )
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

    return (
        f"parser {PARSER_VERSION}, chunker {CHUNKER_VERSION}, chunk_tokens {settings.chunk_tokens}, "
        f"chunk_overlap {settings.chunk_overlap}"
    )


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

    problems: list[dict[str, str]] = []
    files, unsupported = scan_folder(root, SUPPORTED_SUFFIXES, exclude=directory, problems=problems)
    for rel in unsupported:
        reason = f"{rel}: file type '{Path(rel).suffix or '(none)'}' is not supported; skipped."
        report.skipped.append({"path": rel, "reason": reason})
        progress.log(reason)
    for problem in problems:
        report.skipped.append(problem)
        progress.log(problem["reason"])
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
                report.reprocessed = (
                    f"the index was built with {meta.get('processing') or 'an older version'}, "
                    f"now {processing}: every file is parsed and chunked again"
                )
                progress.log(report.reprocessed)
                failures = {}

            # 1. What changed: hash every file (cheap next to parsing and embedding).
            t = time.perf_counter()
            progress.stage("hash", len(files))
            to_parse: list[SourceFile] = []
            unchanged: list[SourceFile] = []
            readable: list[SourceFile] = []
            for source in files:
                try:
                    source.sha256 = file_sha256(source.abspath)
                except OSError as exc:
                    # Unreadable or gone since the scan: left out like a deleted file (its old
                    # chunks, if any, go), with one line; tried again on the next run.
                    reason = f"{source.path}: {_os_reason(exc)}; skipped."
                    report.skipped.append({"path": source.path, "reason": reason})
                    progress.log(reason)
                    progress.advance(1)
                    continue
                readable.append(source)
                old = known.get(source.path)
                if old is not None and old.sha256 == source.sha256 and not report.reprocessed:
                    unchanged.append(source)
                elif source.path in failures and failures[source.path][0] == source.sha256:
                    report.files_failed += 1
                    report.failed.append(
                        {"path": source.path, "reason": failures[source.path][1] + " (unchanged since)"}
                    )
                else:
                    to_parse.append(source)
                progress.advance(1)
            progress.done()
            files = readable
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
            removed_rows: list[int] = []

            def drop(ids) -> int:
                ids = list(ids)
                removed_rows.extend(store.rows_of(ids).values())
                return store.delete_chunks(ids)

            try:
                if rebuild:
                    store.clear()
                for path in removed:
                    report.chunks_removed += drop(known[path].chunk_ids)
                    store.delete_document(path)
                for path in vanished_failures:
                    store.delete_failure(path)
                for source, reason in failed_now:
                    if source.path in known:  # it was good before: its old chunks go
                        report.chunks_removed += drop(known[source.path].chunk_ids)
                        store.delete_document(source.path)
                    store.put_failure(source.path, source.sha256, reason)
                for source, chunk_ids in per_file:
                    if source.path in known:
                        stale = set(known[source.path].chunk_ids) - set(chunk_ids)
                        report.chunks_removed += drop(stale)
                    store.put_document(source.path, source.sha256, source.size, source.mtime, chunk_ids)
                store.add_chunks(new_chunks, new_tokens, new_vectors)
                report.chunks_added = len(new_chunks)
                for source in unchanged:
                    store.touch_document(source.path, source.mtime)

                generation = int(meta.get("generation", "0")) + 1
                rows = store.rows_of([c.id for c in new_chunks])
                added_rows = np.asarray([rows[c.id] for c in new_chunks], dtype=np.int64)
                dimension = new_vectors.shape[1] if len(new_vectors) else int(meta.get("dimension", "0") or 0)
                written = write_stores(
                    store,
                    directory,
                    generation,
                    settings,
                    meta,
                    dimension,
                    rebuild,
                    np.asarray(removed_rows, dtype=np.int64),
                    added_rows,
                    new_vectors,
                    new_tokens,
                    progress,
                )
                store.set_meta(
                    {
                        "generation": generation,
                        "embed_model": settings.embed_model,
                        "dimension": dimension,
                        "dense_kind": written.vector_state.get("kind", ""),
                        "vector_store": json.dumps(written.vector_state),
                        "keyword_store": json.dumps(written.keyword_state),
                        "documents": len(store.documents()),
                        "chunks": store.count_chunks(),
                        "updated_at": time.time(),
                        "chunk_tokens": settings.chunk_tokens,
                        "chunk_overlap": settings.chunk_overlap,
                        "processing": processing,
                        "root": str(root.resolve()),
                        # what encoded the documents (latest run that embedded any)
                        "document_encoder": report.document_encoder or meta.get("document_encoder", ""),
                    }
                )
                _before_commit_hook()
                store.commit()
            except BaseException:
                store.rollback()
                raise
            written.committed()
            stages["write"] = time.perf_counter() - t
            report.bytes_written = written.bytes_written
            remove_unused_files(directory, [written.files, written.previous_files])
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
    # Passages may go through a faster copy of the model than questions (rag/document_encoding.py).
    embed_documents = getattr(embedder, "embed_documents", embedder.embed)
    if hasattr(embedder, "warm_up_documents"):
        embedder.warm_up_documents()
    stages["load_model"] = time.perf_counter() - t
    plan = ChunkPlan(
        tokenizer=embedder.tokenizer_source,
        max_tokens=min(settings.chunk_tokens, embedder.max_tokens),
        overlap=settings.chunk_overlap,
        max_bytes=int(settings.max_file_mb * 1024 * 1024),
        parse_timeout_s=settings.parse_timeout_s,
    )
    # In-process preparation reuses the loaded model's tokenizer instead of loading another.
    local_chunker = Chunker(remembering(embedder.count_tokens), plan.max_tokens, plan.overlap, embedder.split_tokens)
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
            # Repeated texts (a repetitive file, boilerplate) are embedded once.
            unique = list(dict.fromkeys(c.text for c in pending))
            embedded = embed_documents(unique)
            if len(unique) < len(pending):
                row = {text: i for i, text in enumerate(unique)}
                embedded = embedded[[row[c.text] for c in pending]]
            vectors.append(embedded)
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
        prepare_files,
        wave_files=None if pick_device(settings.device) == "cuda" else PARSE_WAVE_FILES,
        progress=progress,
    )
    took: list[tuple[float, str]] = []
    for item in prepare(to_parse, plan, settings.workers, local_chunker):
        source = by_path[item.path]
        for key, value in item.seconds.items():
            worker_seconds[key] = worker_seconds.get(key, 0.0) + value
        took.append((sum(item.seconds.values()), source.path))
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
    report.slowest = [{"path": path, "seconds": round(seconds, 2)} for seconds, path in sorted(took, reverse=True)[:5]]
    report.chunks_embedded = len(new_chunks)
    if new_chunks:
        report.document_encoder = getattr(embedder, "document_encoder_name", "") or getattr(embedder, "name", "")
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, embedder.dimension), dtype=np.float32)
    return new_chunks, matrix, new_tokens, per_file, failed_now


@dataclass
class WrittenStores:
    """What :func:`write_stores` wrote for a generation, and what to do once it is committed."""

    vector_state: dict
    keyword_state: dict
    files: list[str]
    previous_files: list[str]
    bytes_written: int
    dirty_marker: Path | None = None

    def committed(self) -> None:
        """The generation is committed: an in-place store is in line with the chunk store again."""
        if self.dirty_marker is not None:
            self.dirty_marker.unlink(missing_ok=True)


DIRTY_MARKER = ".vector-store-dirty"


def write_stores(
    store,
    directory: Path,
    generation: int,
    settings: Settings,
    meta: dict[str, str],
    dimension: int,
    rebuild: bool,
    removed_rows: np.ndarray,
    added_rows: np.ndarray,
    vectors: np.ndarray,
    tokens: list[list[str]],
    progress: Progress,
) -> WrittenStores:
    """Bring the vector and keyword stores to what the chunk store holds now (inside its open
    transaction) and write their files for ``generation``, beside the live ones.

    A store of the configured backend that the live generation recorded takes only the changes
    (removed and added rows): with the default stores, a small ingest writes a small delta
    segment and a deletion set. A new index, ``--rebuild``, a folder written before segments, or
    another backend configured than the one recorded, gets a new store filled from every chunk
    in ``chunks.sqlite`` (vectors and tokens are read in batches).
    """
    from rag.index import store_states
    from rag.stores.registry import StoreOpener, keyword_store_class, vector_store_class

    opener = StoreOpener(settings, directory)
    old_vector, old_keyword = store_states(meta)
    previous = []
    for state, cls in ((old_vector, vector_store_class), (old_keyword, keyword_store_class)):
        if state:
            try:
                previous += cls(state["name"]).open(directory, state, settings, dimension).files()
            except (OSError, ValueError, KeyError):
                pass
    dirty: Path | None = None

    vector_fresh = rebuild or old_vector is None or old_vector.get("name") != settings.vector_store
    vector = opener.vector(None if vector_fresh else old_vector, dimension)
    if not getattr(vector, "versioned", True):
        # Changed in place: mark it before touching it, so a crash before the commit is repaired.
        dirty = directory / DIRTY_MARKER
        was_dirty = dirty.exists()
        dirty.write_text(str(generation))
        fsync(dirty)
        if vector_fresh or was_dirty:
            _reconcile(vector, store, progress)
        else:
            vector.delete(removed_rows)
            vector.add(added_rows, vectors)
    elif vector_fresh:
        progress.log(f"building the vector index over {store.count_chunks()} chunks")
        for ids, part in store.iter_vectors():
            vector.add(ids, part)
    else:
        vector.delete(removed_rows)
        vector.add(added_rows, vectors)
    vector_state = vector.save(generation)

    keyword_fresh = rebuild or old_keyword is None or old_keyword.get("name") != settings.keyword_store
    keyword = opener.keyword(None if keyword_fresh else old_keyword)
    if keyword_fresh:
        for ids, part in store.iter_tokens():
            keyword.add(ids, part)
    else:
        keyword.delete(removed_rows)
        keyword.add(added_rows, tokens)
    keyword_state = keyword.save(generation)
    fsync(directory)
    files = vector.files() + keyword.files()
    old = set(previous)
    written = sum((directory / name).stat().st_size for name in files if name not in old)
    return WrittenStores(vector_state, keyword_state, files, previous, written, dirty)


def _reconcile(vector, store, progress: Progress) -> None:
    """Make an in-place vector store hold exactly the chunk store's rows (after a crash, or when
    it is filled for the first time)."""
    want = store.all_rows()
    have = vector.ids()
    extra = np.setdiff1d(have, want)
    missing = set(np.setdiff1d(want, have).tolist())
    if len(extra) or missing:
        progress.log(
            f"bringing the {vector.name} store in line with the chunk store "
            f"({len(extra)} to remove, {len(missing)} to add)"
        )
    vector.delete(extra)
    if missing:
        for ids, part in store.iter_vectors():
            keep = np.fromiter((int(i) in missing for i in ids), dtype=bool, count=len(ids))
            if keep.any():
                vector.add(ids[keep], part[keep])


STORE_FILE_PREFIXES = ("dense-", "sparse-")


def remove_unused_files(directory: Path, keep: list[list[str]]) -> None:
    """Remove store files that neither the live generation nor the one before it reads (a reader
    may still be loading that one)."""
    wanted = {name for names in keep for name in names}
    for path in directory.iterdir():
        if path.name.startswith(STORE_FILE_PREFIXES) and path.name not in wanted and path.is_file():
            path.unlink(missing_ok=True)


def _finish(
    report: IngestReport, store, directory: Path, started: float, stages: dict[str, float], meta: dict[str, str]
) -> IngestReport:
    report.seconds = round(time.perf_counter() - started, 3)
    report.chunks_total = int(meta.get("chunks", "0") or 0)
    report.documents_total = int(meta.get("documents", "0") or 0)
    report.generation = int(meta.get("generation", "0") or 0)
    report.dense_kind = meta.get("dense_kind", "")
    report.chunks_per_s = round(report.chunks_embedded / report.seconds, 2) if report.seconds else 0.0
    report.index_bytes = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    report.stage_seconds = {k: round(v, 3) for k, v in stages.items()}
    return report
