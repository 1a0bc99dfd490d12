"""The data that flows through the pipeline: parsed elements, chunks and search hits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Element:
    """One structural piece of a parsed document (a title, a paragraph, a table, ...)."""

    text: str
    kind: str  # unstructured's category: Title, NarrativeText, Table, ...
    page: int | None = None  # 1-based page number where the format has pages
    section: str | None = None  # nearest title above this element


@dataclass
class Chunk:
    """A piece of a document sized for the embedder, with where it came from."""

    id: str  # content hash: stable across runs for the same text and place
    text: str
    source: str  # path relative to the ingested root, with forward slashes
    page: int | None
    section: str | None
    kind: str  # "text" or "table"
    start: int  # character offsets into the document's joined element text
    end: int

    def to_dict(self) -> dict[str, Any]:
        """The chunk's fields as a plain dict."""
        return asdict(self)


@dataclass
class SearchHit:
    """A chunk returned by a search, with the scores that ranked it."""

    chunk: Chunk
    score: float  # the score of the mode asked for (RRF in hybrid)
    scores: dict[str, float] = field(default_factory=dict)  # per retriever: dense, sparse, rrf, rerank
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The chunk's fields with the hit's score, per-retriever scores and rank."""
        out = self.chunk.to_dict()
        out.update(score=self.score, scores=dict(self.scores), rank=self.rank)
        return out


@dataclass
class Citation:
    """A passage the answer cites as ``[number]``."""

    number: int  # the n in [n], as shown in the prompt and the answer
    chunk_id: str
    source: str
    page: int | None
    section: str | None
    snippet: str
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The citation's fields as a plain dict."""
        return asdict(self)


@dataclass
class Span:
    """A stretch of one passage: characters ``start:end`` of passage ``passage``'s text (1-based,
    as numbered in the answer's citations and ``passages``)."""

    passage: int
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The span's fields as a plain dict."""
        return asdict(self)


@dataclass
class Hop:
    """One step of a question answered in several: what it asked, where it looked, what it found.

    ``passages`` are numbered as in the final answer's ``passages`` and citations, so a finding's
    ``citation`` points at the passage the whole answer cites for it."""

    kind: str  # the reasoning kind (rag.reasoning.router.KINDS)
    question: str  # the sub-question this hop answered
    query: str  # what it searched with
    passages: list[dict[str, Any]] = field(default_factory=list)  # number, source, chunk_id, section
    finding: str = ""  # the short answer it found, "" when it found none
    citation: int | None = None  # the passage number of the finding
    value: str | None = None  # the date or quantity read from the finding, where code used one
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """Whether the hop found a short answer."""
        return bool(self.finding)

    def to_dict(self) -> dict[str, Any]:
        """The hop's fields as a plain dict, with ``found``."""
        out = asdict(self)
        out["found"] = self.found
        return out


@dataclass
class Answer:
    """What the answering pipeline returns for one question."""

    answer: str
    answerable: bool
    citations: list[Citation]
    passages: list[SearchHit]  # what retrieval handed the generator, best first
    query: str  # the standalone query used for retrieval
    language: str  # "zh" or "en": the question's language
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)  # retrieve, rerank, generate, total
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens
    # The short answer where a reader found one: where it is in its passage, the sentence that
    # holds it, and how sure the reader was (rag/answering/reader.py).
    answer_span: Span | None = None
    evidence: Span | None = None
    confidence: float | None = None
    relevance: float | None = None  # the best passage's relevance (the gate: min_relevance)
    # log P(the reader says "the passage does not say") - log P(its span): above 0 it prefers not to answer
    no_answer: float | None = None
    # What each answer check decided, in the order they ran (rag/answering/checks.py).
    checks: list[dict[str, str]] = field(default_factory=list)
    # The hops of a question that took more than one (rag/reasoning/); empty for one hop.
    reasoning: list[Hop] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready values (what ``/ask`` returns)."""
        return {
            "answer": self.answer,
            "answerable": self.answerable,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [p.to_dict() for p in self.passages],
            "query": self.query,
            "language": self.language,
            "model": self.model,
            "timings_ms": dict(self.timings_ms),
            "usage": dict(self.usage),
            **self.reader_fields(),
            # hops read back from a server's JSON stay dicts (eval.run --url)
            "reasoning": [hop.to_dict() if isinstance(hop, Hop) else dict(hop) for hop in self.reasoning],
        }

    def reader_fields(self) -> dict[str, Any]:
        """The reader's and the checks' part of :meth:`to_dict` (eval's results.jsonl records it too)."""
        return {
            "answer_span": self.answer_span.to_dict() if self.answer_span else None,
            "evidence": self.evidence.to_dict() if self.evidence else None,
            "confidence": self.confidence,
            "relevance": self.relevance,
            "no_answer": self.no_answer,
            "checks": [dict(c) for c in self.checks],
        }
