"""The write lock: only one ingest may write an index folder at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

from rag.errors import IndexLockedError


class WriteLock:
    """An exclusive, non-blocking lock on the index folder; the OS drops it if we die."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._handle: TextIO | None = None

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
