"""Old import path: lexical matching now lives in :mod:`rag.text.lexical`. Kept so code written
against ``rag.lexical`` keeps working."""

from rag.text.language import has_cjk, normalize  # noqa: F401 - re-exported
from rag.text.lexical import _QUESTION_WORDS, query_terms, term_overlap, terms_found  # noqa: F401
from rag.text.tokens import plain_words, search_tokens  # noqa: F401
