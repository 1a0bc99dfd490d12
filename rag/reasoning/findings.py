"""What one hop of the reasoning stage found: its record (:class:`~rag.documents.Hop`), kept with
the single-hop answer it was made of."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag.documents import Answer, Hop, SearchHit
from rag.reasoning.values import Date, Quantity, find_dates, first_quantity
from rag.text import plain_words
from rag.text.lexical import hit_mentions, mentions

# The citation markers of an answer ("[1]", "[2][3]") and the space before them.
CITATION_MARKERS = re.compile(r"\s*\[\d+\](?:\[\d+\])*")


@dataclass
class Finding:
    """One hop's answer, kept with the hop record made of it."""

    hop: Hop
    answer: Answer
    text: str  # the short answer without its citation marker ("" for a lookup)
    sentence: str  # the sentence it came from ("" when none)
    entity: str = ""  # the entity a planned hop is about


def finding_of(kind: str, question: str, answer: Answer) -> Finding:
    """The finding of one single-hop answer: its short answer without citation markers, the
    sentence it came from and the passage it cites, as a hop of ``kind``."""
    text = CITATION_MARKERS.sub("", answer.answer).strip() if answer.answerable else ""
    number = answer.citations[0].number if answer.answerable and answer.citations else None
    if answer.answer_span is not None:
        number = answer.answer_span.passage
    sentence = answer.evidence.text if answer.evidence is not None else text
    hop = Hop(
        kind,
        question,
        answer.query,
        hop_passages(answer.passages),
        finding=text,
        citation=number,
        timings_ms={k: v for k, v in answer.timings_ms.items() if v},
    )
    return Finding(hop, answer, text, sentence)


def hop_passages(passages: Sequence[SearchHit]) -> list[dict[str, Any]]:
    """A hop's passages numbered as the hop saw them (the answer renumbers them, merged)."""
    return [
        {"number": n, "source": h.chunk.source, "chunk_id": h.chunk.id, "section": h.chunk.section}
        for n, h in enumerate(passages, start=1)
    ]


def is_about(item: Finding, entity: str) -> bool:
    """Whether the passage a hop read its finding from names the entity."""
    number = item.hop.citation
    if number is None or not 0 < number <= len(item.answer.passages):
        return False
    hit = item.answer.passages[number - 1]
    return hit_mentions(hit, entity)


def date_of(item: Finding) -> Date | None:
    """The date a hop found: in its short answer, else its sentence, else the first date of
    the first passage about its entity (an encyclopedia's "X (3 October 1900 – 1938)")."""
    texts = [item.text, item.sentence] + [
        h.chunk.text for h in item.answer.passages[:3] if item.entity and mentions(h.chunk.text, item.entity)
    ]
    for text in texts:
        dates = find_dates(text)
        if dates:
            return dates[0]
    return None


def quantity_of(item: Finding, unit_like: str = "") -> Quantity | None:
    """The first quantity in the hop's short answer, else in its sentence (with ``unit_like``,
    one whose unit matches it first)."""
    for text in (item.text, item.sentence):
        quantity = first_quantity(text, unit_like)
        if quantity is not None:
            return quantity
    return None


# -- comparing findings' words ---------------------------------------------------------------------


def stem(word: str) -> str:
    """An English word without its plural ending ("studies" -> "study"), lower case."""
    word = word.lower()
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def stem_in(finding: str, text: str) -> bool:
    """Whether ``text`` states ``finding`` (its words, plural or not)."""
    wanted = [stem(w) for w in plain_words(finding)]
    if not wanted:
        return finding in text
    words = {stem(w) for w in plain_words(text)}
    return all(w in words for w in wanted)


def same_finding(a: str, b: str) -> bool:
    """Whether two findings say the same thing: equal, or one holds the other ("福建" and "福建省")."""
    a, b = CITATION_MARKERS.sub("", a).strip().lower(), CITATION_MARKERS.sub("", b).strip().lower()
    return a == b or (min(len(a), len(b)) >= 2 and (a in b or b in a))
