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
