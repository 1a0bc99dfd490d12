"""The store contract on ``faiss-flat`` (exact)."""

from tests.stores.contract import VectorGenerationContract


class TestFaissFlat(VectorGenerationContract):
    backend = "faiss-flat"
