"""Dense (FAISS), sparse (BM25) and SQLite stores, with real FAISS."""

import numpy as np
import pytest

from rag.documents import Chunk
from rag.errors import ConfigError
from rag.index import dense_weight, rrf_fuse
from rag.stores.chunk_store import ChunkStore
from rag.stores.dense import DenseIndex, DenseParams, decide_gpu, index_kind
from rag.stores.sparse import SparseIndex
from rag.text import search_tokens


def unit_vectors(n, d=32, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d)).astype("float32")
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_flat_index_finds_exact_neighbours_and_round_trips(tmp_path):
    vectors = unit_vectors(200)
    ids = np.arange(1000, 1200)
    index = DenseIndex.build(vectors, ids, DenseParams(), on_gpu=False)
    assert index.kind == "flat"
    scores, found = index.search(vectors[[5, 77]], 3)
    assert found[0][0] == 1005 and found[1][0] == 1077
    assert scores[0][0] == pytest.approx(1.0, abs=1e-5)
    index.save(tmp_path / "d.faiss")
    loaded = DenseIndex.load(tmp_path / "d.faiss", "flat", DenseParams(use_gpu="no"))
    assert loaded.search(vectors[[5]], 1)[1][0][0] == 1005
    back, back_ids = loaded.vectors()
    assert np.allclose(back, vectors) and list(back_ids) == list(ids)


def test_hnsw_above_the_threshold_has_high_recall():
    vectors = unit_vectors(3000, d=48, seed=1)
    params = DenseParams(exact_search_max=1000)
    index = DenseIndex.build(vectors, np.arange(3000), params, on_gpu=False)
    assert index.kind == "hnsw"
    queries = vectors[:200] + 0.05 * unit_vectors(200, d=48, seed=2)
    exact = np.argmax(queries @ vectors.T, axis=1)
    found = index.search(queries, 1)[1][:, 0]
    assert (found == exact).mean() >= 0.95


def test_gpu_decision_seam():
    assert decide_gpu("auto", lambda: 0) is False
    assert decide_gpu("auto", lambda: 2) is True
    assert decide_gpu("no", lambda: 2) is False
    with pytest.raises(ConfigError, match="sees no GPU"):
        decide_gpu("yes", lambda: 0)
    # On a GPU the index is exact and flat at any size (FAISS has no GPU HNSW).
    assert index_kind(10**6, DenseParams(), on_gpu=True) == "flat"
    assert index_kind(10**6, DenseParams(), on_gpu=False) == "hnsw"


def test_gpu_copy_is_attempted_when_decided(monkeypatch):
    """With faiss-cpu the GPU copy must fail loudly, proving the GPU branch is really taken."""
    index = DenseIndex.build(unit_vectors(10), np.arange(10), DenseParams(), on_gpu=False)
    # faiss-cpu has no GPU classes: its GPU copy stops at the first one it names.
    with pytest.raises(NameError, match="GpuResourcesVector"):
        index.to_device(True, DenseParams())


def test_bm25_ranks_by_term_rarity_and_handles_chinese(tmp_path):
    docs = [
        "The cat sat on the mat.",
        "A dog chased the cat around the garden.",
        "大语言模型需要大量的训练数据。",
        "训练深度学习模型会消耗能源，影响环境。",
    ]
    index = SparseIndex.build([search_tokens(d) for d in docs], np.array([10, 11, 12, 13]))
    scores, ids = index.search(search_tokens("dog garden"), 3)
    assert list(ids) == [11]
    assert list(index.search(search_tokens("训练对环境的影响"), 2)[1])[0] == 13
    index.save(tmp_path / "s.npz")
    again = SparseIndex.load(tmp_path / "s.npz")
    assert np.allclose(again.search(search_tokens("cat"), 2)[0], index.search(search_tokens("cat"), 2)[0])
    assert len(again.search(["unknownword"], 3)[1]) == 0


def test_rrf_fusion_and_dense_weight():
    fused = rrf_fuse([[1, 2, 3], [3, 1]], k=60)
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert max(fused, key=fused.get) == 1
    assert dense_weight(0.0) == 1.0 and dense_weight(0.5) == 0.0 and 0 < dense_weight(0.2) < 1
    weighted = rrf_fuse([[1, 2], [2, 1]], k=60, weights=[0.1, 1.0])
    assert max(weighted, key=weighted.get) == 2


def test_chunk_store_round_trip_and_atomic_rollback(tmp_path):
    store = ChunkStore(tmp_path / "c.sqlite")
    chunk = Chunk("id1", "hello world", "a.txt", 1, "Intro", "text", 0, 11)
    store.begin()
    store.add_chunks([chunk], [["hello", "world"]], unit_vectors(1, d=4))
    store.put_document("a.txt", "abc", 11, 1.0, ["id1"])
    store.commit()
    store.begin()
    store.delete_chunks(["id1"])
    store.rollback()
    assert store.count_chunks() == 1
    rows = [int(r) for ids, _ in store.iter_vectors() for r in ids]
    assert store.chunks_by_rows(rows)[rows[0]].text == "hello world"
    assert store.documents()["a.txt"].chunk_ids == ["id1"]
