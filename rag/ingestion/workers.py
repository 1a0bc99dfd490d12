"""Preparing many files: in worker processes that the parent watches, naming slow files and
stopping stuck ones; on a CPU in waves that take turns with embedding."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.ingestion.preparing import (
    SLOW_NOTICE_S,
    ChunkPlan,
    Prepared,
    can_time_limit,
    prepare_file,
    slow_notice,
    timeout_reason,
)
from rag.ingestion.report import Progress, SilentProgress
from rag.ingestion.scanning import SourceFile

if TYPE_CHECKING:
    from rag.chunking import Chunker


# With at least this many files to prepare, preparation runs in worker processes while the
# main process embeds; below it, starting workers (a few seconds each) costs more than it saves.
POOL_MIN_FILES = 16


_STARTS: Any = None  # in a pool worker: the queue on which it says which file it starts


def _prepare_in_worker(abspath: str, rel: str, plan: ChunkPlan) -> Prepared:
    if _STARTS is not None:
        _STARTS.put((rel, os.getpid(), time.monotonic()))
    return prepare_file(Path(abspath), rel, plan)


PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int, starts: Any = None) -> None:
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
    chunker: Chunker | None = None,
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
        self.starts: Any = None  # a multiprocessing queue of (path, worker pid, started)
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
            assert self.pool is not None
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
