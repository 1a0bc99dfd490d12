"""Quoting the passages: the sentence that best answers a question (quote mode, the evidence
under a short answer, and the fallback when a generated answer cannot be used), a list a
lead-in announces, and telling a passage's title from its content."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answering.citations import MARKER_RE, support_units
from rag.answering.injection import Screened
from rag.documents import SearchHit
from rag.text.language import has_cjk
from rag.text.lexical import query_terms, relevance, terms_found
from rag.text.questions import ASKS_NUMBER, HAS_NUMBER
from rag.text.sentences import QUESTION_MARKS, SENTENCE_ENDS, split_sentences


def _bare(text: str) -> str:
    return "".join(text.split()).strip("#*").rstrip(".。!！:：").lower()


_MAX_HEADING = 80  # characters


def _heading_texts(hit: SearchHit) -> list[str]:
    """The passage's section title, and its first line if that reads like a title (short, not
    ending a sentence)."""
    lines = hit.chunk.text.strip().splitlines()
    candidates = [hit.chunk.section or "", lines[0].strip() if lines else ""]
    return [h for h in candidates if h and len(h) <= _MAX_HEADING and not h.endswith(tuple(SENTENCE_ENDS))]


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
    ``None`` when no sentence holds any of the question's words (:func:`ranked_sentences`)."""
    ranked = ranked_sentences(query, passages, 1)
    return ranked[0] if ranked else None


def ranked_sentences(query: str, passages: Sequence[SearchHit], limit: int = 3) -> list[tuple[int, str]]:
    """The ``limit`` passage sentences that best answer ``query``, best first, as (1-based
    passage number, sentence) (:func:`ranked_with_shares`)."""
    return [(number, sentence) for number, sentence, _ in ranked_with_shares(query, passages, limit)]


def ranked_with_shares(query: str, passages: Sequence[SearchHit], limit: int = 3) -> list[tuple[int, str, float]]:
    """The ``limit`` passage sentences that best answer ``query``, best first, as (1-based
    passage number, sentence, share of the question's words that picked it; for an FAQ's
    answer, the share its question holds).

    A sentence scores the weighted share of the question's content words it holds plus its
    passage's relevance (the share the whole passage holds): a sentence about the question's
    subject usually leaves the subject's name to the sentences around it, which only the
    passage sees. In a Chinese question a word weighs by how few of the passages' sentences
    hold it (:func:`term_weights`); English words weigh the same. Sentences that hold none of
    the words are left out, and so are instructions planted in a passage
    (:mod:`rag.answering.injection`): they are no evidence of anything."""
    terms = query_terms(query)
    wants_number = bool(ASKS_NUMBER.search(query))
    # Chinese questions reworded from their passage share few of jieba's words but many
    # character pairs ("一次最多可以借几本书" / "每人每次最多可借图书五册"): those count too.
    pairs = _char_pairs(query) if has_cjk(query) else set()
    scored: list[tuple[float, int, int, str, float]] = []
    read = [reading_units(hit.chunk.text) for hit in passages]
    if has_cjk(query):
        weight = term_weights(terms, [u.text for units in read for u in units])
    else:
        weight = dict.fromkeys(terms, 1.0)
    total = sum(weight.values())
    for number, (hit, units) in enumerate(zip(passages, read), start=1):
        prior = relevance(hit)
        titles = _heading_texts(hit)
        headings = _headings(titles)
        # Words of the passage's title name its topic, which most of its sentences are about
        # ("白尾雀鲷生活在水深多少的海域？"): the other words find the sentence that answers.
        # They still count, a little, so a passage about something else scores lower.
        topic = set(terms_found(terms, "\n".join(titles)))
        raw = [u.text for u in units]
        sentences = [" ".join(sentence.split()) for sentence in raw]
        screened = Screened(hit.chunk.text)
        for i, sentence in enumerate(sentences):
            if len(sentence) < 4 or _bare(sentence) in headings:
                continue  # a title names the topic, it does not answer
            if screened.planted(sentence):
                continue
            # A table row is read with its header: "Accuracy" names the column of "86.7".
            found = terms_found(terms, f"{units[i].header}\n{sentence}" if units[i].header else sentence)
            if not found and not (pairs and pairs & _char_pairs(sentence)):
                continue
            score = sum(weight[t] * (0.25 if t in topic else 1.0) for t in found) / total if terms else 0.0
            if pairs:
                score += CHAR_PAIR_WEIGHT * len(pairs & _char_pairs(sentence)) / len(pairs)
            if wants_number and not HAS_NUMBER.search(sentence):
                score *= 0.6  # "How many ...?" is answered by a sentence with a number in it
            if units[i].header and _names_the_row(sentence, query):
                score += 1.0  # "How many parameters does Heron-base have?": the row it names
            if sentence.endswith(tuple(QUESTION_MARKS)):
                # A question in the passage is not its answer; in an FAQ (the question opens
                # its paragraph), what follows it is, and a question asked the way the FAQ
                # asks it finds it best.
                following = sentences[i + 1] if i + 1 < len(sentences) else ""
                opens = units[i].opens
                if (
                    opens
                    and following
                    and not following.endswith(tuple(QUESTION_MARKS))
                    and _bare(following) not in headings
                    and not screened.planted(following)
                ):
                    sentence = following
                else:
                    score *= 0.5
            score += prior
            scored.append((score, -len(scored), number, sentence, len(found) / len(terms) if terms else 0.0))
    scored.sort(reverse=True)  # best first; of equal scores, the earlier sentence
    out: list[tuple[int, str, float]] = []
    for _, _, number, sentence, share in scored:
        if all((number, sentence) != (n, t) for n, t, _ in out):
            out.append((number, sentence, share))
        if len(out) >= limit:
            break
    return out


