"""Markdown and HTML files, whose markup says what a heading is; and Markdown detection for
plain-text files."""

from __future__ import annotations

import re
from pathlib import Path

from rag.documents import Element
from rag.parsing.decoding import _read_text
from rag.parsing.elements import _to_elements
from rag.parsing.large_text import _LARGE_TEXT_CHARS, _cut_huge_lines, _plain_paragraphs
from rag.text import CJK_RE


def _parse_md(path: Path, data: bytes) -> list[Element]:
    text = _cut_huge_lines(_read_text(path, data))
    if len(text) > _LARGE_TEXT_CHARS:
        return _plain_paragraphs(text)
    return _markdown_elements(text)


def _markdown_elements(text: str) -> list[Element]:
    from unstructured.partition.md import partition_md

    return _to_elements(partition_md(text=_join_wrapped_cjk_markdown(text), languages=[""]))


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.M)
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.M)
_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)[^\n]+?(?<=\S)\1")
_MD_LINK = re.compile(r"\[[^\]\n]+\]\([^)\s]+\)")
_MD_TABLE_RULE = re.compile(r"^ {0,3}\|?\s*:?-{3,}:?\s*\|", re.M)


def looks_like_markdown(text: str) -> bool:
    """Whether a plain-text file is written in Markdown: two or more ``#`` headings, or one
    and two other marks (bold, links, code fences, table rules), or four other marks. A
    numbered or dashed list alone does not count: plain text has those too."""
    sample = text[:200_000]
    headings = len(_MD_HEADING.findall(sample))
    if headings >= 2:
        return True
    marks = (
        len(_MD_FENCE.findall(sample)) // 2
        + len(_MD_TABLE_RULE.findall(sample))
        + min(len(_MD_BOLD.findall(sample)), 3)
        + min(len(_MD_LINK.findall(sample)), 3)
    )
    return marks >= (2 if headings else 4)


# Lines of Markdown that no paragraph continues: headings, table rows, fences, quotes, rules,
# indented code.
_MD_BLOCK_LINE = re.compile(r"^(?: {0,3}(?:#|\||```|~~~|>|[-*_]{3,}\s*$)| {4}|\t)")


def _join_wrapped_cjk_markdown(text: str) -> str:
    """Join a Markdown paragraph's lines where one ends and the next starts with a Chinese
    character: Markdown turns that line break into a space, which does not belong inside
    Chinese text ("绵延一万多 里"). Code blocks, headings and table rows are left alone."""
    out: list[str] = []
    in_code = False
    for line in text.splitlines():
        fence = _MD_FENCE.match(line) is not None
        previous = out[-1] if out else ""
        if (
            not in_code
            and not fence
            and previous.strip()
            and not _MD_BLOCK_LINE.match(previous)
            and CJK_RE.match(previous.rstrip()[-1])
            and CJK_RE.match(line.lstrip()[:1] or " ")
        ):
            out[-1] = previous.rstrip() + line.lstrip()
            continue
        if fence:
            in_code = not in_code
        out.append(line)
    return "\n".join(out)


def _parse_html(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.html import partition_html

    return _to_elements(partition_html(text=_read_text(path, data), languages=[""]))
