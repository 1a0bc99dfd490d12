"""Answering: from a question and its passages to the answer a person reads.

    pipeline   rewrite -> retrieve -> read / generate / quote -> checks -> answer
    turn       one question on its way through the pipeline
    reader     the short answer: the span of a passage the generator itself would say
    quote      the passage sentence that best answers (the evidence under the answer)
    checks     the ordered answer checks; edges: where a short answer starts and ends
    citations  [n] markers checked against the passages, and how much of an answer they support
    refusal    "the documents don't say", and recognising a model's own refusal
    repairs    loops and repeats cut out of generated text

``AnswerPipeline`` is imported lazily, so the small modules here can be imported by the prompt
builder (which the pipeline itself imports) without a cycle.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AnswerPipeline", "STAGES"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rag.answering import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'rag.answering' has no attribute '{name}'")
