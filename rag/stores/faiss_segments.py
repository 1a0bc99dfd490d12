"""FAISS vector stores as segments (see :mod:`rag.stores.segments`).

A base segment is whatever kind the backend builds (exact flat, HNSW, IVF-SQ8); the deltas that
small ingests add are always exact flat indexes, small enough to scan. A search asks every
segment, leaves out deleted ids (reading deeper into a segment that holds some, or filtering
inside FAISS when it holds many) and merges the lists by score. The backends in
``faiss_flat.py``, ``faiss_hnsw.py``, ``faiss_auto.py`` and ``faiss_ivf_sq8.py`` differ only in
how they build and open a base.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.stores.base import State, as_ids
from rag.stores.dense import DenseIndex, DenseParams, decide_gpu
from rag.stores.segments import DeletionSet, fsync, load_array, save_array, should_compact

# Deeper than this into one segment, deleted ids are filtered inside FAISS instead.
OVERFETCH_MAX = 1024
# Flat segments up to this size (the deltas of small ingests) are scanned with numpy: FAISS wakes
# its OpenMP threads for every search, which took ~15 ms per tiny segment on a busy 2-core machine.
NUMPY_SCAN_MAX = 4096


def dense_params(settings: Settings) -> DenseParams:
    """The dense-index parameters of ``settings``."""
    return DenseParams(
        settings.exact_search_max,
        settings.hnsw_m,
        settings.hnsw_ef_construction,
        settings.hnsw_ef_search,
        settings.use_gpu,
    )


@dataclass
class Segment:
    """One immutable index file; its FAISS index is read only when a search or compaction needs it."""

    file: str
    kind: str
    ids_file: str | None = None
    ids: np.ndarray | None = None
    index: object | None = None
    deleted_here: int = -1  # how many of its ids the deletion set holds (-1: not counted yet)
    matrix: np.ndarray | None = None  # the vectors of a small flat segment, for a numpy scan


def scan(matrix: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products by numpy: ``(scores, ids)`` as FAISS returns them."""
    scores = queries @ matrix.T
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    rows = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, rows, axis=1).astype(np.float32), ids[rows]


