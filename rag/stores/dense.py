"""The dense vector index: FAISS, inner product over normalised vectors (= cosine).

Below ``exact_search_max`` vectors the index is exact (flat); above it, HNSW, which answers in
about a millisecond at 100k vectors on two cores. Which one was built is recorded in the index
metadata. The index on disk is always a CPU index; when FAISS sees a GPU (and the settings
allow it) a flat index is copied onto the GPU for searching. FAISS has no GPU HNSW, so above
the threshold a GPU machine searches an exact flat index on the GPU instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ConfigError


@dataclass
class DenseParams:
    """The settings that decide how a dense index is built and searched."""

    exact_search_max: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96
    use_gpu: str = "auto"


def gpu_count() -> int:
    """How many GPUs FAISS sees (0 with a CPU-only FAISS)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def decide_gpu(setting: str, count_gpus: Callable[[], int] = gpu_count) -> bool:
    """Whether to put the index on a GPU: the runtime decision, kept separate to test it."""
    if setting == "no":
        return False
    gpus = count_gpus()
    if setting == "yes" and gpus == 0:
        raise ConfigError(
            "use_gpu is 'yes' but FAISS sees no GPU; install faiss-gpu on a CUDA machine or set use_gpu=auto."
        )
    if setting not in ("auto", "yes"):
        raise ConfigError(f"use_gpu must be auto, yes or no, not '{setting}'.")
    return gpus > 0


def index_kind(count: int, params: DenseParams, on_gpu: bool) -> str:
    """``flat`` (exact) or ``hnsw`` (approximate), from the number of vectors."""
    if on_gpu or count <= params.exact_search_max:
        return "flat"
    return "hnsw"


class DenseIndex:
    """FAISS index whose FAISS ids are the chunk store's row numbers."""

    def __init__(self, index, kind: str, on_gpu: bool = False) -> None:
        self._index = index
        self.kind = kind
        self.on_gpu = on_gpu

    @property
    def size(self) -> int:
        """How many vectors the index holds."""
        return int(self._index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, params: DenseParams, on_gpu: bool | None = None) -> DenseIndex:
        """An index of ``vectors`` under ``ids``: flat or HNSW by their number, copied to the GPU where allowed."""
        import faiss

        on_gpu = decide_gpu(params.use_gpu) if on_gpu is None else on_gpu
        dim = int(vectors.shape[1])
        kind = index_kind(len(vectors), params, on_gpu)
        inner: Any  # faiss's own stubs type neither index class's attributes nor a downcast
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = params.hnsw_ef_construction
            inner.hnsw.efSearch = params.hnsw_ef_search
        else:
            inner = faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(inner)
        if len(vectors):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
        return cls(index, kind).to_device(on_gpu, params)

    def to_device(self, on_gpu: bool, params: DenseParams) -> DenseIndex:
        """A copy on the GPU when asked and possible; otherwise this index."""
        if not on_gpu or self.on_gpu:
            return self
        import faiss

        cpu = self._index
        if self.kind == "hnsw":
            # No GPU HNSW in FAISS: rebuild as an exact flat index for the GPU.
            vectors = cpu.index.reconstruct_n(0, cpu.ntotal) if cpu.ntotal else np.zeros((0, cpu.d), "float32")
            ids = faiss.vector_to_array(cpu.id_map).astype(np.int64)
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(cpu.d))
            flat.add_with_ids(vectors, ids)
            cpu = flat
        return DenseIndex(faiss.index_cpu_to_all_gpus(cpu), "flat", on_gpu=True)

    def save(self, path: Path) -> None:
        """Write the index (as a CPU index) to ``path``."""
        import faiss

        index = self._index
        if self.on_gpu:
            index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, params: DenseParams) -> DenseIndex:
        """Read an index written by :meth:`save`, with the search settings of ``params``."""
        import faiss

        index: Any = faiss.read_index(str(path))
        if kind == "hnsw":
            hnsw: Any = faiss.downcast_index(index.index)  # faiss's stubs type it as the base Index
            hnsw.hnsw.efSearch = params.hnsw_ef_search
        return cls(index, kind).to_device(decide_gpu(params.use_gpu), params)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row ids, best first; missing results have id -1."""
        if self.size == 0:
            empty = np.full((len(queries), k), -1, dtype=np.int64)
            return np.zeros((len(queries), k), dtype=np.float32), empty
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, self.size))
        return scores, ids

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored vectors and their ids (used to carry vectors into the next generation)."""
        import faiss

        index = self._index
        if self.on_gpu:
            index = faiss.index_gpu_to_cpu(index)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        if not len(ids):
            return np.zeros((0, index.d), dtype=np.float32), ids
        return index.index.reconstruct_n(0, index.ntotal), ids
