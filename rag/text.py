"""Language-aware text helpers shared by chunking, search and answer scoring.

Chinese has no spaces between words and ends sentences with full-width marks, so every step
that splits or tokenises text goes through here rather than ``str.split``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable

# CJK Unified Ideographs (+ extension A and compatibility ideographs).
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
_CJK_RUN_RE = re.compile(f"[{_CJK}]+")
# A run of CJK ideographs, or a run of letters/digits (any script but CJK).
_TOKEN_RE = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+", re.UNICODE)

# Sentence ends: Chinese full-width marks end a sentence wherever they stand (closing quotes or
# brackets may follow); Western marks need following white space so "3.14" and "e.g." mid-line
# stay whole.
_SENTENCE_END_RE = re.compile(
    r"(?:[。！？；…]+|\.{3,}|[!?;])[”’」』）)\]\"']*"
    r"|(?<=[^\s.])\.[”’\"')\]]*(?=\s)"
    r"|\n\s*\n"
)

_STOPWORDS_EN = frozenset(
    """a an the and or but if of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once
    here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now is are was were be been
    being have has had having do does did doing i me my we our you your he him his she her it
    its they them their what which who whom this that these those am""".split()
)
_STOPWORDS_ZH = frozenset(
    "的 了 和 是 在 就 都 而 及 与 着 或 一个 没有 我们 你们 他们 它们 这 那 之 以 其 于 为 也 被 把".split()
)


def cjk_ratio(text: str) -> float:
    """Share of letters in ``text`` that are CJK ideographs (0.0 for text without letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if _CJK_RE.match(ch)) / len(letters)


def detect_language(text: str) -> str:
    """``"zh"`` when Chinese characters make up a fair share of the letters, else ``"en"``."""
    return "zh" if cjk_ratio(text) >= 0.2 else "en"


def split_sentences(text: str) -> list[str]:
    """Split English and Chinese text into sentences, keeping each sentence's end mark.

    Joining the result gives back ``text`` exactly (white space stays with the sentence before
    it), so callers can keep character offsets.
    """
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END_RE.finditer(text):
        end = match.end()
        # Let the white space after the mark belong to the sentence it closes.
        while end < len(text) and text[end] in " \t\r\n\u3000":
            end += 1
        if end > start:
            pieces.append(text[start:end])
            start = end
    if start < len(text):
        pieces.append(text[start:])
    return [p for p in pieces if p]


class _Jieba:
    """jieba loads a ~20 MB dictionary on first use; do that once, lazily, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer = None

    def cut(self, text: str) -> list[str]:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    import logging

                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    tokenizer = jieba.Tokenizer()
                    tokenizer.initialize()
                    self._tokenizer = tokenizer
        return self._tokenizer.lcut_for_search(text)


_jieba = _Jieba()


def normalize(text: str) -> str:
    """NFKC-fold (full-width letters and digits to ASCII) and lowercase."""
    return unicodedata.normalize("NFKC", text).lower()


def search_tokens(text: str, stopwords: bool = True) -> list[str]:
    """Tokens for sparse (BM25) search.

    English: lowercase words and numbers. Chinese: jieba words in search mode (which also emits
    the shorter words inside long ones) plus single characters, so a query matches documents
    that segment a name differently.
    """
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(normalize(text)):
        piece = match.group(0)
        if _CJK_RE.match(piece):
            words = _jieba.cut(piece)
            tokens.extend(w for w in words if not (stopwords and w in _STOPWORDS_ZH))
            if len(piece) > 1:
                tokens.extend(ch for ch in piece if not (stopwords and ch in _STOPWORDS_ZH))
        elif not (stopwords and piece in _STOPWORDS_EN):
            tokens.append(piece)
    return tokens


_WORD_RUN_RE = re.compile(f"[^\\W_{_CJK}]+", re.UNICODE)


def plain_words(text: str) -> set[str]:
    """The non-Chinese words of ``text`` as :func:`search_tokens` writes them (normalised),
    without segmenting its Chinese (jieba is the slow part of tokenising)."""
    return set(_WORD_RUN_RE.findall(normalize(text)))


def scoring_tokens(text: str) -> list[str]:
    """Tokens for answer scoring: English words, and each Chinese character on its own."""
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(normalize(text)):
        piece = match.group(0)
        if _CJK_RE.match(piece):
            tokens.extend(piece)
        else:
            tokens.append(piece)
    return tokens


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def join_nonempty(parts: Iterable[str | None], sep: str = " ") -> str:
    return sep.join(p for p in parts if p)
