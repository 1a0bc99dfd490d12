"""Preparing one file: read, parse, chunk and tokenise it for search, within its time budget."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.documents import Chunk
from rag.errors import ParseError
from rag.ingestion.report import Progress
from rag.ingestion.scanning import open_regular, os_reason
from rag.ingestion.tokens import token_functions

if TYPE_CHECKING:
    from rag.chunking import Chunker


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


def prepare_file(abspath: Path, rel: str, plan: ChunkPlan, chunker: Chunker | None = None) -> Prepared:
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


def _warm_up(plan: ChunkPlan, chunker: Chunker | None) -> None:
    """Load the parser and tokenizer outside any file's time budget (once per process)."""
    from rag.parsing import warm_up

    try:
        warm_up()
        if chunker is None:
            _worker_chunker(plan)
    except Exception:  # noqa: BLE001 - the file's own preparation reports what is wrong
        pass


def timeout_reason(rel: str, limit: float) -> str:
    """The one-line reason given for a file stopped at its time budget of ``limit`` seconds."""
    return (
        f"{rel}: preparing it took longer than the {limit:g} s budget (parse_timeout_s), so it was "
        "stopped; split the file, or raise parse_timeout_s (RAG_PARSE_TIMEOUT_S) and retry."
    )


def _prepare(abspath: Path, rel: str, plan: ChunkPlan, chunker: Chunker | None, seconds: dict[str, float]) -> Prepared:
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
        return Prepared(rel, error=f"{rel}: {os_reason(exc)}")
    read: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mtime": info.st_mtime}
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
    into a C library at its return.

    The exception can land where Python cannot pass it on: in a weakref or ``__del__`` callback
    run by the garbage collector, it is printed as "unraisable" and dropped, or in a library's
    ``except BaseException``. So the timer fires again every :data:`RETRY_S` until the block
    ends, and a block that ends normally after the budget was spent raises the timeout on exit.
    """
    if not seconds or seconds <= 0 or not can_time_limit():
        yield
        return
    fired = False

    def expired(signum: int, frame: object) -> None:
        nonlocal fired
        fired = True
        raise ParseTimeout()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:  # every raise was swallowed on the way out: the budget was still spent
        raise ParseTimeout()


# After the time budget runs out, how often the timeout is raised again if it was swallowed.
RETRY_S = 0.25


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
def _worker_chunker(plan: ChunkPlan) -> Chunker:
    """A chunker built from the embedder's tokenizer, once per worker process."""
    from rag.chunking import Chunker

    count, split = token_functions(plan.tokenizer)
    return Chunker(count, plan.max_tokens, plan.overlap, split)
