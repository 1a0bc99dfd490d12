"""The answer of a question that took several hops, made of what the hops found: their passages
merged and renumbered, the composed text cited, the hops' timings and checks summed; or the
refusal when a hop found nothing or the findings could not be combined."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from rag.answering.citations import build_citations
from rag.answering.refusal import refusal_text
from rag.documents import Answer, SearchHit, Span
from rag.reasoning.findings import CITATION_MARKERS, Finding
from rag.text import detect_language

_HOP_MARKER = re.compile(r"\{c(\d+)\}")  # {cI}: the citation of hop I, set once the passages are merged


def merged_passages(found: Sequence[Finding]) -> list[SearchHit]:
    """All hops' passages, each once, in hop order; each hop's passages and citation are
    renumbered into them."""
    passages: list[SearchHit] = []
    numbering: list[dict[int, int]] = []
    index: dict[str, int] = {}
    for item in found:
        mapping = {}
        for number, hit in enumerate(item.answer.passages, start=1):
            if hit.chunk.id not in index:
                passages.append(hit)
                index[hit.chunk.id] = len(passages)
            mapping[number] = index[hit.chunk.id]
        numbering.append(mapping)
    for item, mapping in zip(found, numbering):
        item.hop.passages = [
            {"number": mapping[n], "source": h.chunk.source, "chunk_id": h.chunk.id, "section": h.chunk.section}
            for n, h in enumerate(item.answer.passages, start=1)
        ]
        if item.hop.citation is not None:
            item.hop.citation = mapping.get(item.hop.citation)
    return passages


def composed_answer(
    question: str,
    found: Sequence[Finding],
    text: str,
    span_answer: Answer | None,
    kind: str,
    reason: str,
    cited: Sequence[int] | None = None,
) -> Answer:
    """The answer made of the hops' findings: ``text`` (its ``{cI}`` markers replaced by hop I's
    citation, else followed by the citations of the hops in ``cited``, all by default), the hops'
    passages merged, and, for a bridge (``span_answer``), the last hop's span and evidence."""
    passages = merged_passages(found)
    cited_hops = found if cited is None else [found[i] for i in cited]
    numbers = list(dict.fromkeys(n for n in (f.hop.citation for f in cited_hops) if n is not None))
    if span_answer is not None:  # a bridge: the last hop's span answers
        last_cited = found[-1].hop.citation
        # (build_citations could not take a None: the last hop of a bridge read its answer from a passage)
        assert last_cited is not None
        numbers = [last_cited] + [n for n in numbers if n != last_cited]
    body = CITATION_MARKERS.sub("", text).strip()
    if _HOP_MARKER.search(body):  # each part cites its own hop
        marked = _HOP_MARKER.sub(lambda m: _cite(found[int(m.group(1))].hop.citation), body)
    else:
        marked = body + " " + "".join(f"[{n}]" for n in numbers) if numbers else body
    last = found[-1].answer
    answer = Answer(
        answer=marked,
        answerable=True,
        citations=build_citations(numbers, passages, " ".join(f.sentence for f in found)),
        passages=passages,
        query=found[0].answer.query,
        language=detect_language(question),
        # The model that read a hop; "lookup" when code alone took every finding from its sentence.
        model=next((f.answer.model for f in found if f.answer.model != "lookup"), last.model),
        timings_ms=_summed([f.answer.timings_ms for f in found]),
        usage=_summed_usage([f.answer.usage for f in found]),
        relevance=found[0].answer.relevance,
        confidence=min((f.answer.confidence for f in found if f.answer.confidence is not None), default=None),
    )
    if span_answer is not None and span_answer.answer_span is not None:
        hop = found[-1].hop
        answer.answer_span = _renumbered(span_answer.answer_span, hop.citation)
        answer.evidence = _renumbered(span_answer.evidence, hop.citation) if span_answer.evidence else None
    answer.checks = [{"check": "reasoning", "action": "replace", "reason": reason}] + [
        {**c, "hop": str(i + 1)} for i, f in enumerate(found) for c in f.answer.checks if c.get("action") != "keep"
    ]
    answer.reasoning = [f.hop for f in found]
    return answer


def refused_answer(question: str, found: Sequence[Finding], kind: str) -> Answer:
    """The refusal of a question whose hops found nothing for a part, or found what could not be
    combined; it keeps the hops and their passages."""
    passages = merged_passages(found)
    language = detect_language(question)
    missing = [f.hop.question for f in found if not f.text and not f.sentence]
    reason = (
        f"{kind}: no answer found for {', '.join(repr(m) for m in missing)}"
        if missing
        else f"{kind}: the findings could not be combined"
    )
    answer = Answer(
        refusal_text(language),
        False,
        [],
        passages,
        found[0].answer.query,
        language,
        found[-1].answer.model,
        timings_ms=_summed([f.answer.timings_ms for f in found]),
        usage=_summed_usage([f.answer.usage for f in found]),
        relevance=found[0].answer.relevance,
    )
    answer.checks = [{"check": "reasoning", "action": "refuse", "reason": reason}]
    answer.reasoning = [f.hop for f in found]
    return answer


def _cite(number: int | None) -> str:
    return f"[{number}]" if number is not None else ""


def _summed(timings: Sequence[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in timings:
        for key, value in item.items():
            if key != "total":
                out[key] = round(out.get(key, 0.0) + value, 2)
    return out


def _summed_usage(usages: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in usages:
        for key, value in item.items():
            out[key] = out.get(key, 0) + value
    return out


def _renumbered(span: Span, number: int | None) -> Span:
    return replace(span, passage=number) if number is not None else span
