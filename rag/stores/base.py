"""The two store interfaces an :class:`rag.index.Index` is given: vectors and keywords.

Both hold items by an integer id (the chunk store's row number) and have the same life cycle,
the one the crash-safe commit of ``rag.index`` needs:

1. ``open(directory, state, settings, dimension)`` opens what a committed generation recorded
   (``state`` is the JSON-friendly dict that ``save`` returned then; ``None`` = a new, empty store);
2. ``add`` / ``delete`` change it in memory (``add`` of an id already held replaces it);
3. ``save(generation)`` makes the changes durable *beside* the files of earlier generations,
   which it never modifies, and returns the new state; the caller records that state in the
   SQLite transaction that commits the generation, so readers switch only after it is complete;
4. ``files()`` names the files in ``directory`` the current state reads, so the caller can remove
   those of older generations once nothing points to them.

A store whose data lives elsewhere and cannot be versioned (a database server) sets
``versioned = False``: its ``save`` records where the data is, and the ingest brings it back in
line with the committed chunk store when an earlier ingest stopped halfway (see README, "Stores").

Backends are chosen by name in :mod:`rag.stores.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.config import Settings

State = dict[str, Any]


@runtime_checkable
class VectorStore(Protocol):
    """Normalised float32 vectors by id, searched by inner product (= cosine)."""

    name: str
    versioned: bool

    @classmethod
    def open(cls, directory: Path, state: State | None, settings: Settings, dimension: int) -> VectorStore:
        """Open the store a generation recorded in ``state`` (``None``: a new, empty store)."""
        ...

    def count(self) -> int:
        """How many vectors are held."""
        ...

    def ids(self) -> np.ndarray:
        """The ids held (int64, any order)."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (n x dimension) under ``ids``; an id already held is replaced."""
        ...

    def delete(self, ids: Iterable[int]) -> int:
        """Remove these ids; returns how many were held."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each (queries x k), best first; missing results have id -1."""
        ...

    def save(self, generation: int) -> State:
        """Write the changes for ``generation`` beside earlier files; returns the state to record."""
        ...

    def files(self) -> list[str]:
        """Names of the files in the index folder that the current state reads."""
        ...


@runtime_checkable
class KeywordStore(Protocol):
    """Token lists by id, ranked by a keyword score (BM25 for the default)."""

    name: str
    versioned: bool

    @classmethod
    def open(cls, directory: Path, state: State | None, settings: Settings, dimension: int) -> KeywordStore:
        """Open the store a generation recorded in ``state`` (``None``: a new, empty store)."""
        ...

    def count(self) -> int:
        """How many token lists are held."""
        ...

    def ids(self) -> np.ndarray:
        """The ids held (int64, any order)."""
        ...

    def add(self, ids: np.ndarray, tokens: Sequence[Sequence[str]]) -> None:
        """Add one token list per id; an id already held is replaced."""
        ...

    def delete(self, ids: Iterable[int]) -> int:
        """Remove these ids; returns how many were held."""
        ...

    def search(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` for one query, best first; items with no query term are left out."""
        ...

    def save(self, generation: int) -> State:
        """Write the changes for ``generation`` beside earlier files; returns the state to record."""
        ...

    def files(self) -> list[str]:
        """Names of the files in the index folder that the current state reads."""
        ...


# What the registry checks a class named by import path for.
STORE_MEMBERS = ("open", "count", "ids", "add", "delete", "search", "save", "files")


def as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    """Ids as a flat int64 array."""
    return np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).reshape(-1)
