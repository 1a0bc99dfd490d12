"""Spans made whole: names, ranges, lists and brackets (rag/answering/edges.py), and a figure
with its unit (the unit check)."""

import pytest

from rag.answering.checks import Context, Draft, with_unit
from rag.answering.edges import trim_echo, whole_span
from rag.documents import Chunk, SearchHit, Span


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
        (
            "他的著作有《朱学论集》、《中国和西方对仁的解说》、《西方对儒学的研究》等。",
            "《中国和西方对仁的解说》",
            "他的主要著作有哪些？",
            "《朱学论集》、《中国和西方对仁的解说》、《西方对儒学的研究》",
        ),
        ("博落回提取物可用作农药和抗菌消炎药。", "抗菌消炎药", "博落回提取物可用作什么药？", "农药和抗菌消炎药"),
        ("他在场上的位置是中锋或大前锋。", "中锋", "他在场上的位置是什么？", "中锋或大前锋"),
        ("美洲版本在美国及加拿大播出。", "美国", "美洲版本在哪两国播出？", "美国及加拿大"),
        ("| 月份 | 介绍的茶 |\n|---|---|\n| 六月 | 白毫银针 |", "银针", "六月介绍的茶是什么？", "白毫银针"),
        # a day of the week read without its "周" or "星期"
        ("每周一闭馆整理。", "一", "图书馆每周哪天闭馆？", "周一"),
        ("门诊时间为星期二至五上午。", "二至五", "哪几天有门诊？", "星期二至五"),
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
        ("他在场上的位置是中锋或大前锋。", "中锋", "他最常打哪个位置？"),
        # words that open a sentence, possessives and hyphenated names are no part of a name or range
        ("He moved to Paris. The city was large.", "The city", "What was large?"),
        ("Denver's General Manager is John Elway.", "General Manager", "What is his role?"),
        ("The virus COVID-19 spread fast.", "19", "Which virus?"),
        # nor is a title before a name ("Microsoft CEO" is the question's own words)
        ("Alumni include Microsoft CEO Satya Nadella.", "Satya Nadella", "What Microsoft CEO is an alumnus?"),
        ("It was signed by US President Barack Obama.", "Barack Obama", "Who signed it?"),
        # a table cell of several words is not one word to complete
        ("| 行政部 | 12 | 陈静 Chen Jing |", "陈静 Chen Jing", "Who heads it?"),
        ("| 部门 | 负责人 |\n| 行政部 | 陈静 Chen Jing |", "陈静", "谁负责行政部？"),
        # a range of places is not made from a destination
        ("Trains run from Paris to London.", "London", "Where do the trains go?"),
        # a count after "每周" is no day of the week
        ("每周一次，每次两小时。", "一次", "每周几次？"),
        ("每周一次，每次两小时。", "一", "每周几次？"),
        ("The passage says nothing else.", "nothing", "What does it say?"),
    ],
)
def test_a_whole_span_is_left_alone(text, span, question):
    assert _whole(text, span, question) is None


@pytest.mark.parametrize(
    ("text", "figure", "expected"),
    [
        ("The pump runs at 3400 rpm.", "3400", "3400 rpm"),
        ("Forest was cleared at 8,646 sq mi per year.", "8,646", "8,646 sq mi"),
        ("The forest absorbs about 1.5 gigatons of carbon.", "1.5", "1.5 gigatons"),
        ("The farm covers 120 acres.", "120", "120 acres"),
        ("每人每次最多可借图书5册。", "5", "5册"),
        ("Version 2.1.3 is out.", "2.1.3", "2.1.3"),  # a version number has no unit
        ("They lost 3 matches in 2019 in Paris.", "2019", "2019"),  # "in" apart from the figure
    ],
)
def test_a_bare_figure_is_read_with_its_unit(text, figure, expected):
    start = text.index(figure)
    hit = SearchHit(
        chunk=Chunk(id="d", text=text, source="d.md", page=None, section=None, kind="text", start=0, end=len(text)),
        score=1.0,
    )
    draft = Draft(f"{figure} [1]", [1], Span(1, start, start + len(figure), figure))
    verdict = with_unit(draft, Context("How much?", "How much?", "en", [hit]))
    shown = verdict.draft.span.text if verdict.draft is not None else figure
    assert shown == expected


