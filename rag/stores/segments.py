"""What the FAISS and BM25 stores share: a generation is a list of immutable segment files.

A generation's state lists a *base* segment, the small *delta* segments written by later
ingests, and a *deletion set* (ids removed from any segment). A small ingest writes one new delta
and, when something was removed, a new deletion set; nothing already written is modified, so the
files of the generation readers use stay as they were until the SQLite commit points elsewhere.
When the deltas or deletions grow past a share of the base, ``save`` compacts everything into a
new base instead (the only time a whole index is written again).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# Compact when the deltas hold more than this share of the base, when there are more than
# MAX_DELTAS of them, or when deletions pass DELETED_SHARE of everything stored. Below
# COMPACT_FLOOR items everything is rewritten each time (it is cheap and keeps small indexes
# in one segment, as they were before segments).
DELTA_SHARE = 0.10
MAX_DELTAS = 8
DELETED_SHARE = 0.10
COMPACT_FLOOR = 20_000


def should_compact(base: int, deltas: list[int], deleted: int, pending: int) -> bool:
    """Whether the next save writes one new base rather than a delta."""
    total = base + sum(deltas) + pending
    if base == 0 or total <= COMPACT_FLOOR:
        return True
    if len(deltas) + (1 if pending else 0) > MAX_DELTAS:
        return True
    if sum(deltas) + pending > DELTA_SHARE * base:
        return True
    return deleted > DELETED_SHARE * total


def fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_array(path: Path, array: np.ndarray) -> None:
    """Write one ``.npy`` file and flush it."""
    with open(path, "wb") as handle:
        np.save(handle, array)
    fsync(path)


def load_array(path: Path) -> np.ndarray:
    """Read one ``.npy`` file (no pickled objects)."""
    return np.load(path, allow_pickle=False)


class DeletionSet:
    """Sorted ids removed from saved segments; ``dirty`` when it changed since it was written."""

    def __init__(self, ids: np.ndarray | None = None, file: str | None = None) -> None:
        self.ids = np.unique(np.asarray(ids if ids is not None else [], dtype=np.int64))
        self.file = file
        self.dirty = False

    def __len__(self) -> int:
        return int(len(self.ids))

    def add(self, ids: np.ndarray) -> None:
        """Add these ids to the set."""
        if len(ids):
            self.ids = np.union1d(self.ids, ids.astype(np.int64))
            self.dirty = True

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask over ``ids``."""
        if not len(self.ids):
            return np.zeros(len(ids), dtype=bool)
        return np.isin(ids, self.ids, assume_unique=False)

    def save(self, directory: Path, name: str) -> str | None:
        """Write the set (when it changed) as ``name``; returns the file the state records."""
        if not len(self.ids):
            self.file, self.dirty = None, False
            return None
        if self.dirty or self.file is None:
            save_array(directory / name, self.ids)
            self.file, self.dirty = name, False
        return self.file
