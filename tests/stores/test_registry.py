"""Store backends by name or by ``module:Class`` path, checked against the interface."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ConfigError
from rag.index import Index
from rag.stores.faiss_flat import FaissFlatStore
from rag.stores.registry import VECTOR_STORES, StoreOpener, keyword_store_class, vector_store_class


class ShoutingFlatStore(FaissFlatStore):
    """A user's own backend: a subclass found by its import path."""

    name = "tests.stores.test_registry:ShoutingFlatStore"


class NotAStore:
    def search(self, queries, k):
        return None


def test_every_registered_backend_resolves_and_has_the_interface():
    for name in VECTOR_STORES:
        assert vector_store_class(name).name == name
    assert keyword_store_class("bm25").name == "bm25"


def test_a_user_class_by_import_path_is_used(tmp_path):
    settings = Settings.load(env={}, overrides={"index_dir": tmp_path, "vector_store": ShoutingFlatStore.name})
    store = StoreOpener(settings, tmp_path).vector(None, 4)
    assert isinstance(store, ShoutingFlatStore)
    store.add(np.array([1]), np.eye(4, dtype=np.float32)[:1])
    assert store.save(1)["name"] == ShoutingFlatStore.name


def test_unknown_names_and_incomplete_classes_get_one_sentence():
    with pytest.raises(ConfigError, match="vector_store must be one of faiss, faiss-flat.*not 'milvus'"):
        vector_store_class("milvus")
    with pytest.raises(ConfigError, match="cannot import"):
        vector_store_class("no.such.module:Store")
    with pytest.raises(ConfigError, match="lacks open, count, ids, add, delete, save, files"):
        vector_store_class("tests.stores.test_registry:NotAStore")


def test_env_setting_reaches_the_store(tmp_path):
    settings = Settings.load(
        env={"RAG_VECTOR_STORE": "faiss-hnsw", "RAG_IVF_NPROBE": "8"}, overrides={"index_dir": tmp_path}
    )
    assert settings.vector_store == "faiss-hnsw" and settings.ivf_nprobe == 8
    assert settings.to_dict()["qdrant_api_key"] == ""
    assert Settings.load(env={"RAG_QDRANT_API_KEY": "secret"}).to_dict()["qdrant_api_key"] == "***"


@pytest.mark.slow
def test_index_receives_its_stores(tmp_path, settings, embedder):
    """Index opens each generation's stores through the opener it is given."""
    opened = []

    class CountingOpener(StoreOpener):
        def vector(self, state, dimension):
            opened.append(state["name"])
            return super().vector(state, dimension)

    from rag.ingestion import ingest_folder
    from tests import docfactory

    docfactory.make_txt(tmp_path / "docs" / "a.txt", "The Zephyr pump runs at 3400 rpm.\n")
    ingest_folder(tmp_path / "docs", settings, embedder=embedder)
    index = Index.open(settings, embedder=embedder, stores=CountingOpener(settings, settings.index_dir))
    assert opened == ["faiss"]
    assert index.search("Zephyr pump", 1)[0].chunk.source == "a.txt"
