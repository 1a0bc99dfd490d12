"""Words as search and answer scoring count them, in English and Chinese.

Chinese has no spaces between words: search segments it with jieba, answer scoring takes each
character on its own, and English is lowercase words and numbers for both.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from rag.text.language import CJK_RANGES, CJK_RE, normalize

# A run of CJK ideographs, or a run of letters/digits (any script but CJK).
_TOKEN_RE = re.compile(f"[{CJK_RANGES}]+|[^\\W_{CJK_RANGES}]+", re.UNICODE)
_WORD_RUN_RE = re.compile(f"[^\\W_{CJK_RANGES}]+", re.UNICODE)

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


class _Jieba:
    """jieba loads a ~20 MB dictionary on first use; do that once, lazily, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._tagger: Any = None

    def cut(self, text: str) -> list[str]:
        return self.tokenizer().lcut_for_search(text)

    def tagger(self) -> Any:
        """jieba's part-of-speech tagger over the same dictionary, made on first use."""
        if self._tagger is None:
            tokenizer = self.tokenizer()
            with self._lock:
                if self._tagger is None:
                    import jieba.posseg

                    self._tagger = jieba.posseg.POSTokenizer(tokenizer)
        return self._tagger

    def known(self, word: str) -> bool:
        """Whether ``word`` is in jieba's dictionary (not a word its guesser made up)."""
        return bool(self.tokenizer().FREQ.get(word))

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    import logging

                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    tokenizer = jieba.Tokenizer()
                    tokenizer.initialize()
                    self._tokenizer = tokenizer
        return self._tokenizer


_jieba = _Jieba()


def known_word(word: str) -> bool:
    """Whether jieba's dictionary holds ``word``."""
    return _jieba.known(word)


# jieba's part-of-speech tags for proper nouns: a person, a place, an organisation, any other name.
_NAME_TAGS = ("nr", "ns", "nt", "nz")


def is_name_zh(word: str, text: str) -> bool:
    """Whether the Chinese ``word`` of ``text`` is a name: a word jieba's dictionary does not
    hold (a person, a species, a title it has never seen: "王永吉", "软汉鱼"), or one it tags as a
    proper noun in ``text`` ("檀香山"). Not a common word such as "开车" or "家用"."""
    if len(word) < 2 or not CJK_RE.search(word):
        return False
    if not known_word(word):
        return True
    return any(w == word and flag.startswith(_NAME_TAGS) for w, flag in tagged_words(text))


def tagged_words(text: str) -> list[tuple[str, str]]:
    """Chinese ``text`` cut into (word, part of speech) pairs (jieba's tags: "n" noun, "v"
    verb, "a" adjective, ...), with the same dictionary as search."""
    return [(pair.word, pair.flag) for pair in _jieba.tagger().cut(text)]


def search_tokens(text: str, stopwords: bool = True) -> list[str]:
    """Tokens for sparse (BM25) search.

    English: lowercase words and numbers. Chinese: jieba words in search mode (which also emits
    the shorter words inside long ones) plus single characters, so a query matches documents
    that segment a name differently.
    """
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(normalize(text)):
        piece = match.group(0)
        if CJK_RE.match(piece):
            words = _jieba.cut(piece)
            tokens.extend(w for w in words if not (stopwords and w in _STOPWORDS_ZH))
            if len(piece) > 1:
                tokens.extend(ch for ch in piece if not (stopwords and ch in _STOPWORDS_ZH))
        elif not (stopwords and piece in _STOPWORDS_EN):
            tokens.append(piece)
    return tokens


def plain_words(text: str) -> set[str]:
    """The non-Chinese words of ``text`` as :func:`search_tokens` writes them (normalised),
    without segmenting its Chinese (jieba is the slow part of tokenising)."""
    return set(_WORD_RUN_RE.findall(normalize(text)))


def scoring_tokens(text: str) -> list[str]:
    """Tokens for answer scoring: English words, and each Chinese character on its own."""
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(normalize(text)):
        piece = match.group(0)
        if CJK_RE.match(piece):
            tokens.extend(piece)
        else:
            tokens.append(piece)
    return tokens
