"""The store contract on ``faiss`` (the default: flat up to exact_search_max, HNSW above)."""

from tests.stores.contract import VectorGenerationContract


class TestFaissAutoExact(VectorGenerationContract):
    backend = "faiss"


class TestFaissAutoAboveTheThreshold(VectorGenerationContract):
    """With a threshold of 100 vectors most tests here cross into HNSW."""

    backend = "faiss"
    settings_changes = {"exact_search_max": 100}
    exact = False
