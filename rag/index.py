"""The index on disk, and searching it.

Layout of an index folder (default stores)::

    chunks.sqlite                  chunk texts, metadata, vectors, document manifest, meta
    dense-000007.faiss (+.ids.npy) FAISS base segment written by generation 7 (ids = chunk rows)
    dense-000009.delta.faiss       a small ingest's new vectors (generation 9)
    dense-000009.deleted.npy       rows removed since the base (generation 9)
    sparse-000007.bm25.npz         BM25 term frequencies, same pattern (+ .vocab.json)
    .lock                          held by a running ingest

``meta.generation`` in SQLite names the live generation and ``meta.vector_store`` /
``meta.keyword_store`` the state of each store (which files it reads). An ingest writes the
files of the next generation beside the live ones, never changing those, and then commits the
SQLite transaction that points to them, so readers switch from one complete state to the next and
never see a half-written one. The stores are given to :class:`Index` by a
:class:`rag.stores.registry.StoreOpener` (see :mod:`rag.stores.base` for the interfaces). Folders
written before stores had segments (``dense-N.faiss`` + ``sparse-N.npz``) open as they are.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from rag.config import Settings
from rag.documents import Chunk, SearchHit
from rag.embedding import Embedder, make_embedder
from rag.errors import IndexMissingError, ModelMismatchError, RagError
from rag.stores.base import KeywordStore, State, VectorStore
from rag.stores.chunk_store import ChunkStore, DocumentRecord
from rag.stores.faiss_segments import dense_params  # noqa: F401  (rag.index.dense_params, kept for users)
from rag.stores.registry import StoreOpener
from rag.text import search_tokens

DB_NAME = "chunks.sqlite"
SearchMode = Literal["dense", "sparse", "hybrid"]
# BM25's first passages that the query's coverage is read from (sparse_weight).
COVERAGE_DEPTH = 3


def generation_files(directory: Path, generation: int) -> tuple[Path, Path]:
    """The dense and sparse files of a generation written before stores had segments."""
    return directory / f"dense-{generation:06d}.faiss", directory / f"sparse-{generation:06d}.npz"


def resolve_embed_model(
    settings: Settings, directory: Path | None = None, embedder: Embedder | None = None, rebuild: bool = False
) -> Settings:
    """Settings whose ``embed_model`` names a model rather than ``"auto"``.

    ``"auto"`` (the default) means the model the index in ``directory`` (default
    ``settings.index_dir``) was built with, so an index built before the default changed keeps
    working; for a new index, or one being rebuilt, the default embedder
    (:data:`rag.embedding.DEFAULT_EMBEDDER`). A given ``embedder`` names itself. Any other value
    is returned as it is (and :func:`check_model` refuses it if the index holds another model).
    """
    from rag.embedding import AUTO_MODEL, DEFAULT_EMBEDDER

    if settings.embed_model != AUTO_MODEL:
        return settings
    if embedder is not None:
        return settings.replace(embed_model=embedder.name)
    recorded = None if rebuild else recorded_model(Path(directory or settings.index_dir))
    return settings.replace(embed_model=recorded or DEFAULT_EMBEDDER)


def recorded_model(directory: Path) -> str | None:
    """The embedding model the index in ``directory`` records, or ``None`` (no index yet)."""
    if not (directory / DB_NAME).is_file():
        return None
    try:
        store = ChunkStore(directory / DB_NAME, readonly=True)
    except Exception:  # an unreadable index is reported by whoever opens it next
        return None
    try:
        return store.get_meta().get("embed_model") or None
    finally:
        store.close()


def store_states(meta: dict[str, str]) -> tuple[State | None, State | None]:
    """The vector and keyword store states the committed generation recorded (``None`` = none yet).

    An index folder written before stores were recorded holds ``dense-N.faiss`` (an exact or HNSW
    FAISS index, as ``dense_kind`` says) and ``sparse-N.npz`` (precomputed BM25): the first opens as
    the base segment of a ``faiss`` store, the second as the read-only ``bm25-v1`` store.
    """
    generation = int(meta.get("generation", "0") or 0)
    if generation == 0:
        return None, None
    vector = json.loads(meta["vector_store"]) if meta.get("vector_store") else None
    keyword = json.loads(meta["keyword_store"]) if meta.get("keyword_store") else None
    if vector is None:
        kind = meta.get("dense_kind", "flat") or "flat"
        vector = {
            "name": "faiss",
            "kind": kind,
            "dimension": int(meta.get("dimension", "0") or 0),
            "segments": [{"file": f"dense-{generation:06d}.faiss", "kind": kind, "ids": None}],
            "deleted": None,
        }
    if keyword is None:
        keyword = {"name": "bm25-v1", "file": f"sparse-{generation:06d}.npz"}
    return vector, keyword


def check_model(meta: dict[str, str], model: str, directory: Path) -> None:
    """Refuse to mix embeddings of two models in one index."""
    recorded = meta.get("embed_model")
    if recorded and recorded != model:
        raise ModelMismatchError(
            f"The index in {directory} holds embeddings of '{recorded}' but '{model}' is configured; "
            f"set embed_model back to '{recorded}', use a new --index-dir, or re-embed everything with "
            f"'{model}': python -m ingest DOCS --index-dir {directory} --rebuild."
        )


def rrf_fuse(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds weight / (k + rank) to the items it ranks (rank from 1)."""
    fused: dict[int, float] = {}
    weights = weights or [1.0] * len(rankings)
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def dense_weight(unknown_ratio: float, cutoff: float = 0.4) -> float:
    """How much to trust the dense ranking for a query, from the share of its tokens the
    embedder cannot read (``[UNK]``).

    all-MiniLM-L6-v2 maps about half of a Chinese question to ``[UNK]`` and ranks such
    queries close to randomly; RRF is sensitive enough that even a small weight on a noise
    ranking reorders the top of a good one, so the weight falls linearly to zero at ``cutoff``.
    """
    return max(0.0, 1.0 - unknown_ratio / cutoff)


