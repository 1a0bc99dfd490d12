"""Sentence ends, and splitting English and Chinese text into sentences.

The one list of the marks that end a sentence lives here; modules that ask whether a text ends
a sentence, or that stop a pattern at a sentence's end, build on it rather than spell their own.
"""

from __future__ import annotations

import re

# The marks that end a sentence: Western, and Chinese full-width.
LATIN_SENTENCE_ENDS = ".!?"
CJK_SENTENCE_ENDS = "。！？"
SENTENCE_ENDS = LATIN_SENTENCE_ENDS + CJK_SENTENCE_ENDS
# SENTENCE_ENDS as a regular-expression character class: "[.!?。！？]" (none of the marks needs
# escaping inside brackets, so they can be spliced into a class of one's own as they are).
SENTENCE_END_CLASS = f"[{SENTENCE_ENDS}]"
# The marks that end a question.
QUESTION_MARKS = "?？"

# Where split_sentences cuts. Chinese full-width marks (and the semicolons and ellipses that also
# close a clause there) end a sentence wherever they stand (closing quotes or brackets may
# follow); Western marks need following white space so "3.14" and "e.g." mid-line stay whole.
_SENTENCE_END_RE = re.compile(
    rf"(?:[{CJK_SENTENCE_ENDS}；…]+|\.{{3,}}|[!?;])[”’」』）)\]\"']*"
    r"|(?<=[^\s.])\.[”’\"')\]]*(?=\s)"
    r"|\n\s*\n"
)


# Brackets and quotes a sentence end inside does not end the sentence: "《大小姐×执事！》是…",
# "（Cathedral Church of St. Paul）是…", "（泰文：ปทุมธานี；英文：…）". Only when the closing mark
# follows within _BRACKET_REACH characters, in the same paragraph: an opening bracket that is
# never closed does not join the rest of the text into one sentence.
_BRACKETS = {"（": "）", "(": ")", "《": "》", "「": "」", "『": "』", "“": "”", "[": "]"}
_BRACKET_REACH = 80
# An initial ("J. K. Rowling", "英国作家J. K. 罗琳", "John F. Kennedy"): one capital letter that
# is no part of a word, before its full stop and another capital.
_INITIAL_RE = re.compile(r"(?<![A-Za-z])[A-Z]\.\s+(?=[A-Z\u3400-\u9fff])")


def _inside_brackets(text: str, start: int, at: int) -> bool:
    """Whether ``text[at]`` stands inside a bracket or quote opened since ``start`` that closes
    within :data:`_BRACKET_REACH` characters, before the paragraph ends."""
    piece = text[start:at]
    for opening, closing in _BRACKETS.items():
        if piece.count(opening) <= piece.count(closing):
            continue
        ahead = text[at : at + _BRACKET_REACH]
        close = ahead.find(closing)
        if close >= 0 and "\n\n" not in ahead[:close].replace(" ", ""):
            return True
    return False


def split_sentences(text: str) -> list[str]:
    """Split English and Chinese text into sentences, keeping each sentence's end mark.

    A mark inside brackets or quotes that close soon after it, or the full stop of an initial,
    does not end a sentence. Joining the result gives back ``text`` exactly (white space stays
    with the sentence before it), so callers can keep character offsets.
    """
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END_RE.finditer(text):
        if "\n" not in match.group() and (
            _inside_brackets(text, start, match.end()) or _INITIAL_RE.match(text, match.start() - 1)
        ):
            continue
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
