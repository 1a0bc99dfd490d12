"""Chinese text: hard-wrapped lines re-joined, and titles told from sentences by punctuation
and length."""

from __future__ import annotations

import re

from rag.text import CJK_RE, cjk_ratio

_SENTENCE_END = ("。", "！", "？", "；", "…", "!", "?", ".", "」", "”", "』", "）")


# Chinese lines at least this long that end mid-sentence are taken as hard-wrapped.
_MIN_WRAPPED_CJK_LINE = 20
# A "title" in Chinese longer than this is a sentence, whatever unstructured's heuristics say.
_MAX_CJK_TITLE = 40


# Marks after which a line break is a real paragraph end.
_CJK_LINE_END = "。！？；：…」』”）"
_CJK_SENTENCE_MARKS = re.compile(r"[。；！？，]")


def chinese_is_paragraph(text: str) -> bool:
    """A Chinese element is running text when it holds a sentence end or is long."""
    text = text.strip()
    return (
        bool(text)
        and not text.isnumeric()
        and (any(mark in text for mark in ("。", "！", "？", "；")) or text.endswith(_SENTENCE_END) or len(text) > 40)
    )


def chinese_is_title(text: str) -> bool:
    """A Chinese element is a heading when it is short and does not end a sentence."""
    text = text.strip()
    return 0 < len(text) <= 30 and not text.isnumeric() and not text.endswith(_SENTENCE_END + ("，", ",", "：", ":"))


def _rejoin_wrapped_cjk_lines(text: str) -> str:
    """Undo hard wrapping inside Chinese paragraphs.

    unstructured re-joins wrapped English lines with a space, but treats Chinese lines (which
    have no spaces) as separate short lines. A long Chinese line that ends mid-sentence and
    is followed by another Chinese line is joined to it with nothing between them.
    """
    lines = text.splitlines()
    if len(lines) < 2:
        return text
    out = [lines[0]]
    for line in lines[1:]:
        previous = out[-1].rstrip()
        if (
            len(previous) >= _MIN_WRAPPED_CJK_LINE
            and CJK_RE.match(previous[-1])
            and previous[-1] not in _CJK_LINE_END
            and CJK_RE.match(line.lstrip()[:1] or " ")
        ):
            out[-1] = previous + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


def _looks_like_cjk_sentence(text: str) -> bool:
    """A Chinese 'title' that is really a sentence: long, or punctuated like prose."""
    if cjk_ratio(text) < 0.5:
        return False
    # A trailing colon or comma marks a salutation or lead-in ("各位同事："), not a heading.
    return len(text) > _MAX_CJK_TITLE or text[-1] in "。：:，；" or bool(_CJK_SENTENCE_MARKS.search(text[:-1]))