LECTURES = SearchHit(
    Chunk(
        "t1",
        "Lectures\n\n| Month | Topic | Tea |\n|---|---|---|\n| March | Oolong aromas | Tieguanyin |\n"
        "| June | White tea | Silver Needle |",
        "lectures.md",
        None,
        None,
        "text",
        0,
        100,
    ),
    1.0,
)
NUMBERED = SearchHit(
    Chunk("t3", "| No. | Tea |\n|---|---|\n| 1 | Tieguanyin |\n| 2 | Longjing |", "n.md", None, None, "text", 0, 60),
    1.0,
)
讲座 = SearchHit(
    Chunk(
        "t2",
        "讲座\n\n| 月份 | 讲座主题 | 介绍的茶 |\n|---|---|---|\n| 三月 | 半发酵茶的香气 | 铁观音 |\n"
        "| 六月 | 白茶入门 | 白毫银针 |",
        "讲座.md",
        None,
        None,
        "text",
        0,
        100,
    ),
    1.0,
)


@pytest.mark.parametrize(
    ("question", "hit", "reader_span", "expected"),
    [
        # the reader chose the topic's cell, or preferred no answer: the column named decides
        ("三月的讲座介绍的茶是什么？", 讲座, "半发酵茶的香气", "铁观音"),
        ("Which tea did the March lecture present?", LECTURES, "Oolong aromas", "Tieguanyin"),
        # the column is named but not asked for: the question is about the tea
        ("三月的讲座介绍的茶原产于哪里？", 讲座, "半发酵茶的香气", None),
        # no row named, or the column of the row's own name
        ("讲座介绍的茶是什么？", 讲座, "铁观音", None),
        ("What month was the lecture on white tea?", LECTURES, "June", None),
        # a row number names no row: "1" is in the question only as a figure
        ("Which tea did 1 lecture present?", NUMBERED, "Tieguanyin", None),
    ],
)
def test_the_cell_of_the_row_and_column_a_question_names_answers(question, hit, reader_span, expected):
    from rag.answering.checks import table_cell

    text = hit.chunk.text
    start = text.index(reader_span)
    draft = Draft(f"{reader_span} [1]", [1], Span(1, start, start + len(reader_span), reader_span), None, 0.1, 4.5)
    verdict = table_cell(draft, Context(question, question, "zh", [hit]))
    if expected is None:
        assert verdict.action == "keep", verdict.reason
        return
    assert verdict.action == "replace" and verdict.draft.span.text == expected, verdict
    span = verdict.draft.span
    assert text[span.start : span.end] == expected and verdict.draft.no_answer is None
    assert verdict.draft.evidence.text.strip().startswith("|") and expected in verdict.draft.evidence.text


@pytest.mark.parametrize(
    ("span", "question", "expected"),
    [
        ("第六届茅盾文学奖", "《张居正》获得了第几届茅盾文学奖？", "第六届"),
        ("一个国际机场", "莱索托有几个国际机场？", "一个"),
        ("第二代站房", "高畠车站目前使用的是第几代站房？", "第二代"),
        # units stay, lists of things asked "哪几种" stay, other questions' nouns stay
        ("364.6公里", "广茂铁路全长多少公里？", "364.6公里"),
        ("20公分", "膨趾膜鳕的体长可达多少公分？", "20公分"),
        ("四种口味", "长鼻王系列产品有哪几种口味？", "四种口味"),
        ("罗迪尼亚大陆", "原冈瓦那大陆属于什么大陆？", "罗迪尼亚大陆"),
        # a title in 《》 is answered without its author or kind before it
        ("古龙的《九月鹰飞》", "哪部作品是《金刀情侠》的原著？", "《九月鹰飞》"),
        ("好莱坞电影《我与艺妓》", "她在哪部电影中为女主角化妆？", "《我与艺妓》"),
        ("参加《油脂小子》音乐剧", "他什么时候决定当演员？", "参加《油脂小子》音乐剧"),
    ],
)
def test_a_chinese_span_loses_what_only_frames_its_answer(span, question, expected):
    cut_start, cut_end = trim_echo(span, question)
    assert span[cut_start : len(span) - cut_end] == expected
