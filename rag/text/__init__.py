"""Language-aware text helpers shared by chunking, search and answer scoring.

Chinese has no spaces between words and ends sentences with full-width marks, so every step
that splits or tokenises text goes through here rather than ``str.split``:

* :mod:`rag.text.language`: which language a text is in, normalisation;
* :mod:`rag.text.sentences`: the marks that end a sentence, and sentence splitting;
* :mod:`rag.text.tokens`: words for search (BM25) and for answer scoring;
* :mod:`rag.text.lexical`: a question's content words, how many of them a text holds, and a
  passage's relevance on a 0..1 scale;
* :mod:`rag.text.model_tokens`: counting and cutting by a model's own tokenizer.

The names are re-exported here, so ``from rag.text import split_sentences`` keeps working.
"""

from rag.text.language import CJK_RANGES, CJK_RE, cjk_ratio, detect_language, has_cjk, join_nonempty, normalize
from rag.text.lexical import query_terms, relevance, shingles, sigmoid, term_overlap, terms_found
from rag.text.model_tokens import share_of, split_by_counting, unknown_ratio
from rag.text.sentences import (
    _SENTENCE_END_RE,  # noqa: F401  (the old module's private name)
    CJK_SENTENCE_ENDS,
    LATIN_SENTENCE_ENDS,
    SENTENCE_END_CLASS,
    SENTENCE_ENDS,
    split_sentences,
)
from rag.text.tokens import (  # noqa: F401  (the old module's private names)
    _STOPWORDS_EN,
    _STOPWORDS_ZH,
    _TOKEN_RE,
    _WORD_RUN_RE,
    _Jieba,
    _jieba,
    plain_words,
    scoring_tokens,
    search_tokens,
)

# The old module's private names for the CJK character classes.
_CJK = CJK_RANGES
_CJK_RE = CJK_RE

__all__ = [
    "CJK_RANGES",
    "CJK_RE",
    "CJK_SENTENCE_ENDS",
    "LATIN_SENTENCE_ENDS",
    "SENTENCE_ENDS",
    "SENTENCE_END_CLASS",
    "cjk_ratio",
    "detect_language",
    "has_cjk",
    "join_nonempty",
    "normalize",
    "plain_words",
    "query_terms",
    "relevance",
    "scoring_tokens",
    "search_tokens",
    "shingles",
    "share_of",
    "sigmoid",
    "split_by_counting",
    "split_sentences",
    "term_overlap",
    "terms_found",
    "unknown_ratio",
]