def term_weights(terms: Sequence[str], sentences: Sequence[str]) -> dict[str, float]:
    """How much each of the question's ``terms`` says about which of ``sentences`` answers:
    its inverse sentence frequency among them (the BM25 form, ``log(1 + (n - df + 0.5) /
    (df + 0.5))``). A word most sentences hold (the passages' subject) picks none of them
    out; the rare one (a date, a second name) does. Over 800 CMRC tuning questions the gold
    answer's sentence came first for 599, against 590 with equal weights, and the bar's 500
    gained 1.2 F1. English answers lost 0.5 F1 with it over XQuAD's 1,190 (0.4 on the tuning
    documents), though its sentence came first more often (496 of 632 against 490), so
    :func:`ranked_with_shares` weighs English words the same."""
    n = len(sentences)
    df = dict.fromkeys(terms, 0)
    for sentence in sentences:
        for term in terms_found(terms, sentence):
            df[term] += 1
    return {t: math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}


@dataclass
class Unit:
    """A piece of a passage the reader can answer from: a sentence of prose, or one line of
    structured text (a table row, a ``key: value`` or ``key=value`` line, a line of code, a
    list item or a reference entry), with the header row above a table row."""

    text: str
    header: str | None = None
    opens: bool = False  # it begins a paragraph (or is a line of its own)


_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_KEY_VALUE = re.compile(r"^\s*(?:[-*+•]\s+)?[^\s:：=|][^:：=|]{0,60}?\s*(?:[:：](?!//)|={1,2})\s*\S")
_CODE = re.compile(r"[=(){}\[\];]|^\s*(?:def|class|import|from|return|for|if|while|let|const|var)\b|^\s*[$>#]\s")
_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)、]|\[\d{1,3}\]|（\d{1,3}）|\(\d{1,3}\))\s*\S")
# A reference entry: a year, and initials, "et al." or a quoted title ("Smith, J. "Title". 2021.").
_REFERENCE = re.compile(r"(?=.*\b(?:1[5-9]|20)\d\d\b)(?=.*(?:\b[A-Z]\.\s|et al\.|\"[^\"]{4,}\"|“[^”]{4,}”|《[^》]+》))")
_MAX_LINE = 240  # a longer line is prose, split into sentences


