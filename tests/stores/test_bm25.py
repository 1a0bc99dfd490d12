"""The keyword store contract on ``bm25``."""

from tests.stores.contract import KeywordStoreContract


class TestBM25(KeywordStoreContract):
    backend = "bm25"
