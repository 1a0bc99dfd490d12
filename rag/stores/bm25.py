"""``bm25``: Okapi BM25 over language-aware tokens, kept as segments (see :mod:`rag.stores.segments`).

Each segment stores raw term frequencies (a term-major sparse matrix), document lengths and ids;
BM25 is computed at query time from statistics of the whole live corpus: the number of live
documents, their average length, and each query term's document frequency counted over all
segments less the deleted documents. So a corpus split over a base, deltas and a deletion set
scores exactly as one index built over the live documents would (the contract tests check this
against :class:`rag.stores.sparse.SparseIndex`). A query reads the postings of its few terms.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from rag.config import Settings
from rag.stores.base import State, as_ids
from rag.stores.segments import DeletionSet, fsync, should_compact

K1 = 1.2
B = 0.75


@dataclass
class TermSegment:
    """Term frequencies of one segment; the matrix is read only when a search or compaction needs it."""

    file: str
    ids: np.ndarray | None = None
    tf: sparse.csr_matrix | None = None  # (terms, documents), raw counts
    lengths: np.ndarray | None = None  # tokens per document
    vocab: dict[str, int] | None = None
    live: np.ndarray | None = None  # False where the deletion set holds the document
    all_live: bool = True  # no document of it is deleted

    @property
    def vocab_file(self) -> str:
        """The file beside the segment's matrix that holds its vocabulary (term -> row)."""
        return self.file[: -len(".npz")] + ".vocab.json"

    # What a loaded segment holds (``BM25Store._load`` reads them), typed as present.

    @property
    def tf_matrix(self) -> sparse.csr_matrix:
        """The raw term frequencies, terms by documents."""
        assert self.tf is not None, "segment not loaded"
        return self.tf

    @property
    def doc_lengths(self) -> np.ndarray:
        """Tokens per document."""
        assert self.lengths is not None, "segment not loaded"
        return self.lengths

    @property
    def term_rows(self) -> dict[str, int]:
        """Each term's row in the matrix."""
        assert self.vocab is not None, "segment not loaded"
        return self.vocab

    @property
    def doc_ids(self) -> np.ndarray:
        """The documents' ids, in column order."""
        assert self.ids is not None, "segment not loaded"
        return self.ids


def term_segment(tokens: Sequence[Sequence[str]], ids: np.ndarray) -> TermSegment:
    """A segment (not yet written) of one token list per id."""
    vocab: dict[str, int] = {}
    setdefault = vocab.setdefault
    lengths = np.fromiter((len(doc) for doc in tokens), dtype=np.int64, count=len(tokens))
    # numpy arrays, not Python lists: a million chunks hold ~10^8 tokens.
    term_ids = np.fromiter(
        (setdefault(t, len(vocab)) for doc in tokens for t in doc), dtype=np.int32, count=int(lengths.sum())
    )
    return segment_from_arrays(term_ids, lengths, vocab, ids)


def segment_from_arrays(
    term_ids: np.ndarray, lengths: np.ndarray, vocab: dict[str, int], ids: np.ndarray
) -> TermSegment:
    """A segment from every document's term numbers in a row (``lengths`` per document)."""
    doc_ids = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    tf = sparse.csr_matrix(
        (np.ones(len(term_ids), dtype=np.float32), (term_ids, doc_ids)), shape=(len(vocab), len(lengths))
    )
    tf.sum_duplicates()
    return TermSegment("", np.asarray(ids, dtype=np.int64), tf, np.asarray(lengths, dtype=np.float32), vocab)


