"""Retrieval: the passages an answer is built from.

``HybridRetriever`` asks the index for candidates (dense + BM25 fused by reciprocal rank
fusion), keeps those that pass the metadata filters, drops near-duplicates, optionally
reorders them with a cross-encoder, and returns the best ``top_k``.

Every hit also gets ``scores["overlap"]``: the share of the query's content words found in the
passage. Rank fusion says which passages are best but not whether any is relevant at all;
overlap (or the reranker's score) is what the answer pipeline compares with ``min_relevance``
to decide that the documents do not answer the question.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rag.config import Settings
from rag.documents import Chunk, SearchHit
from rag.errors import InputError
from rag.index import Index, SearchMode
from rag.reranking import Reranker, make_reranker, rerank
from rag.text.language import detect_language, normalize  # noqa: F401  (normalize: re-exported, old import path)
from rag.text.lexical import (  # noqa: F401  (re-exported: their old import path is this module)
    _SPACE_RE,
    query_terms,
    relevance,
    shingles,
    sigmoid,
    term_overlap,
    terms_found,
)
from rag.text.tokens import search_tokens


@dataclass
class SearchFilters:
    """Metadata filters: source globs (``fnmatch`` on the path relative to the ingested
    folder, e.g. ``"policies/*.md"``), file types (suffixes: ``"pdf"``, ``".md"``), and source
    globs to leave out (``exclude``)."""

    sources: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, filters: SearchFilters | Mapping[str, Any] | None) -> SearchFilters | None:
        """Filters from a request's ``{"source": ..., "type": ...}`` (strings or lists)."""
        if filters is None or isinstance(filters, SearchFilters):
            return filters if filters is None or filters.active else None
        if not isinstance(filters, Mapping):
            raise InputError('Filters must be an object like {"source": "docs/*.md", "type": "pdf"}.')
        out = cls()
        for key, value in filters.items():
            values = [value] if isinstance(value, str) else list(value or [])
            if not all(isinstance(v, str) for v in values):
                raise InputError(f"Filter '{key}' takes a string or a list of strings.")
            if key in ("source", "sources", "path"):
                out.sources.extend(v for v in values if v)
            elif key in ("type", "types", "file_type", "suffix"):
                out.types.extend(v.lower().lstrip(".") for v in values if v)
            elif key in ("exclude", "exclude_source"):
                out.exclude.extend(v for v in values if v)
            else:
                raise InputError(
                    f"Unknown filter '{key}'; use 'source' (glob on the file path), 'type' (file suffix) "
                    "or 'exclude' (globs of files to leave out)."
                )
        return out if out.active else None

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.sources or self.types or self.exclude)

    def matches(self, chunk: Chunk) -> bool:
        """Whether ``chunk``'s source passes the globs, the exclusions and the file types."""
        if self.exclude and any(fnmatch.fnmatchcase(chunk.source, pattern) for pattern in self.exclude):
            return False
        if self.sources and not any(fnmatch.fnmatchcase(chunk.source, pattern) for pattern in self.sources):
            return False
        if self.types:
            suffix = chunk.source.rsplit(".", 1)[-1].lower() if "." in chunk.source.rsplit("/", 1)[-1] else ""
            if suffix not in self.types:
                return False
        return True


@dataclass
class Retrieval:
    """What one retrieval returned, and how long its stages took."""

    query: str
    hits: list[SearchHit]
    timings_ms: dict[str, float] = field(default_factory=dict)  # retrieve, rerank
    reranked: bool = False
    # Whether a hit's dense score stands out from the ranking's ordinary passages by the
    # embedder's calibrated margin (see HybridRetriever.dense_gate): relevant even when it
    # shares few of the question's words (a paraphrase, or a passage in another language).
    dense_relevant: bool = False

    @property
    def best_relevance(self) -> float:
        """The highest :func:`~rag.text.lexical.relevance` among the hits (0.0 without hits)."""
        return max((relevance(h) for h in self.hits), default=0.0)


class Retriever(Protocol):
    """What the answer pipeline needs from retrieval."""

    def warm_up(self) -> None:
        """Load the models retrieval needs, so the first question does not wait for them."""

    def retrieve(self, query: str, top_k: int | None = None, filters: Any = None) -> Retrieval:
        """The ``top_k`` best passages for ``query`` that pass ``filters``."""


