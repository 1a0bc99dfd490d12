"""One question on its way through the answer pipeline: what each stage found and spent."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.documents import SearchHit
from rag.generation.base import GenerationResult
from rag.retrieval import Retrieval

# Every answer's timings_ms; a streamed one adds "first_token" (from the question to its first text).
STAGES = ("rewrite", "retrieve", "rerank", "read", "generate", "total")


@dataclass
class Turn:
    """One question on its way through the pipeline."""

    question: str
    language: str
    started: float
    query: str = ""
    rewritten: bool = False  # query is a model rewrite of a follow-up
    retrieval: Retrieval | None = None
    passages: list[SearchHit] = field(default_factory=list)
    messages: list[dict] | None = None  # None: refuse without asking the model
    mode: str = "generate"  # the answer mode (ANSWER_MODES)
    quote: tuple[int, str] | None = None  # modes "quote" and "read": (passage number, best sentence)
    evidence: list[tuple[int, str]] = field(default_factory=list)  # mode "read": the sentences the reader reads
    wider: list[tuple[int, str]] = field(default_factory=list)  # ... and those it reads when they do not answer
    timings_ms: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    # cached_tokens: prompt tokens the generator did not read again (rag/generation/prompt_cache.py)
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
    )

    def add_usage(self, result: GenerationResult) -> None:
        """Count a generation's tokens into this question's usage."""
        self.usage["prompt_tokens"] += result.prompt_tokens
        self.usage["completion_tokens"] += result.completion_tokens
        self.usage["cached_tokens"] += result.cached_tokens