def _is_row(line: str) -> bool:
    return line.count("|") >= 2 or (line.count("|") == 1 and not line.strip().startswith("|") and "||" not in line)


def _structured(line: str) -> bool:
    stripped = line.strip()
    if stripped.endswith(tuple(QUESTION_MARKS)):
        return False  # a question (an FAQ's) is prose
    return (
        bool(stripped)
        and len(stripped) <= _MAX_LINE
        and bool(_is_row(stripped) or _KEY_VALUE.match(stripped) or _CODE.search(stripped) or _ITEM.match(stripped))
    )


def reading_units(text: str) -> list[Unit]:
    """``text`` cut into :class:`Unit` s: paragraphs of prose into sentences (as
    :func:`~rag.text.split_sentences` does), and paragraphs whose lines are mostly structured
    line by line, so that one value can be found and quoted on its own."""
    units: list[Unit] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        structured = sum(1 for line in lines if _structured(line))
        if len(lines) >= 2 and structured * 2 >= len(lines):
            rows = [line for line in lines if _is_row(line.strip())]
            header = rows[0].strip() if len(rows) >= 2 else None
            for line in lines:
                stripped = line.strip()
                if _TABLE_RULE.match(stripped) or (header is not None and stripped == header):
                    continue
                units.append(Unit(stripped, header if header and _is_row(stripped) else None, True))
            continue
        if len(lines) == 1 and _REFERENCE.search(lines[0]) and len(lines[0].strip()) <= _MAX_LINE:
            units.append(Unit(lines[0].strip(), None, True))  # initials and titles are no sentence ends
            continue
        for j, sentence in enumerate(split_sentences(block)):
            units.append(Unit(sentence, None, j == 0))
    return units


CHAR_PAIR_WEIGHT = 0.5
_QUESTION_CHARS = set("什么多少哪里儿个些天年位几为怎样如何是否吗呢谁请问")


def _char_pairs(text: str) -> set[str]:
    """Pairs of neighbouring Chinese characters, without those made of question words."""
    chars = [ch for ch in text if "\u3400" <= ch <= "\u9fff"]
    return {a + b for a, b in zip(chars, chars[1:]) if not (a in _QUESTION_CHARS and b in _QUESTION_CHARS)}


def _names_the_row(row: str, query: str) -> bool:
    """Whether the question names the table row by its first cell."""
    first = row.strip().strip("|").split("|")[0].strip().lower()
    return len(first) >= 2 and first in query.lower()


def table_header(passage: str, start: int) -> str | None:
    """The header row of the table whose row starts at ``start`` in ``passage``, if it is one."""
    for unit in reading_units(passage):
        if unit.header and passage.find(unit.text, max(0, start - 2)) == start:
            return unit.header
    return None


_LEAD_IN_END = ("：", ":")
_NUMBERED_HEADING = re.compile(r"^\d+(?:\.\d+)*\.?\s*\S{1,30}$")  # "8.4 研究展望"
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
    screened = Screened(hit.chunk.text)
    for paragraph in paragraphs[start[1] + 1 :]:
        full = len(items) == _MAX_LIST_ITEMS or (
            bool(items) and sum(map(len, items)) + len(paragraph) > _MAX_LIST_CHARS
        )
        if not paragraph or paragraph.endswith(_LEAD_IN_END) or _NUMBERED_HEADING.match(paragraph) or full:
            break
        if screened.planted(paragraph):
            continue  # an instruction planted in the list is no item of it
        items.append(paragraph.rstrip("。；;.，, "))
    if not items:
        return None
    if has_cjk(body):
        return body + "；".join(items) + "。"
    return body + " " + "; ".join(items) + "."