class HybridRetriever:
    """Hybrid search over an :class:`~rag.index.Index`, with filters, de-duplication and an
    optional reranking stage."""

    def __init__(
        self, index: Index, settings: Settings, reranker: Reranker | None = None, mode: SearchMode = "hybrid"
    ) -> None:
        self.index = index
        self.settings = settings
        self.reranker = reranker
        self.mode = mode

    @classmethod
    def from_settings(cls, settings: Settings, index: Index | None = None) -> HybridRetriever:
        """A retriever over ``index`` (opened from ``settings.index_dir`` if not given)."""
        index = index if index is not None else Index.open(settings)
        return cls(index, settings, make_reranker(settings) if settings.rerank else None)

    def warm_up(self) -> None:
        """Load the query encoder, jieba's dictionary and the reranker now."""
        self.index.embedder.warm_up_queries()
        # jieba reads its dictionary on first use (~0.5 s): do that now, not in the first question.
        search_tokens("预热")
        if self.reranker is not None:
            self.reranker.warm_up()

    def retrieve(self, query: str, top_k: int | None = None, filters: Any = None) -> Retrieval:
        """The ``top_k`` best passages for ``query`` that pass ``filters``."""
        top_k = self.settings.top_k if top_k is None else top_k
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, not {top_k}.")
        parsed = SearchFilters.parse(filters)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        candidates = self._candidates(query, max(top_k, self.settings.retrieve_k), parsed)
        # Without a reranker the order is final: only the first top_k distinct passages matter.
        candidates = drop_near_duplicates(
            candidates, self.settings.dedup_threshold, limit=None if self.reranker is not None else top_k
        )
        timings["retrieve"] = _ms(started)

        reranked = False
        started = time.perf_counter()
        if self.reranker is not None and candidates and _reads(self.reranker, query):
            candidates = rerank(self.reranker, query, candidates)
            reranked = True
        timings["rerank"] = _ms(started)

        hits = candidates[:top_k]
        # Overlap only for the passages returned: it is what relevance is judged on, and
        # tokenising every candidate cost more than the search itself.
        started = time.perf_counter()
        terms = query_terms(query)
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
            hit.scores["overlap"] = term_overlap(terms, hit.chunk.text)
        timings["retrieve"] = round(timings["retrieve"] + _ms(started), 2)
        gate = self.dense_gate
        dense_relevant = gate is not None and any(h.scores.get("dense_margin", -1.0) >= gate for h in hits)
        return Retrieval(query=query, hits=hits, timings_ms=timings, reranked=reranked, dense_relevant=dense_relevant)

    @property
    def dense_gate(self) -> float | None:
        """The dense margin at which a passage counts as relevant whatever its words:
        ``min_dense_margin`` when set above 0, else the embedder's calibrated
        ``relevance_margin``; ``None`` (overlap alone decides) when ``min_dense_margin`` is
        negative, the embedder has no calibrated margin, or the search is not dense."""
        setting = self.settings.min_dense_margin
        if setting < 0 or self.mode == "sparse":
            return None
        if setting > 0:
            return setting
        return getattr(self.index.embedder, "relevance_margin", None)

    def _candidates(self, query: str, depth: int, filters: SearchFilters | None) -> list[SearchHit]:
        """Search results that pass the filters; with filters, search deeper until ``depth``
        of them are found or the whole index has been ranked."""
        if filters is None:
            return self.index.search(query, k=depth, mode=self.mode)
        size = max(self.index.size, 1)
        k = min(depth * 4, size)
        while True:
            hits = [h for h in self.index.search(query, k=k, mode=self.mode, candidates=k) if filters.matches(h.chunk)]
            if len(hits) >= depth or k >= size:
                return hits[:depth]
            k = min(k * 4, size)


def _reads(reranker: Reranker, query: str) -> bool:
    languages = getattr(reranker, "languages", None)
    return languages is None or detect_language(query) in languages


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def drop_near_duplicates(
    hits: Sequence[SearchHit], threshold: float = 0.8, limit: int | None = None
) -> list[SearchHit]:
    """``hits`` without passages whose shingle Jaccard similarity to a better-ranked kept one
    reaches ``threshold`` (the same paragraph in two files, or two versions of a document);
    with ``limit``, only the first ``limit`` kept ones."""
    if threshold <= 0 or threshold > 1:
        return list(hits[:limit] if limit is not None else hits)
    kept: list[SearchHit] = []
    kept_shingles: list[set[str]] = []
    for hit in hits:
        if limit is not None and len(kept) >= limit:
            break
        current = shingles(hit.chunk.text)
        duplicate = False
        for other in kept_shingles:
            if current and other:
                inter = len(current & other)
                if inter and inter / (len(current) + len(other) - inter) >= threshold:
                    duplicate = True
                    break
        if not duplicate:
            kept.append(hit)
            kept_shingles.append(current)
    return kept
