"""What a question asks for, read from its words (English and Chinese)."""

from __future__ import annotations

import re

from rag.text.language import CJK_RE

# "How many ...", "多少": asked for a count or an amount, in both kinds of question below.
_HOW_MUCH = (
    r"\bhow\s+(?:many|much|long|far|old|big|large|tall|high|fast|often|deep|wide|heavy)\b|"
    r"\bwhat\s+(?:percentage|percent|number|age)\b"
)
_HOW_MUCH_ZH = r"多大|多长|多高|多远|多久|多重"
# Questions whose answer is a number, a quantity or a date.
ASKS_NUMBER = re.compile(
    rf"{_HOW_MUCH}|\bwhat\s+(?:year|date)\b|\bin\s+which\s+year\b|多少|几|{_HOW_MUCH_ZH}|哪一?年|何时|什么时候|哪天",
    re.IGNORECASE,
)
# Questions whose answer is a count or an amount: it starts with its figure ("17", "五册",
# "three"), where a date may start with a month's name.
ASKS_AMOUNT = re.compile(rf"{_HOW_MUCH}|多少|几(?!乎)|{_HOW_MUCH_ZH}", re.IGNORECASE)
# What a figure looks like: a digit or a Chinese numeral.
HAS_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千万亿半]")
_FIGURE_START = re.compile(
    r"[\d０-９一二两三四五六七八九十百千万亿半零〇]|(?:one|two|three|four|five|six|seven|eight|nine|ten|"
    r"eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|"
    r"fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|half)\b",
    re.IGNORECASE,
)


def starts_a_figure(text: str, at: int) -> bool:
    """Whether a figure ("17", "五", "four") starts at ``at`` in ``text``."""
    return bool(_FIGURE_START.match(text, at))


# The words a Chinese question asks with, where the answer would stand in a statement
# ("纽波特又被译为[什么]" / "纽波特又被译为新港").
_ASKING_ZH = re.compile(r"哪一?[个位家座条种国年天里些部所本首]?|什么|多少|几|谁|何时|何地|何处|怎样|怎么样|如何")


def before_asking_zh(question: str, width: int = 2) -> str:
    """The ``width`` Chinese characters right before the first word a Chinese question asks
    with ("译为" in "纽波特又被译为什么？"), or "" when there are none."""
    match = _ASKING_ZH.search(question)
    if match is None or match.start() < width:
        return ""
    before = question[match.start() - width : match.start()]
    return before if len(CJK_RE.findall(before)) == width else ""


def after_asking_zh(question: str, width: int = 2) -> str:
    """The ``width`` Chinese characters right after the first word a Chinese question asks
    with ("闭馆" in "图书馆每周哪天闭馆？"), or "" when there are none: where a statement's
    answer would end."""
    match = _ASKING_ZH.search(question)
    if match is None:
        return ""
    end = match.end()
    if question.startswith("时候", end) or question.startswith("时间", end):
        end += 2  # "什么时候开门": the asking word is "什么时候"
    after = question[end : end + width]
    return after if len(after) == width and len(CJK_RE.findall(after)) == width else ""
