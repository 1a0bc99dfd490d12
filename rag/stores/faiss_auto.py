"""``faiss`` (the default): exact flat search up to ``exact_search_max`` vectors, HNSW above,
as the index has always been built; the base is rebuilt in the other kind when a compaction
finds the count on the other side of the threshold."""

from __future__ import annotations

from rag.stores.dense import index_kind
from rag.stores.faiss_segments import SegmentedFaissStore, dense_params


class FaissAutoStore(SegmentedFaissStore):
    """Flat below ``exact_search_max`` vectors, HNSW above."""

    name = "faiss"

    def base_kind(self, count: int) -> str:
        """Flat or HNSW, by ``count`` against ``exact_search_max``."""
        return index_kind(count, dense_params(self.settings), on_gpu=False)
