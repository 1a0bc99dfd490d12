"""The store contract on ``faiss-hnsw`` (approximate)."""

from tests.stores.contract import VectorGenerationContract


class TestFaissHnsw(VectorGenerationContract):
    backend = "faiss-hnsw"
    exact = False
