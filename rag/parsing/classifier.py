"""Title-or-paragraph tests that stand in for unstructured's where spaCy is not needed."""

from __future__ import annotations

import os
import re
from typing import Any

from rag.parsing.chinese import chinese_is_paragraph, chinese_is_title
from rag.parsing.large_text import _LONG_PARAGRAPH
from rag.text import cjk_ratio, split_sentences

# Modules that import unstructured's element-type tests by name.
_CLASSIFIER_USERS = (
    "unstructured.partition.text",
    "unstructured.partition.html.parser",
    "unstructured.partition.docx",
    "unstructured.partition.pptx",
)
# Of those, the ones where the test only picks NarrativeText or UncategorizedText for text the
# markup already calls a paragraph.
_MARKUP_CLASSIFIER_USERS = ("unstructured.partition.html.parser",)


def _classify_without_spacy() -> None:
    """Tell titles from paragraphs without running unstructured's spaCy pipeline where its
    verdict is known in advance, or is noise.

    unstructured decides "title or paragraph" with sentence counts and verb tags from an
    English spaCy pipeline, whatever the language; that is most of the parsing time.
    - Text that is mostly Chinese: punctuation and length decide instead (the English tagger's
      verdicts on Chinese are noise).
    - English text of two or more sentences of three words or more: unstructured skips its
      capital-letter and verb tests for such text, so only its non-letter ratio is left to check;
      the sentences are counted here, without spaCy.
    - Paragraphs of HTML and Markdown: see ``markup_paragraph_is_narrative`` below.
    Everything else (short English text of plain-text files, Word and PowerPoint) goes to
    unstructured, whose verb test decides there whether a line is a heading.
    """
    import importlib

    from unstructured.partition import text_type

    tests = _SpacyFreeTests(text_type)
    for name in _CLASSIFIER_USERS:
        module: Any = importlib.import_module(name)
        narrative = (
            tests.markup_paragraph_is_narrative
            if name in _MARKUP_CLASSIFIER_USERS
            else tests.is_possible_narrative_text
        )
        if getattr(module, "is_possible_narrative_text", None) is tests.original_narrative:
            module.is_possible_narrative_text = narrative
        if getattr(module, "is_possible_title", None) is tests.original_title:
            module.is_possible_title = tests.is_possible_title


class _SpacyFreeTests:
    """unstructured's element-type tests, answered here where spaCy is not needed and by
    unstructured's own tests (kept from ``text_type``) otherwise."""

    def __init__(self, text_type: Any) -> None:
        self.text_type = text_type
        self.original_narrative = text_type.is_possible_narrative_text
        self.original_title = text_type.is_possible_title

    def is_possible_narrative_text(self, text: str, *args: Any, **kwargs: Any) -> bool:
        """Whether ``text`` is running text rather than a heading or a stray line."""
        if len(text) > _LONG_PARAGRAPH and not kwargs.get("language_checks"):
            # Never a heading; spaCy over it would take seconds per 100 KB for a verdict that
            # only picks NarrativeText or UncategorizedText.
            return not text.isnumeric()
        if cjk_ratio(text) >= 0.5:
            return chinese_is_paragraph(text)
        if not kwargs.get("language_checks") and has_sentences(text, 2):
            threshold = _non_alpha_threshold(kwargs)
            return not text.isnumeric() and not self.text_type.under_non_alpha_ratio(text, threshold=threshold)
        return self.original_narrative(text, *args, **kwargs)

    def is_possible_title(self, text: str, *args: Any, **kwargs: Any) -> bool:
        """Whether ``text`` may be a heading."""
        if len(text) > _LONG_PARAGRAPH:
            return False
        if cjk_ratio(text) >= 0.5:
            return chinese_is_title(text)
        return self.original_title(text, *args, **kwargs)

    def markup_paragraph_is_narrative(self, text: str, *args: Any, **kwargs: Any) -> bool:
        """Whether a paragraph of HTML or Markdown is NarrativeText rather than UncategorizedText."""
        # In HTML (and Markdown, which unstructured turns into HTML) headings come from the
        # markup; this test only labels a paragraph NarrativeText or UncategorizedText, which
        # chunking treats alike. So English text skips the verb tagger: a paragraph is narrative
        # unless it is numeric, mostly non-letters or all capitals.
        if cjk_ratio(text) >= 0.5 or kwargs.get("language_checks"):
            return self.is_possible_narrative_text(text, *args, **kwargs)
        threshold = _non_alpha_threshold(kwargs)
        return (
            bool(text.strip())
            and not text.isnumeric()
            and not text.isupper()
            and not self.text_type.under_non_alpha_ratio(text, threshold=threshold)
        )


def _non_alpha_threshold(kwargs: dict[str, Any]) -> float:
    """The share of non-letters above which unstructured calls text not narrative, as it reads it."""
    return float(
        os.environ.get("UNSTRUCTURED_NARRATIVE_TEXT_NON_ALPHA_THRESHOLD", kwargs.get("non_alpha_threshold", 0.5))
    )


_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def has_sentences(text: str, count: int, min_words: int = 3) -> bool:
    """Whether ``text`` holds at least ``count`` sentences of ``min_words`` words or more."""
    found = 0
    for sentence in split_sentences(text):
        if len(_WORD_RE.findall(sentence)) >= min_words:
            found += 1
            if found >= count:
                return True
    return False
