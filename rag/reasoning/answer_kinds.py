"""What kind of short answer a question wants (a date, a number), and whether an answer can be
of that kind: the reasoning stage asks again about an answer that cannot."""

from __future__ import annotations

import re

_ASKS_DATE = re.compile(
    r"^\s*(?:when\s+(?:was|were|is|are|did|does|do|will|has|had|can|could)\b|in\s+what\s+year|in\s+which\s+year|what\s+(?:year|date)\b|which\s+year)"
    r"|什么时候|哪一年|哪年|何时|哪一天|几月几",
    re.IGNORECASE,
)
_ASKS_NUMBER = re.compile(
    r"^\s*how\s+(?:many|much|old|long|tall|high|far)\b|^\s*what\s+(?:number|percentage)\b"
    r"|多少|几(?:个|位|岁|次|本|天|年|名|种|家|座|人|倍|米|公里)",
    re.IGNORECASE,
)
_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"hundred|thousand|million|billion|dozen|several|half)\b|[零〇一二两三四五六七八九十百千万亿]",
    re.IGNORECASE,
)


def expected_kind(question: str) -> str | None:
    """ "date" or "number" when the question can only be answered by one; else ``None``."""
    if _ASKS_DATE.search(question):
        return "date"
    if _ASKS_NUMBER.search(question):
        return "number"
    return None


def fits(answer: str, kind: str) -> bool:
    """Whether a short answer can be of that kind: a date or a number needs a digit or a
    numeral ("1927", "五册", "two", "19世纪", "a decade")."""
    if re.search(r"\d", answer) or _NUMBER_WORDS.search(answer):
        return True
    if kind == "date":
        return bool(
            re.search(
                r"年|月|日|世纪|朝|代|时期|century|decade|spring|summer|autumn|fall|winter|"
                r"january|february|march|april|may|june|july|august|september|october|november|"
                r"december|today|yesterday|ago",
                answer,
                re.IGNORECASE,
            )
        )
    return False
