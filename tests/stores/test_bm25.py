"""The keyword store contract on ``bm25``, and what only ``bm25`` offers."""

import numpy as np

from rag.text import search_tokens
from tests.stores.contract import KeywordStoreContract


class TestBM25(KeywordStoreContract):
    backend = "bm25"

    def test_document_frequency_counts_live_documents_across_segments(self, directory, settings):
        store = self.open(directory, settings)
        store.add(np.array([0, 1, 2]), [search_tokens(d) for d in self.DOCS[:3]])
        store = self.open(directory, settings, store.save(1))
        store.add(np.array([3, 4, 5]), [search_tokens(d) for d in self.DOCS[3:]])  # pending, unsaved
        assert store.document_frequency(["cat", "dog", "训练", "unknownword"]) == {
            "cat": 3,
            "dog": 2,
            "训练": 2,
            "unknownword": 0,
        }
        store.delete([0])  # "The cat sat on the mat."
        store = self.open(directory, settings, store.save(2))
        assert store.document_frequency(["cat", "mat"]) == {"cat": 2, "mat": 1}
