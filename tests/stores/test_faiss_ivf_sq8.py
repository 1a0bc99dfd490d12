"""The store contract on ``faiss-ivf-sq8`` (compressed: 8-bit codes, scores within ~0.01)."""

from tests.stores.contract import VectorGenerationContract


class TestFaissIvfSq8(VectorGenerationContract):
    backend = "faiss-ivf-sq8"
    exact = False
    score_tolerance = 0.02
