"""``faiss-hnsw``: an HNSW graph over full float vectors at any size (``hnsw_m``,
``hnsw_ef_construction``, ``hnsw_ef_search``); about a millisecond per query at 100k vectors."""

from __future__ import annotations

from rag.stores.faiss_segments import SegmentedFaissStore


class FaissHnswStore(SegmentedFaissStore):
    """Approximate search on an HNSW base; the deltas of small ingests are exact."""

    name = "faiss-hnsw"

    def base_kind(self, count: int) -> str:
        """Always HNSW."""
        return "hnsw"