def dense_background(scores: Sequence[float], first: int = 2, last: int = 10) -> float:
    """The level of the dense ranking's ordinary passages: the mean score at ranks ``first`` to
    ``last``. How far a passage's score stands above it (``scores["dense_margin"]``) says more
    about relevance than the score itself, whose scale differs from one embedder to another
    and from one question to the next (e5's cosines sit at 0.8-0.9 for unrelated text)."""
    rest = list(scores[first - 1 : last])
    return float(np.mean(rest)) if rest else 0.0


def sparse_weight(coverage: float, dense: float, power: float) -> float:
    """How much to trust the BM25 ranking for a query, from ``coverage``: the share of the
    query's content words that the best of BM25's first few passages holds.

    BM25 ranks by shared words, so when its best passages hold few of the question's words
    its ranking says little: the question is a paraphrase, or in another language than the
    passage that answers it. Reciprocal rank fusion then lets those passages displace the
    dense ranking's good ones (USE-m3 found 1.000 of the English questions over Chinese
    documents dense-only and 0.426 fused at equal weights; bench/README.md). The weight is
    ``coverage ** power``, raised towards 1 as the dense ranking is trusted less (``dense``
    weight 0: BM25 alone decides, whatever it matched). ``power`` 0 = always 1.
    """
    lexical = coverage**power if power > 0 else 1.0
    return 1.0 - dense * (1.0 - lexical)


# A word is rare when at most this share of the passages hold it (or RARE_AT_LEAST of them).
RARE_SHARE = 0.005
RARE_AT_LEAST = 2


def names_a_rare_word(
    query: str, terms: Sequence[str], frequency: dict[str, int], size: int, texts: Sequence[str]
) -> bool:
    """Whether ``texts`` hold the rarest of the query's ``terms`` (by ``frequency``, the number
    of the ``size`` passages that hold each) when that word is a Chinese name held by few
    passages: the question names one thing, and BM25's word match finds it where an embedder
    sees only its kind ("基氏软汉鱼" and every other fish). A rarest word no passage holds names
    nothing that was found."""
    from rag.lexical import terms_found
    from rag.text.tokens import is_name_zh

    rarest = min(terms, key=lambda t: frequency.get(t, 0))
    held_by = frequency.get(rarest, 0)
    if not 0 < held_by <= max(RARE_AT_LEAST, RARE_SHARE * size) or not is_name_zh(rarest, query):
        return False
    return any(terms_found([rarest], text) for text in texts)


