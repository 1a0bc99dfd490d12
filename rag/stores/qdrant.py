"""``qdrant``: the vectors in a Qdrant collection, for indexes that outgrow one process.

With ``qdrant_url`` set, the vectors live on that Qdrant server (``qdrant_api_key`` if it needs
one); with it empty, in Qdrant's local mode in ``<index_dir>/qdrant`` (no server, one process at
a time: what the tests use). Points are the chunk store's row numbers; scores are inner products
of the normalised vectors (cosine), as with FAISS.

What does not hold as with FAISS (README, "Stores"): Qdrant's storage is changed in place, not
versioned by our generations, so during an ingest a reader may already miss removed chunks (new
ones are not shown before the commit: their rows are not in SQLite yet), and an ingest that dies
before its commit leaves Qdrant ahead of the chunk store. The ingest marks the store "dirty"
before it touches it and clears the mark after the commit; the next ingest that finds the mark
brings Qdrant back in line with the committed chunk store (rag.ingestion).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np

from rag.config import Settings
from rag.errors import ConfigError
from rag.stores.base import State, as_ids

BATCH = 512
# Qdrant's local mode locks its folder for the process that opened it: one client per folder per
# process, shared by the index readers and the ingest of that process.
_LOCAL_CLIENTS: dict[str, Any] = {}
_LOCAL_LOCK = threading.Lock()


def qdrant_client(settings: Settings, directory: Path):
    """A client for the configured server, or the process's client for local mode in ``directory``."""
    try:
        from qdrant_client import QdrantClient
    except ImportError as exc:
        raise ConfigError(
            "vector_store is 'qdrant' but qdrant-client is not installed; pip install qdrant-client."
        ) from exc
    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=30)
    path = str((Path(directory) / "qdrant").resolve())
    with _LOCAL_LOCK:
        client = _LOCAL_CLIENTS.get(path)
        if client is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            try:
                client = QdrantClient(path=path)
            except RuntimeError as exc:
                raise ConfigError(
                    f"Qdrant's local mode lets one process at a time use {path} and another holds it; stop "
                    "that process (a server or an ingest) or set qdrant_url to a Qdrant server."
                ) from exc
            _LOCAL_CLIENTS[path] = client
    return client


def close_local_clients() -> None:
    """Close the local-mode clients of this process (tests; a process's exit does it too)."""
    with _LOCAL_LOCK:
        for client in _LOCAL_CLIENTS.values():
            client.close()
        _LOCAL_CLIENTS.clear()


class QdrantStore:
    """A Qdrant collection of the index's vectors (dot product on normalised vectors)."""

    name = "qdrant"
    versioned = False

    def __init__(self, client, collection: str, dimension: int) -> None:
        self.client = client
        self.collection = collection
        self.dimension = int(dimension)
        self._exists = client.collection_exists(collection)

    @classmethod
    def open(cls, directory: Path, state: State | None, settings: Settings, dimension: int) -> QdrantStore:
        """The collection ``state`` recorded (or the configured one), through this process's client."""
        state = state or {}
        collection = state.get("collection") or settings.qdrant_collection
        return cls(qdrant_client(settings, directory), collection, int(state.get("dimension") or dimension))

    def _ensure(self, dimension: int) -> None:
        if self._exists:
            return
        from qdrant_client import models

        self.dimension = self.dimension or dimension
        self.client.create_collection(
            self.collection, vectors_config=models.VectorParams(size=self.dimension, distance=models.Distance.DOT)
        )
        self._exists = True

    def count(self) -> int:
        """How many points the collection holds (0 before it exists)."""
        if not self._exists:
            return 0
        return int(self.client.count(self.collection, exact=True).count)

    def ids(self) -> np.ndarray:
        """Every point id of the collection, scrolled through."""
        if not self._exists:
            return np.zeros(0, np.int64)
        found: list[int] = []
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=10_000, offset=offset, with_payload=False, with_vectors=False
            )
            found.extend(int(p.id) for p in points)
            if offset is None:
                return np.asarray(found, dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Upsert ``vectors`` under ``ids`` in batches, creating the collection on first use."""
        from qdrant_client import models

        ids = as_ids(ids)
        if not len(ids):
            return
        if len(np.unique(ids)) != len(ids):
            raise ValueError("add() got the same id twice")
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        self._ensure(vectors.shape[1])
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions; this store holds {self.dimension}")
        for start in range(0, len(ids), BATCH):
            part = slice(start, start + BATCH)
            self.client.upsert(
                self.collection,
                points=models.Batch(ids=[int(i) for i in ids[part]], vectors=vectors[part].tolist()),
                wait=True,
            )

    def delete(self, ids: Iterable[int]) -> int:
        """Delete the points of these ids that exist; returns how many did."""
        from qdrant_client import models

        ids = [int(i) for i in np.unique(as_ids(ids))]
        if not ids or not self._exists:
            return 0
        held = 0
        for start in range(0, len(ids), BATCH):
            part = ids[start : start + BATCH]
            present: list[int | str | UUID] = [
                int(p.id) for p in self.client.retrieve(self.collection, part, with_payload=False, with_vectors=False)
            ]
            if present:
                self.client.delete(self.collection, points_selector=models.PointIdsList(points=present), wait=True)
            held += len(present)
        return held

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each (queries x k), best first; missing results have id -1."""
        from qdrant_client import models

        queries = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if not self._exists or k <= 0 or not len(queries):
            return scores, ids
        requests = [models.QueryRequest(query=q.tolist(), limit=k, with_payload=False) for q in queries]
        for row, response in enumerate(self.client.query_batch_points(self.collection, requests=requests)):
            for col, point in enumerate(response.points[:k]):
                scores[row, col] = point.score
                ids[row, col] = int(point.id)
        return scores, ids

    def save(self, generation: int) -> State:
        # Qdrant applied every change as it was made; what a generation records is where they are.
        """Where the data is (Qdrant applied every change as it came): the state to record."""
        return {"name": self.name, "collection": self.collection, "dimension": self.dimension, "kind": "qdrant"}

    def files(self) -> list[str]:
        """None: the data lives in Qdrant, not in the index folder's files."""
        return []
