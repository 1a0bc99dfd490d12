"""Progress output for the ingest CLI: a bar on a terminal, periodic plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TerminalProgress:
    """tqdm bar over files, showing chunks embedded, rate and ETA."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self._bar = None
        self._chunks = 0
        self._started = time.perf_counter()

    def stage(self, name: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        self._chunks = 0
        self._started = time.perf_counter()
        self._bar = tqdm(total=total, desc=name, unit="file", file=self.stream, dynamic_ncols=True)

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        if self._bar is None:
            return
        if chunks:
            self._chunks += chunks
            elapsed = max(time.perf_counter() - self._started, 1e-9)
            self._bar.set_postfix(chunks=self._chunks, chunks_per_s=f"{self._chunks / elapsed:.1f}", refresh=False)
        self._bar.update(n)

    def log(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)

    def done(self) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class PlainProgress:
    """One line every few seconds, for logs and CI where a bar would be noise."""

    def __init__(self, stream: TextIO = sys.stderr, every: float = 5.0) -> None:
        self.stream = stream
        self.every = every
        self._name = ""
        self._total = 0
        self._done = 0
        self._chunks = 0
        self._started = time.perf_counter()
        self._last = 0.0

    def stage(self, name: str, total: int) -> None:
        self._name, self._total, self._done, self._chunks = name, total, 0, 0
        self._started = self._last = time.perf_counter()
        print(f"{name}: {total} files", file=self.stream, flush=True)

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        self._done += n
        self._chunks += chunks
        now = time.perf_counter()
        if now - self._last >= self.every or (self._total and self._done == self._total and n):
            self._last = now
            elapsed = now - self._started
            rate = self._done / elapsed if elapsed else 0.0
            eta = (self._total - self._done) / rate if rate else 0.0
            print(
                f"{self._name}: {self._done}/{self._total} files, {self._chunks} chunks, "
                f"{self._chunks / elapsed if elapsed else 0:.1f} chunks/s, ETA {eta:.0f} s",
                file=self.stream,
                flush=True,
            )

    def log(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def done(self) -> None:
        pass

    def close(self) -> None:
        pass


class QuietProgress(PlainProgress):
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        pass

    def log(self, line: str) -> None:
        pass


def make_progress(quiet: bool = False, stream: TextIO = sys.stderr):
    if quiet:
        return QuietProgress(stream)
    if stream.isatty():
        return TerminalProgress(stream)
    return PlainProgress(stream)
