"""Citation markers in generated answers, checked against the passages the model was shown,
and the fixed refusal answers.

Models write markers in many shapes: ``[1]``, ``[1][2]``, ``[1, 2]``, ``[1-3]``, full-width
``【1】`` or ``［1］``. All are read; markers that point to no passage are dropped, and the
rest are rewritten as ``[n]`` so the answer text and the citation list agree.
"""

from __future__ import annotations

import re
from typing import Sequence

from rag.documents import Citation, SearchHit
from rag.text import has_cjk, scoring_tokens, split_sentences

REFUSALS = {
    "en": "I could not find the answer in the documents.",
    "zh": "文档中没有找到答案。",
}

# One marker: an opening bracket, numbers separated by commas / dashes / "and", a closing one.
# "passage 2" style words inside the brackets are tolerated ("[Passage 2]", "[文档2]").
_NUM_LIST = r"(?:passage|source|doc(?:ument)?|段落|文档|资料)?\s*\d{1,3}(?:\s*(?:[,，、;；]|-|–|~|to|and|和)\s*(?:passage|source|doc(?:ument)?|段落|文档|资料)?\s*\d{1,3})*"
MARKER_RE = re.compile(rf"\s?(?:\[\s*({_NUM_LIST})\s*\]|【\s*({_NUM_LIST})\s*】|［\s*({_NUM_LIST})\s*］)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d{1,3}")
_RANGE_RE = re.compile(r"(\d{1,3})\s*(?:-|–|~|to)\s*(\d{1,3})", re.IGNORECASE)

# Phrases a model uses to say the passages do not answer the question.
_REFUSAL_PATTERNS = [
    r"\b(?:could|can)\s*not\s+(?:find|be\s+found|locate|determine|answer)",
    r"\bcan'?t\s+(?:find|answer|determine)",
    r"\bunable\s+to\s+(?:find|answer|determine|locate)",
    r"\b(?:do|does|did)\s*(?:n'?t|\s+not)\s+(?:contain|mention|provide|include|say|specify|state|have)",
    r"\bno\s+(?:information|mention|answer|relevant|data|details)\b",
    r"\bnot\s+(?:mentioned|found|provided|specified|stated|available|contained|covered)\b",
    r"\bi\s+(?:do\s*n'?t|don't)\s+know\b",
    r"\bthere\s+is\s+no\s+(?:information|answer|mention)",
    r"没有找到", r"未找到", r"找不到", r"无法(?:回答|确定|找到|得知|判断)", r"没有(?:提到|提及|相关|关于|给出|说明|包含|信息)",
    r"未(?:提到|提及|说明|给出|包含)", r"不知道", r"无相关", r"并未(?:提到|提及|说明)",
]
_REFUSAL_RE = re.compile("|".join(_REFUSAL_PATTERNS), re.IGNORECASE)


def refusal_text(language: str) -> str:
    """The fixed refusal answer in ``language`` ("zh" or anything else for English)."""
    return REFUSALS["zh" if language == "zh" else "en"]


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


def is_refusal(text: str, language: str | None = None) -> bool:
    """Whether a generated answer says the passages do not hold the answer.

    The fixed refusal sentence always counts. Other refusal phrasing counts when the answer
    cites nothing and is short, or when it opens with the refusal: a long answer that cites a
    passage and mentions in passing that a detail is "not mentioned" is still an answer.
    """
    stripped = text.strip()
    if not stripped:
        return True
    if any(r.rstrip(".。") in stripped for r in REFUSALS.values()):
        return True
    match = _REFUSAL_RE.search(stripped)
    if match is None:
        return False
    first_sentence = split_sentences(stripped)[0] if stripped else ""
    if match.start() < len(first_sentence):
        return True
    short = len(scoring_tokens(stripped)) <= (40 if has_cjk(stripped) else 30)
    return short and not parse_markers(stripped)


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


def build_citations(numbers: Sequence[int], passages: Sequence[SearchHit], answer: str = "",
                    max_chars: int = 300) -> list[Citation]:
    """One :class:`Citation` per cited number (1-based into ``passages``), in citation order."""
    citations: list[Citation] = []
    for n in numbers:
        if not 1 <= n <= len(passages):
            continue
        hit = passages[n - 1]
        chunk = hit.chunk
        citations.append(Citation(
            number=n,
            chunk_id=chunk.id,
            source=chunk.source,
            page=chunk.page,
            section=chunk.section,
            snippet=snippet_around(chunk.text, answer, max_chars),
            scores=dict(hit.scores),
        ))
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


def _support_units(text: str) -> set[str]:
    """Content units for support checks: English words without stop words, and Chinese
    character bigrams (single characters are too common to say anything)."""
    from rag.text import search_tokens

    units: set[str] = set()
    for token in search_tokens(text):
        if has_cjk(token):
            if len(token) >= 2:
                units.update(token[i:i + 2] for i in range(len(token) - 1))
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
    return bool(sentences) and all(s.rstrip("\"'”」)）").endswith(("?", "？")) for s in sentences)


def _bare(text: str) -> str:
    return "".join(text.split()).strip("#*").rstrip(".。!！:：").lower()


_MAX_HEADING = 80                  # characters


def _heading_texts(hit: SearchHit) -> list[str]:
    """The passage's section title, and its first line if that reads like a title (short, not
    ending a sentence)."""
    lines = hit.chunk.text.strip().splitlines()
    candidates = [hit.chunk.section or "", lines[0].strip() if lines else ""]
    return [h for h in candidates
            if h and len(h) <= _MAX_HEADING and not h.endswith((".", "。", "!", "！", "?", "？"))]


