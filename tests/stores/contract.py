"""The contract every store backend passes: one test class per capability, subclassed by each
backend's test module in a few lines (``tests/stores/test_*.py``).

A backend's module sets ``backend`` (the registry name) and, if it needs them, ``settings_changes``;
an approximate backend sets ``exact = False`` (its top hits must still be right, its scores
within ``score_tolerance`` of the true inner products). A backend that changes its data in place
(``versioned = False``, e.g. a database server) skips the generation tests: what it promises
instead is checked by the ingest tests of its own module.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.stores.base import KeywordStore, VectorStore
from rag.stores.bm25 import BM25Store
from rag.stores.registry import keyword_store_class, vector_store_class
from rag.stores.sparse import SparseIndex
from rag.text import search_tokens

DIM = 32


def unit_vectors(n: int, d: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d)).astype("float32")
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def digest(directory: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in names}


class StoreFixtures:
    backend = ""
    settings_changes: dict = {}

    @pytest.fixture(autouse=True, params=["compacting", "segments"])
    def segment_policy(self, request, monkeypatch) -> str:
        """Each test runs twice: with the real policy (small stores are rewritten whole on each
        save) and with compaction held off, so deltas and deletion sets pile up."""
        if request.param == "segments":
            import rag.stores.segments as segments

            monkeypatch.setattr(segments, "COMPACT_FLOOR", 0)
            monkeypatch.setattr(segments, "DELTA_SHARE", 1e9)
            monkeypatch.setattr(segments, "DELETED_SHARE", 1e9)
        return request.param

    @pytest.fixture
    def directory(self, tmp_path) -> Path:
        path = tmp_path / "index"
        path.mkdir()
        return path

    @pytest.fixture
    def settings(self, directory) -> Settings:
        return Settings.load(env={}, overrides={"index_dir": directory, "use_gpu": "no", **self.settings_changes})


class VectorStoreContract(StoreFixtures):
    """Vectors by id: add, count, ids, search order and scores, delete, save/open, generations."""

    exact = True
    score_tolerance = 1e-4

    def open(self, directory, settings, state=None, dimension=DIM) -> VectorStore:
        return vector_store_class(self.backend).open(directory, state, settings, dimension)

    def brute_force(self, vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
        scores = vectors @ query
        return [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:k]]

    def test_satisfies_the_protocol(self, directory, settings):
        store = self.open(directory, settings)
        assert isinstance(store, VectorStore)
        assert store.name == self.backend

    def test_empty_store_counts_and_finds_nothing(self, directory, settings):
        store = self.open(directory, settings)
        assert store.count() == 0
        assert len(store.ids()) == 0
        scores, ids = store.search(unit_vectors(2), 5)
        assert ids.shape == (2, 5) and (ids == -1).all()
        state = store.save(1)
        again = self.open(directory, settings, state)
        assert again.count() == 0 and (again.search(unit_vectors(1), 3)[1] == -1).all()

    def test_add_count_ids_and_search_best_first(self, directory, settings):
        vectors, ids = unit_vectors(300), np.arange(1000, 1300)
        store = self.open(directory, settings)
        store.add(ids, vectors)
        assert store.count() == 300
        assert sorted(store.ids().tolist()) == ids.tolist()
        queries = vectors[[3, 150, 299]] + 0.05 * unit_vectors(3, seed=9)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        scores, found = store.search(queries, 10)
        assert found.shape == (3, 10)
        for q, row_scores, row_ids in zip(queries, scores, found):
            assert list(row_scores) == sorted(row_scores, reverse=True)
            truth = self.brute_force(vectors, ids, q, 10)
            assert row_ids[0] == truth[0]
            if self.exact:
                assert list(row_ids) == truth
            # A score is the inner product (cosine) of the query and the vector found.
            expected = vectors[row_ids - 1000] @ q
            assert np.allclose(row_scores, expected, atol=self.score_tolerance)

    def test_k_larger_than_the_store_pads_with_minus_one(self, directory, settings):
        store = self.open(directory, settings)
        store.add(np.array([7, 8, 9]), unit_vectors(3))
        store = self.open(directory, settings, store.save(1))
        scores, found = store.search(unit_vectors(1, seed=3), 5)
        assert sorted(found[0][:3].tolist()) == [7, 8, 9]
        assert list(found[0][3:]) == [-1, -1]

    def test_delete_removes_from_search_count_and_ids(self, directory, settings):
        vectors, ids = unit_vectors(200), np.arange(200)
        store = self.open(directory, settings)
        store.add(ids, vectors)
        store = self.open(directory, settings, store.save(1))
        assert store.delete([5, 6, 10_000]) == 2  # an id never held is not counted
        assert store.delete([5]) == 0
        assert store.count() == 198
        assert not {5, 6} & set(store.ids().tolist())
        found = store.search(vectors[[5, 6]], 3)[1]
        assert 5 not in found and 6 not in found
        store = self.open(directory, settings, store.save(2))
        assert store.count() == 198
        assert 5 not in store.search(vectors[[5]], 10)[1]

    def test_adding_an_id_again_replaces_its_vector(self, directory, settings):
        vectors = unit_vectors(50)
        store = self.open(directory, settings)
        store.add(np.arange(50), vectors)
        store = self.open(directory, settings, store.save(1))
        store.delete([3])
        store = self.open(directory, settings, store.save(2))
        replacement = unit_vectors(1, seed=42)
        store.add(np.array([3, 4]), np.concatenate([replacement, vectors[[4]]]))
        assert store.count() == 50
        for state in (None, store.save(3)):
            opened = store if state is None else self.open(directory, settings, state)
            assert opened.search(replacement, 1)[1][0][0] == 3
            assert opened.search(vectors[[4]], 1)[1][0][0] == 4
            assert sorted(opened.ids().tolist()) == list(range(50))

    def test_save_and_open_round_trip(self, directory, settings):
        vectors, ids = unit_vectors(120), np.arange(500, 620)
        store = self.open(directory, settings)
        store.add(ids, vectors)
        before = store.search(vectors[:5], 4)
        state = store.save(1)
        assert state["name"] == self.backend
        again = self.open(directory, settings, state)
        assert again.count() == 120
        after = again.search(vectors[:5], 4)
        assert (after[1] == before[1]).all()
        assert np.allclose(after[0], before[0], atol=self.score_tolerance)
        for name in again.files():
            assert (directory / name).is_file()

    def test_many_small_saves_deletes_and_a_compaction_match_one_index(self, directory, settings):
        """Ingests of every size: the result is what one store built from the live vectors finds."""
        vectors = unit_vectors(600, seed=5)
        store = self.open(directory, settings)
        live: dict[int, np.ndarray] = {}
        generation = 0
        rng = np.random.default_rng(1)
        for batch in range(6):
            ids = np.arange(batch * 100, batch * 100 + 100)
            store.add(ids, vectors[ids])
            live.update({int(i): vectors[i] for i in ids})
            doomed = rng.choice(sorted(live), size=15, replace=False)
            store.delete(doomed)
            for i in doomed:
                live.pop(int(i))
            generation += 1
            store = self.open(directory, settings, store.save(generation))
        assert store.count() == len(live) and sorted(store.ids().tolist()) == sorted(live)
        keys = np.array(sorted(live))
        matrix = np.stack([live[int(i)] for i in keys])
        hits = 0
        for q in unit_vectors(20, seed=11):
            found = store.search(q[None, :], 5)[1][0]
            truth = self.brute_force(matrix, keys, q, 5)
            hits += found[0] == truth[0]
            if self.exact:
                assert list(found) == truth
        assert hits >= (20 if self.exact else 18)


class VectorGenerationContract(VectorStoreContract):
    """The crash-safe commit: saving generation N+1 leaves generation N's files as they were, so
    a reader of N (or a crash before the SQLite commit) still sees N whole."""

    def test_saving_a_generation_leaves_the_previous_one_untouched(self, directory, settings):
        vectors = unit_vectors(400, seed=2)
        store = self.open(directory, settings)
        store.add(np.arange(300), vectors[:300])
        first = store.save(1)
        files = self.open(directory, settings, first).files()
        before = digest(directory, files)
        expected = self.open(directory, settings, first).search(vectors[:10], 5)

        store = self.open(directory, settings, first)
        store.delete(np.arange(0, 50))
        store.add(np.arange(300, 400), vectors[300:])
        second = store.save(2)
        assert digest(directory, files) == before
        old = self.open(directory, settings, first)
        assert old.count() == 300
        assert (old.search(vectors[:10], 5)[1] == expected[1]).all()
        new = self.open(directory, settings, second)
        assert new.count() == 350
        assert 0 not in new.search(vectors[:1], 5)[1]

    def test_an_unsaved_change_is_not_seen_by_a_fresh_open(self, directory, settings):
        store = self.open(directory, settings)
        store.add(np.arange(20), unit_vectors(20))
        state = store.save(1)
        store.add(np.arange(20, 40), unit_vectors(20, seed=4))
        store.delete([0])
        assert self.open(directory, settings, state).count() == 20

    def test_a_small_change_to_a_big_store_writes_a_small_delta(self, directory, settings, monkeypatch):
        import rag.stores.segments as segments

        monkeypatch.setattr(segments, "COMPACT_FLOOR", 100)
        vectors = unit_vectors(2000, seed=6)
        store = self.open(directory, settings)
        store.add(np.arange(2000), vectors)
        first = store.save(1)
        base_files = set(self.open(directory, settings, first).files())
        store = self.open(directory, settings, first)
        store.delete([1, 2, 3])
        store.add(np.arange(2000, 2010), unit_vectors(10, seed=7))
        second = store.save(2)
        new_files = set(self.open(directory, settings, second).files()) - base_files
        written = sum((directory / n).stat().st_size for n in new_files)
        base = sum((directory / n).stat().st_size for n in base_files)
        assert new_files and written < base / 20, (new_files, written, base)
        opened = self.open(directory, settings, second)
        assert opened.count() == 2007


class KeywordStoreContract(StoreFixtures):
    """Token lists by id: BM25 scores equal those of one index over the live documents."""

    backend = "bm25"

    DOCS = [
        "The cat sat on the mat.",
        "A dog chased the cat around the garden.",
        "大语言模型需要大量的训练数据。",
        "训练深度学习模型会消耗能源，影响环境。",
        "Gardens need water, and a dog needs a walk.",
        "The mat was red; the cat was grey.",
    ]

    def open(self, directory, settings, state=None) -> KeywordStore:
        return keyword_store_class(self.backend).open(directory, state, settings, 0)

    def reference(self, docs: dict[int, str], query: str, k: int = 10):
        ids = np.array(sorted(docs))
        index = SparseIndex.build([search_tokens(docs[i]) for i in ids], ids)
        return index.search(search_tokens(query), k)

    def assert_same(self, store, docs, query, k=10):
        scores, ids = store.search(search_tokens(query), k)
        want_scores, want_ids = self.reference(docs, query, k)
        assert dict(zip(ids.tolist(), scores.tolist())) == pytest.approx(
            dict(zip(want_ids.tolist(), want_scores.tolist())), rel=1e-5
        )
        assert list(scores) == sorted(scores, reverse=True)

    def test_satisfies_the_protocol(self, directory, settings):
        store = self.open(directory, settings)
        assert isinstance(store, KeywordStore) and store.name == self.backend

    def test_empty_store(self, directory, settings):
        store = self.open(directory, settings)
        assert store.count() == 0 and len(store.search(["cat"], 3)[1]) == 0
        again = self.open(directory, settings, store.save(1))
        assert again.count() == 0 and len(again.search(["cat"], 3)[1]) == 0

    def test_ranks_by_term_rarity_in_both_languages(self, directory, settings):
        docs = dict(enumerate(self.DOCS, start=10))
        store = self.open(directory, settings)
        store.add(np.array(list(docs)), [search_tokens(d) for d in docs.values()])
        assert store.count() == 6 and sorted(store.ids().tolist()) == list(docs)
        assert store.search(search_tokens("dog garden"), 3)[1][0] == 11
        assert store.search(search_tokens("训练对环境的影响"), 2)[1][0] == 13
        assert len(store.search(["unknownword"], 3)[1]) == 0
        for query in ("cat mat", "dog", "训练模型"):
            self.assert_same(store, docs, query)

    def test_segments_and_deletes_score_as_one_index(self, directory, settings):
        docs: dict[int, str] = {}
        store = self.open(directory, settings)
        generation = 0
        for start in range(0, 6, 2):
            batch = {start + i: self.DOCS[start + i] for i in range(2)}
            store.add(np.array(list(batch)), [search_tokens(t) for t in batch.values()])
            docs.update(batch)
            generation += 1
            store = self.open(directory, settings, store.save(generation))
        store.delete([1, 4])
        for i in (1, 4):
            docs.pop(i)
        store = self.open(directory, settings, store.save(generation + 1))
        assert store.count() == 4
        for query in ("cat mat", "dog garden", "训练模型", "the cat"):
            self.assert_same(store, docs, query)
        assert 1 not in store.search(search_tokens("dog chased"), 5)[1]

    def test_save_open_round_trip_and_previous_generation_untouched(self, directory, settings):
        docs = dict(enumerate(self.DOCS))
        store = self.open(directory, settings)
        store.add(np.array(list(docs)), [search_tokens(d) for d in docs.values()])
        first = store.save(1)
        files = self.open(directory, settings, first).files()
        before = digest(directory, files)
        store = self.open(directory, settings, first)
        store.delete([0])
        store.add(np.array([99]), [search_tokens("a brand new cat")])
        second = store.save(2)
        assert digest(directory, files) == before
        self.assert_same(self.open(directory, settings, first), docs, "cat")
        docs.pop(0)
        docs[99] = "a brand new cat"
        self.assert_same(self.open(directory, settings, second), docs, "cat")

    def test_adding_an_id_again_replaces_its_tokens(self, directory, settings):
        store = self.open(directory, settings)
        store.add(np.array([1, 2]), [["apple"], ["pear"]])
        store = self.open(directory, settings, store.save(1))
        store.add(np.array([1]), [["plum"]])
        for opened in (store, self.open(directory, settings, store.save(2))):
            assert opened.count() == 2
            assert list(opened.search(["plum"], 3)[1]) == [1]
            assert len(opened.search(["apple"], 3)[1]) == 0


__all__ = ["VectorStoreContract", "VectorGenerationContract", "KeywordStoreContract", "unit_vectors", "BM25Store"]