class Index:
    """A read-only view of an index folder that can search and reload itself.

    ``stores`` opens the vector and keyword stores of each generation it loads (default: the
    backends the generation recorded, from :mod:`rag.stores.registry`).
    """

    def __init__(
        self, directory: Path, settings: Settings, embedder: Embedder | None = None, stores: StoreOpener | None = None
    ) -> None:
        self.directory = directory
        self.settings = settings = resolve_embed_model(settings, directory, embedder)
        self.embedder = embedder or make_embedder(settings)
        self.stores = stores or StoreOpener(settings, directory)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.generation = -1
        self.meta: dict[str, str] = {}
        self._vectors: VectorStore | None = None
        self._keywords: KeywordStore | None = None
        self._count = 0
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None, stores: StoreOpener | None = None) -> Index:
        """Open the index in ``settings.index_dir``; raises if none was built there."""
        directory = Path(settings.index_dir)
        if not (directory / DB_NAME).is_file():
            raise IndexMissingError(
                f"No index found in {directory}; build one with: python -m ingest DOCS_FOLDER --index-dir {directory}"
            )
        index = cls(directory, settings, embedder, stores)
        index.reload_if_changed()
        return index

    # -- state ----------------------------------------------------------------------------

    def _store(self) -> ChunkStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = ChunkStore(self.directory / DB_NAME, readonly=True)
            self._local.store = store
        return store

    def reload_if_changed(self) -> bool:
        """Load the newest committed generation if it differs from the one in memory."""
        meta = self._store().get_meta()
        generation = int(meta.get("generation", "0"))
        if generation == self.generation:
            return False
        with self._lock:
            if generation == self.generation:
                return False
            check_model(meta, self.settings.embed_model, self.directory)
            vector_state, keyword_state = store_states(meta)
            if vector_state is None:
                vectors, keywords, count = None, None, 0
            else:
                try:
                    dimension = int(meta.get("dimension", "0") or 0)
                    vectors = self.stores.vector(vector_state, dimension)
                    keywords = self.stores.keyword(keyword_state)
                    count = vectors.count()
                    # Read every file of the generation now, not on the first question.
                    if count and dimension:
                        vectors.search(np.zeros((1, dimension), np.float32), 1)
                    keywords.search(["warm-up"], 1)
                except (OSError, RuntimeError, ValueError, KeyError) as exc:
                    raise RagError(
                        f"The index in {self.directory} is damaged ({exc}); rebuild it with python -m ingest --rebuild."
                    ) from exc
            self._vectors, self._keywords, self._count = vectors, keywords, count
            self.meta, self.generation = meta, generation
        return True

    def _keyword_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bm25")
        return self._pool

    @property
    def size(self) -> int:
        """How many chunks the loaded generation holds."""
        return self._count

    def documents(self) -> dict[str, DocumentRecord]:
        """Every ingested document's record, by path."""
        return self._store().documents()

    def chunks_of(self, source: str) -> list[Chunk]:
        """Every chunk of one source document, in text order."""
        return self._store().chunks_of(source)

    # -- search ---------------------------------------------------------------------------

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, a (1 x dimension) array."""
        return self.embedder.embed_queries([query])

    def search(
        self, query: str, k: int = 10, mode: SearchMode = "hybrid", candidates: int | None = None
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query``.

        ``dense`` ranks by cosine similarity of embeddings, ``sparse`` by BM25, ``hybrid`` fuses
        both rankings with reciprocal rank fusion (``rrf_k``), BM25's weighted by how many of the
        query's words its best passages hold (:func:`sparse_weight`). ``candidates`` is how deep
        each ranking is read before fusion (default: max(k, settings.retrieve_k)). Hits from the
        dense ranking carry ``scores["dense"]`` and ``scores["dense_margin"]``
        (:func:`dense_background`).
        """
        if mode not in ("dense", "sparse", "hybrid"):
            raise ValueError(f"search mode must be dense, sparse or hybrid, not {mode!r}")
        dense, sparse = self._vectors, self._keywords
        if dense is None or sparse is None or self._count == 0 or not query.strip():
            return []
        depth = max(k, candidates or self.settings.retrieve_k)
        dense_scores: dict[int, float] = {}
        sparse_scores: dict[int, float] = {}
        dense_rank: list[int] = []
        sparse_rank: list[int] = []
        keyword_search = None
        if mode == "hybrid":
            # BM25 runs beside the query embedding and the vector search (both release the GIL
            # for most of their work): at a million chunks each takes ~10 ms.
            keyword_search = self._keyword_pool().submit(sparse.search, search_tokens(query), depth)
        if mode in ("dense", "hybrid"):
            scores, ids = dense.search(self.embed_query(query), depth)
            for score, row in zip(scores[0], ids[0]):
                if row >= 0:
                    dense_rank.append(int(row))
                    dense_scores[int(row)] = float(score)
        if mode in ("sparse", "hybrid"):
            scores, ids = keyword_search.result() if keyword_search else sparse.search(search_tokens(query), depth)
            sparse_rank = [int(r) for r in ids]
            sparse_scores = {int(r): float(s) for r, s in zip(ids, scores)}

        if mode == "dense":
            ranked = [(row, dense_scores[row]) for row in dense_rank]
        elif mode == "sparse":
            ranked = [(row, sparse_scores[row]) for row in sparse_rank]
        else:
            fused = rrf_fuse([dense_rank, sparse_rank], self.settings.rrf_k, self._fusion_weights(query, sparse_rank))
            ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        ranked = ranked[:k]
        background = dense_background([dense_scores[row] for row in dense_rank])

        chunks = self._store().chunks_by_rows([row for row, _ in ranked])
        hits: list[SearchHit] = []
        for row, score in ranked:
            chunk = chunks.get(row)
            if chunk is None:  # removed by an ingest that committed after our generation loaded
                continue
            hit_scores: dict[str, float] = {}
            if row in dense_scores:
                hit_scores["dense"] = dense_scores[row]
                hit_scores["dense_margin"] = dense_scores[row] - background
            if row in sparse_scores:
                hit_scores["sparse"] = sparse_scores[row]
            if mode == "hybrid":
                hit_scores["rrf"] = score
            hits.append(SearchHit(chunk=chunk, score=score, scores=hit_scores, rank=len(hits) + 1))
        return hits

    def _fusion_weights(self, query: str, sparse_rank: Sequence[int]) -> list[float]:
        """The dense and the BM25 ranking's weights in the fusion: :func:`dense_weight`, and
        :func:`sparse_weight` of the best share of the query's content words among BM25's first
        passages, raised to ``fusion_name_weight`` when those passages hold the rare name the
        question asks about (:func:`names_a_rare_word`). The passages are read once for both."""
        from rag.lexical import query_terms, term_overlap

        weight = dense_weight(self.embedder.unknown_ratio(query))
        power = self.settings.fusion_coverage_power
        top = sparse_rank[:COVERAGE_DEPTH]
        frequency = getattr(self._keywords, "document_frequency", None)
        names = self.settings.fusion_name_weight > 0 and frequency is not None
        if not top or (power <= 0 and not names):
            return [weight, sparse_weight(1.0, weight, power)]
        terms = query_terms(query)
        texts = [chunk.text for chunk in self._store().chunks_by_rows(list(top)).values()]
        coverage = max((term_overlap(terms, text) for text in texts), default=0.0) if power > 0 else 1.0
        lexical = sparse_weight(coverage, weight, power)
        if (
            frequency is not None
            and terms
            and self.settings.fusion_name_weight > lexical
            and names_a_rare_word(query, terms, frequency(terms), self.size, texts)
        ):
            lexical = self.settings.fusion_name_weight
        return [weight, lexical]

    def stats(self) -> dict[str, object]:
        """The index's statistics the server reports: folder, generation, counts, embedding model and times."""
        return {
            "index_dir": str(self.directory),
            "generation": self.generation,
            "chunks": self.size,
            "documents": int(self.meta.get("documents", "0")),
            "embed_model": self.meta.get("embed_model"),
            "dimension": int(self.meta.get("dimension", "0")),
            "dense_kind": self.meta.get("dense_kind"),
            "updated_at": float(self.meta.get("updated_at", "0") or 0),
            "checked_at": time.time(),
        }