class BM25Store:
    """BM25 (k1=1.2, b=0.75) with global statistics over segments."""

    name = "bm25"
    versioned = True
    prefix = "sparse"

    def __init__(self, directory: Path, segments: list[TermSegment], deleted: DeletionSet) -> None:
        self.directory = Path(directory)
        self.segments = segments
        self.deleted = deleted
        self._pending_ids: list[np.ndarray] = []
        self._pending_tokens: list[list[str]] = []
        self._pending_segment: TermSegment | None = None
        self._compact_next = False
        self._norms: dict[int, sparse.csr_matrix] = {}
        self._stats: tuple[int, float] | None = None

    @classmethod
    def open(cls, directory: Path, state: State | None, settings: Settings, dimension: int = 0) -> BM25Store:
        """The store ``state`` recorded (its segments are read lazily), or an empty one."""
        directory = Path(directory)
        if not state:
            return cls(directory, [], DeletionSet())
        deleted_file = state.get("deleted")
        deleted = DeletionSet(np.load(directory / deleted_file) if deleted_file else None, deleted_file)
        return cls(directory, [TermSegment(s["file"]) for s in state.get("segments", [])], deleted)

    # -- reading segments -------------------------------------------------------------------

    def _ids(self, segment: TermSegment) -> np.ndarray:
        if segment.ids is None:
            with np.load(self.directory / segment.file) as data:
                segment.ids = data["ids"]
        return segment.ids

    def _load(self, segment: TermSegment) -> TermSegment:
        if segment.tf is None:
            with np.load(self.directory / segment.file) as data:
                segment.tf = sparse.csr_matrix(
                    (data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"])
                )
                segment.lengths = data["lengths"]
                segment.ids = data["ids"]
            segment.vocab = json.loads((self.directory / segment.vocab_file).read_text(encoding="utf-8"))
        return segment

    def _live(self, segment: TermSegment) -> np.ndarray:
        if segment.live is None:
            ids = self._ids(segment)
            segment.live = ~self.deleted.contains(ids) if len(self.deleted) else np.ones(len(ids), dtype=bool)
            segment.all_live = bool(segment.live.all())
        return segment.live

    def _loaded_segments(self) -> list[TermSegment]:
        """Every segment, the saved ones read in, and the pending one last."""
        return [self._load(s) for s in self.segments] + self._all_segments()[len(self.segments) :]

    def _all_segments(self) -> list[TermSegment]:
        segments = list(self.segments)
        if self._pending_ids:
            if self._pending_segment is None:
                self._pending_segment = term_segment(self._pending_tokens, np.concatenate(self._pending_ids))
                self._pending_segment.live = np.ones(len(self._pending_tokens), dtype=bool)
            segments.append(self._pending_segment)
        return segments

    def _changed(self) -> None:
        self._pending_segment = None
        self._norms = {}
        self._stats = None
        for segment in self.segments:
            segment.live = None

    # -- the protocol --------------------------------------------------------------------------

    def count(self) -> int:
        """Live documents: those of the saved segments not deleted, plus the pending ones."""
        saved = sum(int(self._live(s).sum()) for s in self.segments)
        return saved + len(self._pending_tokens)

    def ids(self) -> np.ndarray:
        """The live ids, saved segments' first, then the pending ones."""
        parts = [self._ids(s)[self._live(s)] for s in self.segments] + list(self._pending_ids)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def add(self, ids: np.ndarray, tokens: Sequence[Sequence[str]]) -> None:
        """Hold one token list per id (pending until ``save``); an id already held is replaced."""
        ids = as_ids(ids)
        if len(ids) != len(tokens):
            raise ValueError("add() needs one token list per id")
        if not len(ids):
            return
        if len(np.unique(ids)) != len(ids):
            raise ValueError("add() got the same id twice")
        self.delete(ids)
        if len(self.deleted) and self.deleted.contains(ids).any():
            self._compact_next = True  # see SegmentedFaissStore.add
        self._pending_ids.append(ids)
        self._pending_tokens.extend(list(t) for t in tokens)
        self._changed()

    def delete(self, ids: Iterable[int]) -> int:
        """Drop these ids from the pending documents and mark those of saved segments deleted;
        returns how many were held."""
        ids = np.unique(as_ids(ids))
        if not len(ids):
            return 0
        removed = 0
        if self._pending_ids:
            pending = np.concatenate(self._pending_ids)
            gone = np.isin(pending, ids)
            if gone.any():
                removed += int(gone.sum())
                self._pending_ids = [pending[~gone]] if (~gone).any() else []
                self._pending_tokens = [t for t, g in zip(self._pending_tokens, gone) if not g]
        fresh = ids[~self.deleted.contains(ids)] if len(self.deleted) else ids
        held = [fresh[np.isin(fresh, self._ids(s))] for s in self.segments] if len(fresh) else []
        newly = np.unique(np.concatenate(held)) if held else np.zeros(0, np.int64)
        if len(newly):
            self.deleted.add(newly)
        if removed or len(newly):
            self._changed()
        return removed + int(len(newly))

    def search(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)`` by BM25 with whole-corpus statistics, best first (ties by id)."""
        counts = Counter(tokens)
        segments = self._loaded_segments()
        empty = np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        if not counts or not segments or k <= 0:
            return empty
        live_docs, avg_length = self._statistics(segments)
        if not live_docs:
            return empty
        rows, terms, df = self._frequencies(counts, segments)
        idf = {t: np.log(1.0 + (live_docs - n + 0.5) / (n + 0.5)) for t, n in df.items() if n}
        found_scores, found_ids = [], []
        for i, segment in enumerate(segments):
            keep = [(r, t) for r, t in zip(rows[i], terms[i]) if t in idf]
            if not keep:
                continue
            weights = np.array([idf[t] * counts[t] for _, t in keep], dtype=np.float32)
            matrix = self._weights(i, segment, avg_length)
            totals = np.asarray(matrix[[r for r, _ in keep]].T @ weights).ravel()
            if not segment.all_live:
                totals = totals * self._live(segment)
            hit = np.flatnonzero(totals)
            if not len(hit):
                continue
            top = hit[np.argpartition(-totals[hit], k - 1)[:k]] if len(hit) > k else hit
            found_scores.append(totals[top])
            found_ids.append(segment.doc_ids[top])
        if not found_ids:
            return empty
        scores = np.concatenate(found_scores)
        ids = np.concatenate(found_ids)
        order = np.lexsort((ids, -scores))[:k]
        return scores[order].astype(np.float32), ids[order]

    def document_frequency(self, tokens: Sequence[str]) -> dict[str, int]:
        """How many live documents hold each of ``tokens`` (0 for a token none holds)."""
        segments = self._loaded_segments()
        df = self._frequencies(dict.fromkeys(tokens), segments)[2]
        return {t: df.get(t, 0) for t in tokens}

    def _frequencies(
        self, tokens: Iterable[str], segments: list[TermSegment]
    ) -> tuple[list[list[int]], list[list[str]], Counter[str]]:
        """Each token's row in every segment that holds it (and the token, in step), and its
        document frequency over the live documents of every segment."""
        rows: list[list[int]] = [[] for _ in segments]
        terms: list[list[str]] = [[] for _ in segments]
        df: Counter[str] = Counter()
        for term in tokens:
            for i, segment in enumerate(segments):
                row = segment.term_rows.get(term)
                if row is None:
                    continue
                indptr = segment.tf_matrix.indptr
                start, end = indptr[row], indptr[row + 1]
                live = self._live(segment)
                df[term] += (
                    int(end - start) if segment.all_live else int(live[segment.tf_matrix.indices[start:end]].sum())
                )
                rows[i].append(row)
                terms[i].append(term)
        return rows, terms, df

    def _statistics(self, segments: list[TermSegment]) -> tuple[int, float]:
        """Live documents and their average length (kept until the store changes)."""
        if self._stats is None:
            live_docs = sum(int(self._live(s).sum()) for s in segments)
            total = sum(
                float(s.doc_lengths.sum() if s.all_live else s.doc_lengths[self._live(s)].sum()) for s in segments
            )
            self._stats = (live_docs, (total / live_docs if live_docs else 0.0) or 1.0)
        return self._stats

    def _weights(self, i: int, segment: TermSegment, avg_length: float) -> sparse.csr_matrix:
        """BM25's term-frequency part, tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len)),
        per posting, for the current average length; a query multiplies rows of it by idf."""
        matrix = self._norms.get(i)
        if matrix is None:
            tf = segment.tf_matrix
            norm = (
                np.float32(K1) * (np.float32(1.0 - B) + np.float32(B) * segment.doc_lengths / np.float32(avg_length))
            ).astype(np.float32)
            data = (tf.data * np.float32(K1 + 1.0) / (tf.data + norm[tf.indices])).astype(np.float32)
            matrix = sparse.csr_matrix((data, tf.indices, tf.indptr), shape=tf.shape)
            self._norms[i] = matrix
        return matrix

    # -- saving ---------------------------------------------------------------------------------

    def save(self, generation: int) -> State:
        """Write the pending documents as a delta (or compact everything into one base) and the
        deletion set; returns the new state."""
        pending = len(self._pending_tokens)
        if not pending and not self.deleted.dirty and not self._compact_next:
            return self.state()
        base = len(self._ids(self.segments[0])) if self.segments else 0
        deltas = [len(self._ids(s)) for s in self.segments[1:]]
        if self._compact_next or should_compact(base, deltas, len(self.deleted), pending):
            merged = self._merged()
            self.segments = [self._write(generation, "", merged)] if len(merged.doc_ids) else []
            self.deleted = DeletionSet()
        else:
            if pending:
                self.segments.append(self._write(generation, ".delta", self._all_segments()[-1]))
            self.deleted.save(self.directory, f"{self.prefix}-{generation:06d}.deleted.npy")
        self._pending_ids, self._pending_tokens, self._compact_next = [], [], False
        self._changed()
        fsync(self.directory)
        return self.state()

    def _merged(self) -> TermSegment:
        """One segment of every live document, terms numbered afresh."""
        vocab: dict[str, int] = {}
        rows, cols, data, lengths, ids = [], [], [], [], []
        offset = 0
        for segment in [self._load(s) for s in self.segments] + self._all_segments()[len(self.segments) :]:
            live = np.flatnonzero(self._live(segment))
            if not len(live):
                continue
            vocab_of = segment.term_rows
            terms = sorted(vocab_of, key=vocab_of.__getitem__)
            remap = np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), dtype=np.int64, count=len(terms))
            part = segment.tf_matrix[:, live].tocoo()
            rows.append(remap[part.row])
            cols.append(part.col.astype(np.int64) + offset)
            data.append(part.data)
            lengths.append(segment.doc_lengths[live])
            ids.append(segment.doc_ids[live])
            offset += len(live)
        if not ids:
            return TermSegment(
                "", np.zeros(0, np.int64), sparse.csr_matrix((0, 0), dtype=np.float32), np.zeros(0, np.float32), {}
            )
        tf = sparse.coo_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(len(vocab), offset)
        ).tocsr()
        return TermSegment("", np.concatenate(ids), tf, np.concatenate(lengths), vocab)

    def _write(self, generation: int, tag: str, segment: TermSegment) -> TermSegment:
        name = f"{self.prefix}-{generation:06d}{tag}.bm25.npz"
        path = self.directory / name
        tf = segment.tf_matrix
        with open(path, "wb") as handle:
            np.savez(
                handle,
                data=tf.data.astype(np.float32),
                indices=tf.indices.astype(np.int32),
                indptr=tf.indptr.astype(np.int64),
                shape=np.array(tf.shape),
                lengths=segment.doc_lengths.astype(np.float32),
                ids=segment.doc_ids.astype(np.int64),
            )
        fsync(path)
        written = TermSegment(name, segment.ids, tf, segment.lengths, segment.vocab)
        vocab_path = self.directory / written.vocab_file
        vocab_path.write_text(json.dumps(segment.vocab, ensure_ascii=False), encoding="utf-8")
        fsync(vocab_path)
        return written

    def state(self) -> State:
        """What a generation records: the segment files and the deletion set's file."""
        return {"name": self.name, "segments": [{"file": s.file} for s in self.segments], "deleted": self.deleted.file}

    def files(self) -> list[str]:
        """The segment, vocabulary and deletion-set files the current state reads."""
        names = [n for s in self.segments for n in (s.file, s.vocab_file)]
        return names + ([self.deleted.file] if self.deleted.file else [])
