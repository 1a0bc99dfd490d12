"""``faiss-flat``: exact search at any size (a brute-force scan; ~1.5 KB of RAM per 384-d vector)."""

from __future__ import annotations

from rag.stores.faiss_segments import SegmentedFaissStore


class FaissFlatStore(SegmentedFaissStore):
    """Exact inner-product search over every vector."""

    name = "faiss-flat"

    def base_kind(self, count: int) -> str:
        """Always flat (exact)."""
        return "flat"
