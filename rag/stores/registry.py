"""Store backends by the short names ``vector_store`` and ``keyword_store`` take, or a
``"module:Class"`` path to a user's own class, checked against the interface of
:mod:`rag.stores.base`. The name is what an index records, so it must never change meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import ConfigError
from rag.stores.base import STORE_MEMBERS, KeywordStore, State, VectorStore

VECTOR_STORES = {
    "faiss": "rag.stores.faiss_auto:FaissAutoStore",
    "faiss-flat": "rag.stores.faiss_flat:FaissFlatStore",
    "faiss-hnsw": "rag.stores.faiss_hnsw:FaissHnswStore",
    "faiss-ivf-sq8": "rag.stores.faiss_ivf_sq8:FaissIvfSq8Store",
    "qdrant": "rag.stores.qdrant:QdrantStore",
}
KEYWORD_STORES = {
    "bm25": "rag.stores.bm25:BM25Store",
    # Only read: the keyword index of folders written before segments (the next ingest replaces it).
    "bm25-v1": "rag.stores.sparse:LegacySparseStore",
}


def _resolve(setting: str, name: str, table: dict[str, str]) -> Any:
    from rag.registry import backend_class

    cls = backend_class(setting, name, table, STORE_MEMBERS, "store (rag.stores.base)")
    if cls is None:
        raise ConfigError(
            f"{setting} must be one of {', '.join(n for n in table if n != 'bm25-v1')} "
            f"or a module:Class path, not '{name}'."
        )
    return cls


def vector_store_class(name: str) -> type[VectorStore]:
    """The class for a vector store name or ``module:Class`` path."""
    return _resolve("vector_store", name, VECTOR_STORES)


def keyword_store_class(name: str) -> type[KeywordStore]:
    """The class for a keyword store name or ``module:Class`` path."""
    return _resolve("keyword_store", name, KEYWORD_STORES)


class StoreOpener:
    """Opens the stores a generation recorded (or new, empty ones of the configured backends):
    what :class:`rag.index.Index` and the ingest are given instead of building stores themselves."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        self.settings = settings
        self.directory = Path(directory)

    def vector(self, state: State | None, dimension: int) -> VectorStore:
        """The vector store ``state`` recorded, or a new one of the configured backend."""
        name = (state or {}).get("name") or self.settings.vector_store
        return vector_store_class(name).open(self.directory, state, self.settings, dimension)

    def keyword(self, state: State | None, dimension: int = 0) -> KeywordStore:
        """The keyword store ``state`` recorded, or a new one of the configured backend."""
        name = (state or {}).get("name") or self.settings.keyword_store
        return keyword_store_class(name).open(self.directory, state, self.settings, dimension)
