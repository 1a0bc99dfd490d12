"""Spans made whole: names, ranges, lists and brackets (rag/answering/edges.py)."""

import pytest

from rag.answering.edges import whole_span


def _whole(text: str, span: str, question: str) -> str | None:
    start = text.index(span)
    found = whole_span(text, start, start + len(span), question)
    return None if found is None else text[found[0] : found[1]]


@pytest.mark.parametrize(
    ("text", "span", "question", "expected"),
    [
        ("The record is held by Peyton Manning, who won twice.", "Manning", "Who holds the record?", "Peyton Manning"),
        ("Elway won Super Bowl XXXIII at 38.", "XXXIII", "Which Super Bowl did Elway win?", "Super Bowl XXXIII"),
        ("Matlin won an Academy Award in 1987.", "Academy", "What award did Matlin win?", "Academy Award"),
        (
            "It was signed in American Sign Language (ASL) by Matlin.",
            "American Sign Language (ASL",
            "In what?",
            "American Sign Language",
        ),
        ("The theatre ran from 1870 to 1939 in the garden.", "1939", "How long did the theatre run?", "1870 to 1939"),
        ("The Broncos won 23–16 over the Steelers.", "23", "What was the final score?", "23–16"),
        ("The office is staffed Monday to Friday.", "Friday", "When is the office staffed?", "Monday to Friday"),
        ("该鱼生活在水深0至12公尺的海域。", "12公尺", "该鱼生活在水深多少的海域？", "0至12公尺"),
        ("原冈瓦那大陆存在于中元古代到新元古代。", "新元古代", "原冈瓦那大陆存在于哪个时期？", "中元古代到新元古代"),
        ("1983年5月20日到1984年1月27日播出。", "1984年1月27日", "在什么期间播出？", "1983年5月20日到1984年1月27日"),
        (
            "它与阎王角龙、黎明角龙、古角龙等物种组成新角龙类。",
            "黎明角龙",
            "它与什么龙组成新角龙类？",
            "阎王角龙、黎明角龙、古角龙",
        ),
        ("乐器主要分为鼓、锣、钹和板四类。", "鼓", "乐器主要有哪些类型？", "鼓、锣、钹和板"),
        ("乐器主要分为鼓、锣、钹和板四类。", "板", "乐器主要有哪些类型？", "鼓、锣、钹和板"),
    ],
)
def test_a_part_becomes_the_whole(text, span, question, expected):
    assert _whole(text, span, question) == expected


@pytest.mark.parametrize(
    ("text", "span", "question"),
    [
        # the question asks for one end of the range, or one item of the list
        ("The theatre ran from 1870 to 1939 in the garden.", "1870", "When did the theatre open?"),
        ("开放时间为1990年至2000年。", "1990年", "最早哪一年开放？"),
        ("它与阎王角龙、黎明角龙、古角龙等物种组成新角龙类。", "黎明角龙", "其中哪一个最大？"),
        # words that open a sentence, possessives and hyphenated names are no part of a name or range
        ("He moved to Paris. The city was large.", "The city", "What was large?"),
        ("Denver's General Manager is John Elway.", "General Manager", "What is his role?"),
        ("The virus COVID-19 spread fast.", "19", "Which virus?"),
        # a range of places is not made from a destination
        ("Trains run from Paris to London.", "London", "Where do the trains go?"),
        ("The passage says nothing else.", "nothing", "What does it say?"),
    ],
)
def test_a_whole_span_is_left_alone(text, span, question):
    assert _whole(text, span, question) is None
