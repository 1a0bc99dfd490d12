"""Repairs of a generated text before it is checked: loops, repeated sentences and clauses,
a dangling ellipsis (small models produce all of them)."""

from __future__ import annotations

import re

from rag.text.sentences import SENTENCE_ENDS, split_sentences

# A run of the same 4-60 characters, ending at a space or punctuation, three or more times in a
# row ("是一种节奏，是一种节奏，是一种节奏，").
_RUN_RE = re.compile(r"(.{3,59}?[\s,.;!?，。；！？、])\1{2,}", re.DOTALL)


def _one_of_the_run(match: re.Match) -> str:
    unit = match.group(1)
    # Only words loop; "1111111" or "......" are data, left alone.
    return unit if any(ch.isalpha() for ch in unit) else match.group(0)


_CLAUSE_RE = re.compile(r"[^，,；;。！？!?\n]+[，,；;。！？!?\n]*")


def _drop_repeated_clauses(text: str) -> str:
    """Without clauses (of 4+ characters) said twice already, compared without their closing
    punctuation: loops that alternate "，" and "。" slip past the other checks."""
    counts: dict[str, int] = {}
    kept: list[str] = []
    for clause in _CLAUSE_RE.findall(text):
        key = clause.strip().rstrip("，,；;。！？!?").strip()
        counts[key] = counts.get(key, 0) + 1
        if len(key) >= 4 and counts[key] > 2:
            continue
        kept.append(clause)
    return "".join(kept)


def drop_repeats(text: str) -> str:
    """``text`` without sentences it already said (small models loop), without clauses
    repeated back to back, and without a trailing half sentence after a loop was cut."""
    collapsed = _RUN_RE.sub(_one_of_the_run, text)
    looped = collapsed != text
    if looped:
        last = list(_RUN_RE.finditer(text))[-1]
        rest = text[last.end() :]
        if rest and last.group(1).startswith(rest):  # the loop was cut in the middle of a unit
            collapsed = collapsed[: len(collapsed) - len(rest)]
    text = _drop_repeated_clauses(collapsed)
    looped = looped or text != collapsed
    seen: set[str] = set()
    kept: list[str] = []
    for sentence in split_sentences(text):
        key = " ".join(sentence.split())
        if key and key in seen:
            looped = True
            continue
        seen.add(key)
        kept.append(sentence)
    if looped and len(kept) > 1 and kept[-1].rstrip()[-1:] not in SENTENCE_ENDS + "…]":
        kept.pop()
    return _DANGLING_ELLIPSIS.sub("", "".join(kept).strip())


# An ellipsis standing alone after a finished sentence (or a lead-in's colon): the model
# copying the "…" that marks text left out of a passage. It says nothing, so it goes (a "[1]"
# after it stays).
_DANGLING_ELLIPSIS = re.compile(rf"(?<=[{SENTENCE_ENDS}:：])\s*(?:…+|\.{{3,}})(?=\s*(?:\[\d+\]\s*)*$)")
