"""``faiss-ivf-sq8``: the compressed index for large corpora.

Each vector is kept as 8-bit scalar-quantised codes (384 bytes at 384-d, a quarter of float32:
384 MB for a million chunks) in an inverted file of about sqrt(n) lists, of which ``ivf_nprobe``
are scanned per query. Why SQ8 and not PQ: at a million 384-d chunks SQ8's codes already fit the
2 GB budget with the BM25 index and the model beside them, and SQ8 keeps scores close to the
float ones (within 0.02 in the contract tests) without PQ's training of sub-quantisers or a
re-ranking step; PQ (e.g. 48 bytes a vector) is the next step for tens of millions and was not
measured here. Why the inverted file: a plain (flat) SQ8 scan of a million 384-d codes took
76-92 ms per query on these 2 busy cores (bench/README.md, "scale_bench"), over the 50 ms bar,
while the inverted file reads ~3% of the codes (recall 0.985 on planted neighbours among random
vectors, the hardest case for it).

Compactions reuse the trained quantiser (removing deleted ids and adding the deltas' exact
vectors) until the index has grown to four times what it was trained on; then it is trained
again on the decoded vectors.
"""

from __future__ import annotations

import numpy as np

from rag.stores.faiss_segments import Segment, SegmentedFaissStore

BATCH = 100_000
RETRAIN_GROWTH = 4


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: ~sqrt(n), with at least 39 training points per list."""
    return max(1, min(int(np.sqrt(count)), count // 39, 65_536))


class FaissIvfSq8Store(SegmentedFaissStore):
    """IVF over 8-bit scalar-quantised vectors (inner product)."""

    name = "faiss-ivf-sq8"

    def base_kind(self, count: int) -> str:
        """Always IVF-SQ8."""
        return "ivf-sq8"

    def build_base(self, parts: list[tuple[np.ndarray, np.ndarray]], count: int):
        """An IVF-SQ8 index trained on a sample of ``parts`` and holding all of them."""
        import faiss

        nlist = ivf_lists(count)
        quantizer = faiss.IndexFlatIP(self.dimension)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.cp.seed = 1234
        sample_size = min(count, max(64 * nlist, 20_000))
        rng = np.random.default_rng(0)
        # A sample drawn from every part in proportion to its size (parts come in id order).
        sample = [
            p[1][rng.choice(len(p[1]), size=max(1, round(sample_size * len(p[1]) / count)), replace=False)]
            for p in parts
            if len(p[1])
        ]
        index.train(np.ascontiguousarray(np.concatenate(sample)))
        for ids, vectors in parts:
            for start in range(0, len(ids), BATCH):
                index.add_with_ids(np.ascontiguousarray(vectors[start : start + BATCH]), ids[start : start + BATCH])
        self.extra["trained_on"] = int(count)
        return self.prepare_loaded(Segment("", "ivf-sq8"), index)

    def compact(self, generation: int):
        """``(index, ids)``: the trained base with the deltas' and pending vectors added and the
        deleted ones removed, without training again; built and trained afresh (the base class's
        compaction) once the count outgrows ``RETRAIN_GROWTH`` times what it was trained on."""
        import faiss

        base = self.segments[0] if self.segments and self.segments[0].kind == "ivf-sq8" else None
        count = self.count()
        if base is None or count > RETRAIN_GROWTH * int(self.extra.get("trained_on", 0)):
            return super().compact(generation)
        index = faiss.clone_index(self._index(base))
        base_ids = self._ids(base)
        kept = [base_ids]
        if self._deleted_in(base):
            index.remove_ids(faiss.IDSelectorBatch(self.deleted.ids))
            kept = [base_ids[~self.deleted.contains(base_ids)]]
        for segment in self.segments[1:]:
            ids, vectors = self.segment_vectors(segment)
            if self._deleted_in(segment):
                keep = ~self.deleted.contains(ids)
                ids, vectors = ids[keep], vectors[keep]
            index.add_with_ids(vectors, ids)
            kept.append(ids)
        for ids, vectors in self._pending:
            index.add_with_ids(vectors, ids)
            kept.append(ids)
        return self.prepare_loaded(base, index), np.concatenate(kept)

    def prepare_loaded(self, segment: Segment, index):
        """Search settings of a freshly read index (nprobe for IVF-SQ8, the base class's for the rest)."""
        import faiss

        if segment.kind == "ivf-sq8":
            faiss.extract_index_ivf(index).nprobe = self.settings.ivf_nprobe
            return index
        return super().prepare_loaded(segment, index)

    def search_params(self, segment: Segment, selector):
        """FAISS search parameters with ``selector`` (nprobe for an IVF-SQ8 segment)."""
        import faiss

        if segment.kind != "ivf-sq8":
            return super().search_params(segment, selector)
        params = faiss.SearchParametersIVF()
        params.nprobe = self.settings.ivf_nprobe
        params.sel = selector
        return params

    def segment_vectors(self, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
        """All ``(ids, vectors)`` of a segment; an IVF-SQ8 one gives its decoded (quantised) vectors."""
        import faiss

        if segment.kind != "ivf-sq8":
            return super().segment_vectors(segment)
        # Decoded codes (within the quantisation step of the vectors that were added).
        index = faiss.clone_index(self._index(segment))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        ids = self._ids(segment)
        return ids, index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dimension), np.float32)
