"""Saying "the documents don't say": the fixed refusal answers, and recognising a model's own
refusal in whatever words it chose."""

from __future__ import annotations

import re

from rag.answering.citations import parse_markers
from rag.text.language import has_cjk
from rag.text.sentences import split_sentences
from rag.text.tokens import scoring_tokens

REFUSALS = {
    "en": "I could not find the answer in the documents.",
    "zh": "文档中没有找到答案。",
}

# Phrases a model uses to say the passages do not answer the question.
_REFUSAL_PATTERNS = [
    r"\b(?:could|can)\s*not\s+(?:find|be\s+found|locate|determine|answer)",
    r"\bcan'?t\s+(?:find|answer|determine)",
    r"\bunable\s+to\s+(?:find|answer|determine|locate)",
    r"\b(?:do|does|did)\s*(?:n'?t|\s+not)\s+(?:contain|mention|provide|include|say|specify|state|have)",
    r"\bno\s+(?:information|mention|answer|relevant|data|details)\b",
    r"\bnot\s+(?:mentioned|found|provided|specified|stated|available|contained|covered)\b",
    r"\bi\s+(?:do\s*n'?t|don't)\s+know\b",
    r"\bthere\s+is\s+no\s+(?:information|answer|mention)",
    r"没有找到",
    r"未找到",
    r"找不到",
    r"无法(?:回答|确定|找到|得知|判断)",
    r"没有(?:提到|提及|相关|关于|给出|说明|包含|信息)",
    r"未(?:提到|提及|说明|给出|包含)",
    r"不知道",
    r"无相关",
    r"并未(?:提到|提及|说明)",
]
_REFUSAL_RE = re.compile("|".join(_REFUSAL_PATTERNS), re.IGNORECASE)


def refusal_text(language: str) -> str:
    """The fixed refusal answer in ``language`` ("zh" or anything else for English)."""
    return REFUSALS["zh" if language == "zh" else "en"]


def is_refusal(text: str, language: str | None = None) -> bool:
    """Whether a generated answer says the passages do not hold the answer.

    The fixed refusal sentence always counts. Other refusal phrasing counts when the answer
    cites nothing and is short, or when it opens with the refusal: a long answer that cites a
    passage and mentions in passing that a detail is "not mentioned" is still an answer.
    """
    stripped = text.strip()
    if not stripped:
        return True
    if any(r.rstrip(".。") in stripped for r in REFUSALS.values()):
        return True
    match = _REFUSAL_RE.search(stripped)
    if match is None:
        return False
    first_sentence = split_sentences(stripped)[0] if stripped else ""
    if match.start() < len(first_sentence):
        return True
    short = len(scoring_tokens(stripped)) <= (40 if has_cjk(stripped) else 30)
    return short and not parse_markers(stripped)
