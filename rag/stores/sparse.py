"""The sparse index: Okapi BM25 over language-aware tokens (see ``rag.text.search_tokens``).

Scores are precomputed per (term, document) into a compressed sparse matrix, so a query is a
sum of a few matrix rows: a few milliseconds at 100k chunks. The index is rebuilt from the
stored token lists of all chunks when the corpus changes; tokenising again is not needed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import sparse


class SparseIndex:
    """BM25 with term-major scores; document ids are the chunk store's row numbers."""

    def __init__(self, vocab: dict[str, int], scores: sparse.csr_matrix, ids: np.ndarray) -> None:
        self.vocab = vocab
        self.scores = scores  # shape (terms, documents)
        self.ids = ids  # column -> row id

    @property
    def size(self) -> int:
        """How many documents the index holds."""
        return int(len(self.ids))

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]], ids: np.ndarray, k1: float = 1.2, b: float = 0.75) -> SparseIndex:
        """An index of one token list per id, BM25 scores precomputed per posting."""
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        doc_ids: list[int] = []
        lengths = np.zeros(len(docs), dtype=np.float32)
        for col, tokens in enumerate(docs):
            lengths[col] = len(tokens)
            for token in tokens:
                term_ids.append(vocab.setdefault(token, len(vocab)))
                doc_ids.append(col)
        n_docs = len(docs)
        if not term_ids:
            return cls(vocab, sparse.csr_matrix((len(vocab), n_docs), dtype=np.float32), ids)
        # Term frequencies: duplicates of (term, doc) are summed by the COO -> CSR conversion.
        tf = sparse.coo_matrix(
            (np.ones(len(term_ids), dtype=np.float32), (np.array(term_ids), np.array(doc_ids))),
            shape=(len(vocab), n_docs),
        ).tocsr()
        tf.sum_duplicates()
        df = np.diff(tf.indptr).astype(np.float32)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        avg_len = float(lengths.mean()) or 1.0
        rows = np.repeat(np.arange(tf.shape[0]), np.diff(tf.indptr))
        freq = tf.data
        norm = k1 * (1.0 - b + b * lengths[tf.indices] / avg_len)
        tf.data = (idf[rows] * freq * (k1 + 1.0) / (freq + norm)).astype(np.float32)
        return cls(vocab, tf, np.asarray(ids, dtype=np.int64))

    def search(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, row ids) for one query; documents with no query term are left out."""
        # A term repeated in the query weighs once per occurrence.
        counts = Counter(t for t in tokens if t in self.vocab)
        if not counts or self.size == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        rows = [self.vocab[t] for t in counts]
        weights = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        totals = np.asarray(self.scores[rows].T @ weights).ravel()
        hit = np.flatnonzero(totals)
        if not len(hit):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        k = min(k, len(hit))
        top = hit[np.argpartition(-totals[hit], k - 1)[:k]]
        top = top[np.argsort(-totals[top], kind="stable")]
        return totals[top], self.ids[top]

    def save(self, path: Path) -> None:
        """Write ``path`` (npz) and ``path.vocab.json`` beside it."""
        with open(path, "wb") as handle:
            np.savez(
                handle,
                data=self.scores.data,
                indices=self.scores.indices,
                indptr=self.scores.indptr,
                shape=np.array(self.scores.shape),
                ids=self.ids,
            )
        Path(str(path) + ".vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> SparseIndex:
        """Read an index written by :meth:`save`."""
        with np.load(path) as data:
            scores = sparse.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
            ids = data["ids"]
        vocab = json.loads(Path(str(path) + ".vocab.json").read_text(encoding="utf-8"))
        return cls(vocab, scores, ids)


class LegacySparseStore:
    """A keyword store over a ``sparse-N.npz`` written before segments (precomputed BM25 scores),
    for reading old index folders. It cannot change: the next ingest builds a ``bm25`` store from
    the chunk store's tokens in its place."""

    name = "bm25-v1"
    versioned = True

    def __init__(self, directory: Path, file: str | None) -> None:
        self._directory = Path(directory)
        self._file = file
        self._loaded: SparseIndex | None = None

    @classmethod
    def open(cls, directory: Path, state: dict | None, settings=None, dimension: int = 0) -> LegacySparseStore:
        """The old keyword index ``state`` names (read on first use)."""
        return cls(directory, (state or {}).get("file"))

    @property
    def _index(self) -> SparseIndex | None:
        if self._loaded is None and self._file:
            self._loaded = SparseIndex.load(self._directory / self._file)
        return self._loaded

    def count(self) -> int:
        """How many documents the old index holds."""
        return self._index.size if self._index is not None else 0

    def ids(self) -> np.ndarray:
        """The ids the old index holds."""
        return self._index.ids if self._index is not None else np.zeros(0, np.int64)

    def add(self, ids, tokens) -> None:
        """Not possible: the old index is read-only."""
        raise NotImplementedError("a keyword index written before segments is read-only; ingest again to convert it")

    def delete(self, ids) -> int:
        """Not possible: the old index is read-only."""
        raise NotImplementedError("a keyword index written before segments is read-only; ingest again to convert it")

    def search(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` from the old index's precomputed scores."""
        if self._index is None:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        return self._index.search(tokens, k)

    def save(self, generation: int) -> dict:
        """The same state again: nothing changes."""
        return {"name": self.name, "file": self._file}

    def files(self) -> list[str]:
        """The old index's matrix and vocabulary files."""
        return [self._file, self._file + ".vocab.json"] if self._file else []