class SegmentedFaissStore:
    """The shared machinery; subclasses set ``name`` and build their base."""

    name = "faiss-segments"
    versioned = True
    prefix = "dense"

    def __init__(
        self,
        directory: Path,
        settings: Settings,
        dimension: int,
        segments: list[Segment],
        deleted: DeletionSet,
        extra: dict | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.dimension = int(dimension)
        self.segments = segments
        self.deleted = deleted
        self.extra = dict(extra or {})
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_index: tuple[np.ndarray, np.ndarray] | None = None
        self._compact_next = False
        self._selector: tuple[Any, Any] | None = None  # (IDSelectorNot, the batch it wraps)
        self._on_gpu: bool | None = None

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, state: State | None, settings: Settings, dimension: int) -> SegmentedFaissStore:
        """The store ``state`` recorded (its segments are read lazily), or an empty one."""
        directory = Path(directory)
        if not state:
            return cls(directory, settings, dimension, [], DeletionSet())
        segments = [Segment(s["file"], s["kind"], s.get("ids")) for s in state.get("segments", [])]
        deleted_file = state.get("deleted")
        deleted = DeletionSet(load_array(directory / deleted_file) if deleted_file else None, deleted_file)
        extra = {k: v for k, v in state.items() if k not in ("name", "kind", "dimension", "segments", "deleted")}
        return cls(directory, settings, int(state.get("dimension") or dimension), segments, deleted, extra)

    # -- what subclasses decide ------------------------------------------------------------

    def base_kind(self, count: int) -> str:
        """The kind of base this backend builds for ``count`` vectors."""
        return "flat"

    def build_base(self, parts: list[tuple[np.ndarray, np.ndarray]], count: int):
        """A CPU FAISS index of all ``parts`` (``(ids, vectors)`` arrays) under their ids."""
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        vectors = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, self.dimension), np.float32)
        kind = self.base_kind(count)
        params = dense_params(self.settings)
        params.exact_search_max = -1 if kind == "hnsw" else max(count, 1)
        return DenseIndex.build(vectors, ids, params, on_gpu=False)._index

    def compact(self, generation: int) -> tuple[object, np.ndarray]:
        """The new base's FAISS index and its ids, from every live vector (subclasses may reuse
        the old base)."""
        parts = list(self._live_parts())
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        return self.build_base(parts, len(ids)), ids

    def prepare_loaded(self, segment: Segment, index: Any) -> Any:
        """Search settings of a freshly read index (efSearch, nprobe)."""
        import faiss

        if segment.kind == "hnsw":
            hnsw: Any = faiss.downcast_index(index.index)  # faiss's stubs type it as the base Index
            hnsw.hnsw.efSearch = self.settings.hnsw_ef_search
        return index

    def search_params(self, segment: Segment, selector):
        """FAISS search parameters with ``selector`` (and efSearch for an HNSW segment)."""
        import faiss

        params: Any  # SearchParametersHNSW is missing from faiss's stubs
        if segment.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = self.settings.hnsw_ef_search
        else:
            params = faiss.SearchParameters()
        params.sel = selector
        return params

    def segment_vectors(self, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
        """All ``(ids, vectors)`` stored in a segment (an ``IndexIDMap2`` for flat and HNSW)."""
        import faiss

        index = self._index(segment)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        if not len(ids):
            return ids, np.zeros((0, self.dimension), np.float32)
        return ids, index.index.reconstruct_n(0, index.ntotal)

    def segment_ids(self, segment: Segment, index) -> np.ndarray:
        """The ids held in a segment's index (an ``IndexIDMap2``)."""
        import faiss

        return faiss.vector_to_array(index.id_map).astype(np.int64)

    # -- reading segments -------------------------------------------------------------------

    def _index(self, segment: Segment):
        if segment.index is None:
            import faiss

            path = self.directory / segment.file
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:
                raise OSError(f"cannot read {path.name}: {exc}") from exc
            segment.index = self.prepare_loaded(segment, index)
        return segment.index

    def _ids(self, segment: Segment) -> np.ndarray:
        if segment.ids is None:
            if segment.ids_file:
                segment.ids = load_array(self.directory / segment.ids_file)
            else:  # an index folder written before segments: read the ids from the index itself
                segment.ids = self.segment_ids(segment, self._index(segment))
        return segment.ids

    def _deleted_in(self, segment: Segment) -> int:
        if segment.deleted_here < 0:
            segment.deleted_here = int(self.deleted.contains(self._ids(segment)).sum()) if len(self.deleted) else 0
        return segment.deleted_here

    def _live_parts(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        for segment in self.segments:
            ids, vectors = self.segment_vectors(segment)
            if self._deleted_in(segment):
                keep = ~self.deleted.contains(ids)
                ids, vectors = ids[keep], vectors[keep]
            yield ids, vectors
        yield from self._pending

    # -- the protocol --------------------------------------------------------------------------

    def count(self) -> int:
        """Live vectors: those of the saved segments not deleted, plus the pending ones."""
        saved = sum(len(self._ids(s)) - self._deleted_in(s) for s in self.segments)
        return saved + sum(len(p[0]) for p in self._pending)

    def ids(self) -> np.ndarray:
        """The live ids, saved segments' first, then the pending ones."""
        parts = []
        for segment in self.segments:
            ids = self._ids(segment)
            parts.append(ids[~self.deleted.contains(ids)] if self._deleted_in(segment) else ids)
        parts.extend(p[0] for p in self._pending)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Hold ``vectors`` under ``ids`` (pending until ``save``); an id already held is replaced."""
        ids = as_ids(ids)
        if not len(ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("add() got the same id twice")
        if self.dimension <= 0:
            self.dimension = int(vectors.shape[1])
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions; this store holds {self.dimension}")
        self.delete(ids)
        if len(self.deleted) and self.deleted.contains(ids).any():
            # A removed id comes back: the deletion set cannot tell its old copy from the new one,
            # so the next save writes one clean base.
            self._compact_next = True
        self._pending.append((ids, vectors))
        self._pending_index = None

    def delete(self, ids: Iterable[int]) -> int:
        """Drop these ids from the pending vectors and mark those of saved segments deleted; returns
        how many were held."""
        ids = np.unique(as_ids(ids))
        if not len(ids):
            return 0
        removed = 0
        kept_pending = []
        for pid, pvec in self._pending:
            gone = np.isin(pid, ids)
            removed += int(gone.sum())
            if gone.any():
                pid, pvec = pid[~gone], pvec[~gone]
            if len(pid):
                kept_pending.append((pid, pvec))
        if removed:
            self._pending, self._pending_index = kept_pending, None
        fresh = ids[~self.deleted.contains(ids)] if len(self.deleted) else ids
        held = [fresh[np.isin(fresh, self._ids(s))] for s in self.segments] if len(fresh) else []
        newly = np.unique(np.concatenate(held)) if held else np.zeros(0, np.int64)
        if len(newly):
            self.deleted.add(newly)
            for segment in self.segments:
                segment.deleted_here = -1
            self._selector = None
        return removed + int(len(newly))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each (queries x k), best first over every segment; missing results have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(
            -1, self.dimension if self.dimension > 0 else queries.shape[-1]
        )
        n = len(queries)
        found_scores: list[np.ndarray] = []
        found_ids: list[np.ndarray] = []
        for segment in self.segments:
            size = len(self._ids(segment))
            if not size:
                continue
            scores, ids = self._search_segment(segment, queries, k, size)
            found_scores.append(scores)
            found_ids.append(ids)
        if self._pending:
            ids, matrix = self._pending_matrix()
            scores, ids = scan(matrix, ids, queries, min(k, len(ids)))
            found_scores.append(scores)
            found_ids.append(ids)
        out_scores = np.zeros((n, k), dtype=np.float32)
        out_ids = np.full((n, k), -1, dtype=np.int64)
        if not found_ids:
            return out_scores, out_ids
        scores = np.concatenate(found_scores, axis=1)
        ids = np.concatenate(found_ids, axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(scores, order, axis=1)
        top_ids = np.take_along_axis(ids, order, axis=1)
        width = top_ids.shape[1]
        valid = np.isfinite(top_scores)
        out_scores[:, :width] = np.where(valid, top_scores, 0.0)
        out_ids[:, :width] = np.where(valid, top_ids, -1)
        return out_scores, out_ids

    def _search_segment(
        self, segment: Segment, queries: np.ndarray, k: int, size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        deleted = self._deleted_in(segment)
        if segment.kind == "flat" and size <= NUMPY_SCAN_MAX:
            if segment.matrix is None:
                ids, segment.matrix = self.segment_vectors(segment)
                segment.ids = ids
            assert segment.ids is not None  # set with the matrix
            scores, ids = scan(segment.matrix, segment.ids, queries, min(k + deleted, size))
            if deleted:
                ids = np.where(self.deleted.contains(ids.ravel()).reshape(ids.shape), -1, ids)
            return scores, ids
        index = self._searchable(segment)
        if deleted and (deleted > OVERFETCH_MAX and not self._gpu()):
            import faiss

            if self._selector is None:
                batch = faiss.IDSelectorBatch(self.deleted.ids)
                self._selector = (faiss.IDSelectorNot(batch), batch)  # keep the inner one alive
            scores, ids = index.search(queries, min(k, size), params=self.search_params(segment, self._selector[0]))
            return scores, ids
        scores, ids = index.search(queries, min(k + deleted, size))
        if deleted:
            ids = np.where(self.deleted.contains(ids.ravel()).reshape(ids.shape), -1, ids)
        return scores, ids

    def _gpu(self) -> bool:
        if self._on_gpu is None:
            self._on_gpu = decide_gpu(self.settings.use_gpu)
        return self._on_gpu

    def _searchable(self, segment: Segment):
        index = self._index(segment)
        if segment.kind in ("flat", "hnsw") and self._gpu():
            moved = DenseIndex(index, segment.kind).to_device(True, dense_params(self.settings))
            segment.index = index = moved._index
            segment.kind = "flat-gpu"
        return index

    def _pending_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pending_index is None:
            self._pending_index = (
                np.concatenate([p[0] for p in self._pending]),
                np.concatenate([p[1] for p in self._pending]),
            )
        return self._pending_index

    def _flat(self, parts: list[tuple[np.ndarray, np.ndarray]]):
        import faiss

        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        for ids, vectors in parts:
            index.add_with_ids(vectors, ids)
        return index

    # -- saving ---------------------------------------------------------------------------------

    def save(self, generation: int) -> State:
        """Write the pending vectors as a delta (or compact everything into one base) and the
        deletion set; returns the new state."""
        pending = sum(len(p[0]) for p in self._pending)
        if not pending and not self.deleted.dirty and not self._compact_next:
            return self.state()
        count = self.count()
        base = self.segments[0] if self.segments else None
        compact = (
            self._compact_next
            or base is None
            or base.kind != self.base_kind(count)
            or should_compact(
                len(self._ids(base)) if base else 0,
                [len(self._ids(s)) for s in self.segments[1:]],
                len(self.deleted),
                pending,
            )
        )
        if compact:
            if count == 0:
                self.segments = []
            else:
                index, ids = self.compact(generation)
                segment = self._write(generation, "", self.base_kind(count), index, ids)
                self.segments = [segment]
            self.deleted = DeletionSet()
        else:
            if pending:
                ids = np.concatenate([p[0] for p in self._pending])
                self.segments.append(self._write(generation, ".delta", "flat", self._flat(self._pending), ids))
            self.deleted.save(self.directory, f"{self.prefix}-{generation:06d}.deleted.npy")
        self._pending, self._pending_index, self._compact_next, self._selector = [], None, False, None
        for segment in self.segments:
            segment.deleted_here = -1
        fsync(self.directory)
        return self.state()

    def _write(self, generation: int, tag: str, kind: str, index, ids: np.ndarray) -> Segment:
        import faiss

        name = f"{self.prefix}-{generation:06d}{tag}"
        path = self.directory / f"{name}.faiss"
        faiss.write_index(index, str(path))
        fsync(path)
        save_array(self.directory / f"{name}.ids.npy", ids)
        segment = Segment(path.name, kind, f"{name}.ids.npy", ids, self.prepare_loaded(Segment(path.name, kind), index))
        return segment

    def state(self) -> State:
        """What a generation records: the segments, their kinds and id files, the deletion set and
        the backend's extras."""
        return {
            "name": self.name,
            "kind": self.segments[0].kind if self.segments else "empty",
            "dimension": self.dimension,
            "segments": [
                {"file": s.file, "kind": s.kind.replace("flat-gpu", "flat"), "ids": s.ids_file} for s in self.segments
            ],
            "deleted": self.deleted.file,
            **self.extra,
        }

    def files(self) -> list[str]:
        """The index, id and deletion-set files the current state reads."""
        names = [s.file for s in self.segments] + [s.ids_file for s in self.segments if s.ids_file]
        return names + ([self.deleted.file] if self.deleted.file else [])