def _headings(titles: list[str]) -> set[str]:
    """``titles`` (from :func:`_heading_texts`) in the form :func:`_bare` compares."""
    return {_bare(h) for h in titles} - {""}


def names_only_a_heading(answer: str, passages: Sequence[SearchHit]) -> bool:
    """Whether the answer is nothing but a passage's heading (its section, or its first line):
    a small model sometimes copies the title it was shown ("城东社区图书馆借阅规定 [1]")
    instead of answering. Such an answer is fully "supported" and says nothing."""
    body = _bare(MARKER_RE.sub("", answer))
    return bool(body) and any(body in _headings(_heading_texts(hit)) for hit in passages)


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
    wanted = _support_units(body)
    if not wanted:
        return 0.0
    have: set[str] = set()
    known_figures: set[str] = set()
    for hit in passages:
        have |= _support_units(hit.chunk.text)
        known_figures |= figures_in(hit.chunk.text)
    if figures_in(body) - known_figures:
        return 0.0
    return len(wanted & have) / len(wanted)


def best_sentence(query: str, passages: Sequence[SearchHit]) -> tuple[int, str] | None:
    """The passage sentence that best answers ``query``, as (1-based passage number,
    sentence): the answer in quote mode, and when a generated one cannot be used.

    A sentence scores the share of the question's content words it holds plus its passage's
    relevance (the share the whole passage holds): a sentence about the question's subject
    usually leaves the subject's name to the sentences around it, which only the passage
    sees. ``None`` when no sentence holds any of the words."""
    from rag.retrieval import query_terms, relevance, terms_found

    terms = query_terms(query)
    best: tuple[float, int, str] | None = None
    for number, hit in enumerate(passages, start=1):
        prior = relevance(hit)
        titles = _heading_texts(hit)
        headings = _headings(titles)
        # Words of the passage's title name its topic, which most of its sentences are about
        # ("白尾雀鲷生活在水深多少的海域？"): the other words find the sentence that answers.
        # They still count, a little, so a passage about something else scores lower.
        topic = set(terms_found(terms, "\n".join(titles)))
        raw = split_sentences(hit.chunk.text)
        sentences = [" ".join(sentence.split()) for sentence in raw]
        for i, sentence in enumerate(sentences):
            if len(sentence) < 4 or _bare(sentence) in headings:
                continue                # a title names the topic, it does not answer
            found = terms_found(terms, sentence)
            if not found:
                continue
            score = sum(0.25 if t in topic else 1.0 for t in found) / len(terms)
            if sentence.endswith(("?", "？")):
                # A question in the passage is not its answer; in an FAQ (the question opens
                # its paragraph), what follows it is, and a question asked the way the FAQ
                # asks it finds it best.
                following = sentences[i + 1] if i + 1 < len(sentences) else ""
                opens = i == 0 or raw[i - 1].endswith("\n")
                if opens and following and not following.endswith(("?", "？")) and _bare(following) not in headings:
                    sentence = following
                else:
                    score *= 0.5
            score += prior
            if best is None or score > best[0]:
                best = (score, number, sentence)
    return None if best is None else (best[1], best[2])


_LEAD_IN_END = ("：", ":")
_NUMBERED_HEADING = re.compile(r"^\d+(?:\.\d+)*\.?\s*\S{1,30}$")     # "8.4 研究展望"
_MAX_LIST_ITEMS = 8
_MAX_LIST_CHARS = 400


def complete_lead_in(answer: str, hit: SearchHit) -> str | None:
    """``answer`` (without markers) completed with the list it announces, when it ends by
    announcing one ("以下是一些常见的应用场景：") and stops there: answers end at a blank
    line, and a list starts with one. The items are the paragraphs after the same lead-in in
    the passage, up to the next lead-in or numbered heading, joined with "；" (or "; ").
    ``None`` when the answer announces nothing or the passage holds no such list."""
    body = MARKER_RE.sub("", answer).rstrip()
    if not body.endswith(_LEAD_IN_END):
        return None
    lead = _support_units(split_sentences(body)[-1])
    paragraphs = [" ".join(p.split()) for p in hit.chunk.text.split("\n\n")]
    start: tuple[float, int] | None = None
    for i, paragraph in enumerate(paragraphs):
        if paragraph.endswith(_LEAD_IN_END) and lead:
            shared = len(lead & _support_units(paragraph)) / len(lead)
            if shared >= 0.5 and (start is None or shared > start[0]):
                start = (shared, i)
    if start is None:
        return None
    items: list[str] = []
    for paragraph in paragraphs[start[1] + 1:]:
        full = len(items) == _MAX_LIST_ITEMS or (bool(items) and sum(map(len, items)) + len(paragraph) > _MAX_LIST_CHARS)
        if not paragraph or paragraph.endswith(_LEAD_IN_END) or _NUMBERED_HEADING.match(paragraph) or full:
            break
        items.append(paragraph.rstrip("。；;.，, "))
    if not items:
        return None
    if has_cjk(body):
        return body + "；".join(items) + "。"
    return body + " " + "; ".join(items) + "."


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
        rest = text[last.end():]
        if rest and last.group(1).startswith(rest):     # the loop was cut in the middle of a unit
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
    if looped and len(kept) > 1 and kept[-1].rstrip()[-1:] not in ".!?。！？…]":
        kept.pop()
    return _DANGLING_ELLIPSIS.sub("", "".join(kept).strip())


# An ellipsis standing alone after a finished sentence (or a lead-in's colon): the model
# copying the "…" that marks text left out of a passage. It says nothing, so it goes (a "[1]"
# after it stays).
_DANGLING_ELLIPSIS = re.compile(r"(?<=[.!?。！？:：])\s*(?:…+|\.{3,})(?=\s*(?:\[\d+\]\s*)*$)")
