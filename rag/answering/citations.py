"""Citation markers in generated answers, checked against the passages the model was shown,
and how much of an answer the passages support.

Models write markers in many shapes: ``[1]``, ``[1][2]``, ``[1, 2]``, ``[1-3]``, full-width
``【1】`` or ``［1］``. All are read; markers that point to no passage are dropped, and the
rest are rewritten as ``[n]`` so the answer text and the citation list agree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.documents import Citation, SearchHit
from rag.text.language import has_cjk
from rag.text.sentences import QUESTION_MARKS, split_sentences
from rag.text.tokens import scoring_tokens, search_tokens

# One marker: an opening bracket, numbers separated by commas / dashes / "and", a closing one.
# "passage 2" style words inside the brackets are tolerated ("[Passage 2]", "[文档2]").
_NUM_LIST = (
    r"(?:passage|source|doc(?:ument)?|段落|文档|资料)?\s*\d{1,3}"
    r"(?:\s*(?:[,，、;；]|-|–|~|to|and|和)\s*(?:passage|source|doc(?:ument)?|段落|文档|资料)?\s*\d{1,3})*"
)
MARKER_RE = re.compile(
    rf"\s?(?:\[\s*({_NUM_LIST})\s*\]|【\s*({_NUM_LIST})\s*】|［\s*({_NUM_LIST})\s*］)", re.IGNORECASE
)
_NUMBER_RE = re.compile(r"\d{1,3}")
_RANGE_RE = re.compile(r"(\d{1,3})\s*(?:-|–|~|to)\s*(\d{1,3})", re.IGNORECASE)


def _numbers_in(group: str) -> list[int]:
    numbers: list[int] = []
    for match in _RANGE_RE.finditer(group):
        low, high = int(match.group(1)), int(match.group(2))
        if 0 < high - low <= 20:
            numbers.extend(range(low, high + 1))
    numbers.extend(int(n) for n in _NUMBER_RE.findall(_RANGE_RE.sub(" ", group)))
    out: list[int] = []
    for n in numbers:
        if n not in out:
            out.append(n)
    return out


def parse_markers(text: str) -> list[int]:
    """Passage numbers cited in ``text``, in order of first appearance, each once."""
    found: list[int] = []
    for match in MARKER_RE.finditer(text):
        for n in _numbers_in(next(g for g in match.groups() if g is not None)):
            if n not in found:
                found.append(n)
    return found


def clean_markers(text: str, passage_count: int) -> tuple[str, list[int]]:
    """Rewrite every marker as ``[n]`` and drop numbers outside ``1..passage_count``.

    Returns the cleaned text and the valid numbers in order of first appearance.
    """
    cited: list[int] = []

    def replace(match: re.Match) -> str:
        group = next(g for g in match.groups() if g is not None)
        valid = [n for n in _numbers_in(group) if 1 <= n <= passage_count]
        for n in valid:
            if n not in cited:
                cited.append(n)
        if not valid:
            return ""
        lead = " " if match.group(0)[:1].isspace() else ""
        return lead + "".join(f"[{n}]" for n in valid)

    cleaned = MARKER_RE.sub(replace, text)
    # Drop the same marker repeated back to back ("[1][1]") and spaces left before punctuation.
    cleaned = re.sub(r"(\[\d+\])(?:\s*\1)+", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]+([.,;:!?。，；：！？])", r"\1", cleaned)
    return cleaned.strip(), cited


def snippet_around(passage: str, answer: str, max_chars: int = 300) -> str:
    """The part of ``passage`` that best matches ``answer``, at most ``max_chars`` long.

    Sentences are scored by how many of the answer's words (Chinese: characters) they hold; the
    best one is widened with its neighbours while it fits.
    """
    passage = passage.strip()
    if len(passage) <= max_chars:
        return passage
    sentences = split_sentences(passage)
    wanted = set(scoring_tokens(answer))
    scores = [len(wanted & set(scoring_tokens(s))) for s in sentences]
    best = max(range(len(sentences)), key=lambda i: (scores[i], -i)) if sentences else 0
    start, end = best, best + 1
    length = len(sentences[best]) if sentences else 0
    while True:
        grew = False
        if end < len(sentences) and length + len(sentences[end]) <= max_chars:
            length += len(sentences[end])
            end += 1
            grew = True
        if start > 0 and length + len(sentences[start - 1]) <= max_chars:
            start -= 1
            length += len(sentences[start])
            grew = True
        if not grew:
            break
    text = "".join(sentences[start:end]).strip()
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(sentences) and not text.endswith("…") else ""
    return prefix + text + suffix


def build_citations(
    numbers: Sequence[int], passages: Sequence[SearchHit], answer: str = "", max_chars: int = 300
) -> list[Citation]:
    """One :class:`Citation` per cited number (1-based into ``passages``), in citation order."""
    citations: list[Citation] = []
    for n in numbers:
        if not 1 <= n <= len(passages):
            continue
        hit = passages[n - 1]
        chunk = hit.chunk
        citations.append(
            Citation(
                number=n,
                chunk_id=chunk.id,
                source=chunk.source,
                page=chunk.page,
                section=chunk.section,
                snippet=snippet_around(chunk.text, answer, max_chars),
                scores=dict(hit.scores),
            )
        )
    return citations


def best_supporting_passage(answer: str, passages: Sequence[SearchHit], min_overlap: float = 0.5) -> int | None:
    """1-based number of the passage that holds most of the answer's words, if it holds enough.

    Used when a model answers without any marker: the answer is still attributed, but only to a
    passage that contains at least ``min_overlap`` of its words.
    """
    wanted = set(scoring_tokens(answer))
    if not wanted:
        return None
    best, best_share = None, 0.0
    for i, hit in enumerate(passages, start=1):
        share = len(wanted & set(scoring_tokens(hit.chunk.text))) / len(wanted)
        if share > best_share:
            best, best_share = i, share
    return best if best_share >= min_overlap else None


def support_units(text: str) -> set[str]:
    """Content units for support checks: English words without stop words, and Chinese
    character bigrams (single characters are too common to say anything)."""
    units: set[str] = set()
    for token in search_tokens(text):
        if has_cjk(token):
            if len(token) >= 2:
                units.update(token[i : i + 2] for i in range(len(token) - 1))
        elif len(token) > 1 or token.isdigit():
            units.add(token)
    return units


_FIGURE_RE = re.compile(r"\d+(?:[.,]\d+)*")


def figures_in(text: str) -> set[str]:
    """The numbers written in ``text`` with digits, thousands separators dropped
    ("1,200" and "1200" are the same figure)."""
    return {m.group().replace(",", "") for m in _FIGURE_RE.finditer(text)}


def only_asks(answer: str) -> bool:
    """Whether every sentence of the answer is a question: a small model sometimes echoes the
    question ("佛蒙特州总共拥有多少个县[1]？") instead of answering it."""
    sentences = [s.strip() for s in split_sentences(MARKER_RE.sub("", answer)) if s.strip()]
    return bool(sentences) and all(s.rstrip("\"'”」)）").endswith(tuple(QUESTION_MARKS)) for s in sentences)


def support(answer: str, passages: Sequence[SearchHit]) -> float:
    """Share of the answer's content units (words; Chinese character bigrams) that appear in
    the passages: 1.0 for an answer made of the passages' words, near 0 for one made up.

    A figure the passages do not contain makes the answer unsupported (0.0) however many of
    its words they hold: "The defense gave up 120 points" is made of passage words, but a
    made-up number is the error a small model makes most and the one a reader cannot spot.
    """
    body = MARKER_RE.sub(" ", answer)
    if only_asks(body):
        return 0.0
    wanted = support_units(body)
    if not wanted:
        return 0.0
    have: set[str] = set()
    known_figures: set[str] = set()
    for hit in passages:
        have |= support_units(hit.chunk.text)
        known_figures |= figures_in(hit.chunk.text)
    if figures_in(body) - known_figures:
        return 0.0
    return len(wanted & have) / len(wanted)
