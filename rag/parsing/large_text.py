"""Bounded work on very large text: huge lines cut into paragraphs, and very large files read
as plain paragraphs without unstructured."""

from __future__ import annotations

import re

from rag.documents import Element
from rag.parsing.chinese import _rejoin_wrapped_cjk_lines

# A line longer than this is cut into paragraphs of at most _LINE_PIECE characters before
# partitioning, at sentence ends where it has them, else at white space.
_HUGE_LINE = 10_000
_LINE_PIECE = 1_000
# Text longer than this (characters, after decoding) is read as plain paragraphs split at blank
# lines, without unstructured's partitioner and its per-paragraph classifier (about 1.5 s per MB
# on these machines, and much more for long paragraphs without sentence ends): a short line in
# such a file is not made a heading.
_LARGE_TEXT_CHARS = 2_000_000
# A paragraph longer than this is never a heading, so unstructured's classifier is not asked
# about it (the answer would only pick NarrativeText or UncategorizedText, which chunk alike).
_LONG_PARAGRAPH = 500
_SENTENCE_CUTS = ("。", "！", "？", "；", ". ", "! ", "? ", "; ")


def _cut_huge_lines(text: str) -> str:
    """``text`` with every line over _HUGE_LINE characters cut into paragraphs."""
    if len(text) <= _HUGE_LINE or max(map(len, text.splitlines())) <= _HUGE_LINE:
        return text
    out = []
    for line in text.splitlines():
        if len(line) <= _HUGE_LINE:
            out.append(line)
        else:
            out.append("\n" + "\n\n".join(_cut_line(line, _LINE_PIECE)) + "\n")
    return "\n".join(out)


def _cut_line(line: str, size: int) -> list[str]:
    """Pieces of at most ``size`` characters (joined, they give ``line`` back)."""
    pieces = []
    start = 0
    while len(line) - start > size:
        low, high = start + size // 2, start + size
        cut = -1
        for mark in _SENTENCE_CUTS:
            at = line.rfind(mark, low, high)
            if at >= 0:
                cut = max(cut, at + len(mark))
        if cut < 0:
            space = max(line.rfind(" ", low, high), line.rfind("\t", low, high))
            cut = space + 1 if space >= 0 else high
        pieces.append(line[start:cut])
        start = cut
    pieces.append(line[start:])
    return [p for p in pieces if p.strip()]


_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def _plain_paragraphs(text: str) -> list[Element]:
    """Very large text as paragraphs split at blank lines; a paragraph's lines are joined with
    a space, or with nothing where a Chinese line was wrapped."""
    text = _rejoin_wrapped_cjk_lines(text)
    elements: list[Element] = []
    for paragraph in _BLANK_LINES.split(text):
        paragraph = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
        pieces = _cut_line(paragraph, _LINE_PIECE) if len(paragraph) > _HUGE_LINE else [paragraph]
        elements.extend(
            Element(text=p.strip(), kind="NarrativeText", page=None, section=None) for p in pieces if p.strip()
        )
    return elements
