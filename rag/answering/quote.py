"""Quoting the passages: the sentence that best answers a question (quote mode, the evidence
under a short answer, and the fallback when a generated answer cannot be used), a list a
lead-in announces, and telling a passage's title from its content."""

from __future__ import annotations

import re
from typing import Sequence

from rag.answering.citations import MARKER_RE, support_units
from rag.documents import SearchHit
from rag.text import has_cjk, split_sentences

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
    lead = support_units(split_sentences(body)[-1])
    paragraphs = [" ".join(p.split()) for p in hit.chunk.text.split("\n\n")]
    start: tuple[float, int] | None = None
    for i, paragraph in enumerate(paragraphs):
        if paragraph.endswith(_LEAD_IN_END) and lead:
            shared = len(lead & support_units(paragraph)) / len(lead)
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


