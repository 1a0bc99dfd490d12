"""Lexical matching: a question's content words, how many of them a text holds, and how
relevant a retrieved passage is on a 0..1 scale.

Used wherever the words themselves matter: the relevance gate (``scores["overlap"]``), how far
fusion trusts BM25 for a question (:func:`rag.index.sparse_weight`), sentence selection and
quoting, near-duplicate detection. Chinese words are matched as substrings (see
:func:`terms_found`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.text.language import has_cjk, normalize
from rag.text.tokens import known_word, plain_words, search_tokens

if TYPE_CHECKING:
    from rag.documents import SearchHit

# Question words carry no topic: leaving them out of the overlap keeps an answerable question
# ("...是多少？") from looking less relevant than it is.
_QUESTION_WORDS = frozenset(
    (
        "什么 多少 哪里 哪儿 哪个 哪些 哪天 哪年 哪位 几 几个 几本 为什么 怎么 怎样 如何 是否 "
        "吗 呢 谁 请问 应该 可以 需要 是 有"
    ).split()
    + "many much long often does did do whose kind type".split()
)


def query_terms(query: str) -> list[str]:
    """The query's content words: BM25 tokens without stop words and question words; for
    Chinese, jieba's words rather than single characters (a single character matches almost
    any Chinese passage)."""
    tokens = [_unglued(t) for t in dict.fromkeys(search_tokens(query)) if t not in _QUESTION_WORDS]
    words = [t for t in tokens if not (has_cjk(t) and len(t) == 1)]
    return words or tokens


# Function characters jieba's guesser glues onto a name it does not know ("王沈是哪里人？" ->
# "王沈是"), so the passage's "王沈，字处道" would hold none of the question's words.
_GLUED = "是的了在和与"


def _unglued(term: str) -> str:
    """``term`` without a function character glued to its end, when jieba guessed the word
    (it is not in its dictionary)."""
    if len(term) < 3 or term[-1] not in _GLUED or not has_cjk(term):
        return term
    return term if known_word(term) else term[:-1]


def terms_found(terms: Sequence[str], text: str) -> list[str]:
    """The ``terms`` that occur in ``text``. Chinese words are matched as substrings, so a
    different word segmentation of the passage does not hide them; other words as words."""
    normalized = normalize(text)
    words: set[str] | None = None
    found = []
    for term in terms:
        if has_cjk(term):
            if term in normalized:
                found.append(term)
            continue
        if words is None:
            words = plain_words(text)
        if term in words:
            found.append(term)
    return found


def mentions(text: str, name: str) -> bool:
    """Whether ``text`` names ``name``: all its words (most, for a long name)."""
    words = query_terms(name)
    if not words:
        return name.lower() in text.lower()
    found = terms_found(words, text)
    return len(found) >= max(1, round(0.6 * len(words)))


def hit_mentions(hit: SearchHit, name: str) -> bool:
    """Whether a passage names ``name`` (:func:`mentions`), in its section title or its text."""
    return mentions(f"{hit.chunk.section or ''} {hit.chunk.text}", name)


def term_overlap(terms: Sequence[str], text: str) -> float:
    """Share of ``terms`` found in ``text`` (see :func:`terms_found`)."""
    return len(terms_found(terms, text)) / len(terms) if terms else 0.0


def sigmoid(x: float) -> float:
    """Cross-encoder logits as a 0..1 relevance."""
    return 1.0 / (1.0 + math.exp(-x)) if x > -50 else 0.0


def relevance(hit: SearchHit) -> float:
    """How relevant a hit is on a 0..1 scale: the reranker's probability when the hit was
    reranked, else the share of the query's content words the passage contains."""
    if "rerank" in hit.scores:
        return sigmoid(hit.scores["rerank"])
    return float(hit.scores.get("overlap", 0.0))


_SPACE_RE = re.compile(r"\s+")


def shingles(text: str, size: int = 5) -> set[str]:
    """Overlapping character ``size``-grams of the normalised text (white space collapsed)."""
    flat = _SPACE_RE.sub(" ", normalize(text)).strip()
    if len(flat) <= size:
        return {flat} if flat else set()
    return {flat[i : i + size] for i in range(len(flat) - size + 1)}
