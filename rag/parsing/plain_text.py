"""Plain-text (.txt) files: read as Markdown when written in it, else through
``partition_text`` with its short English paragraphs tagged in one batch."""

from __future__ import annotations

from pathlib import Path

from rag.documents import Element
from rag.parsing.chinese import _rejoin_wrapped_cjk_lines
from rag.parsing.classifier import has_sentences
from rag.parsing.decoding import _read_text
from rag.parsing.elements import _to_elements
from rag.parsing.large_text import _LARGE_TEXT_CHARS, _LONG_PARAGRAPH, _cut_huge_lines, _plain_paragraphs
from rag.parsing.markup import _markdown_elements, looks_like_markdown
from rag.parsing.unstructured_nlp import _tagged_in_one_batch
from rag.text import cjk_ratio


def _parse_txt(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.text import partition_text

    text = _cut_huge_lines(_read_text(path, data))
    if len(text) > _LARGE_TEXT_CHARS:
        return _plain_paragraphs(text)
    if looks_like_markdown(text):
        return _markdown_elements(text)
    text = _rejoin_wrapped_cjk_lines(text)
    with _tagged_in_one_batch(_short_english_paragraphs(text)):
        return _to_elements(partition_text(text=text, languages=[""]))


def _short_english_paragraphs(text: str) -> list[str]:
    """The paragraphs of a plain-text file, split as ``partition_text`` splits them, that its
    classifier will run spaCy on: English, not a list item, fewer than two sentences."""
    from unstructured.cleaners.core import auto_paragraph_grouper
    from unstructured.partition.text import _split_by_paragraph
    from unstructured.partition.text_type import is_bulleted_text

    found = []
    for paragraph in _split_by_paragraph(auto_paragraph_grouper(text)):
        paragraph = paragraph.strip()
        if (
            paragraph
            and len(paragraph) <= _LONG_PARAGRAPH
            and cjk_ratio(paragraph) < 0.5
            and not is_bulleted_text(paragraph)
            and not has_sentences(paragraph, 2)
        ):
            found.append(paragraph)
    return found
