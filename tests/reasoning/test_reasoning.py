"""The reasoning stage (rag/reasoning/): the router's plans, values computed by code, and
multi-hop answers through the real pipeline on generated documents in both languages."""

from __future__ import annotations

import pytest

from rag.answering.pipeline import AnswerPipeline
from rag.config import Settings
from rag.ingestion import ingest_folder
from rag.reasoning.bridge import bridge_plan
from rag.reasoning.router import route
from rag.reasoning.values import Date, Quantity, difference, find_dates, find_quantities, first_quantity, years_between
from tests import docfactory
from tests.generators import default_generator

# -- the router --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, kind, entities, direction",
    [
        (
            "Who was born earlier, Thomas Wolfe or Margaret Wilson?",
            "comparison",
            ["Thomas Wolfe", "Margaret Wilson"],
            "early",
        ),
        ("Which beverage is sold in more countries, Schweppes or Lilt?", "comparison", ["Schweppes", "Lilt"], "more"),
        ("Is the AX-3000 or the AX-5000 cheaper?", "comparison", ["AX-3000", "AX-5000"], "less"),
        (
            "Did the Battle of Pusan Perimeter or the Battle of Peleliu happen first?",
            "comparison",
            ["Battle of Pusan Perimeter", "Battle of Peleliu"],
            "early",
        ),
        (
            "Was the film Home on the Range released before the comic book Ruse?",
            "comparison",
            ["film Home on the Range", "comic book Ruse"],
            "early",
        ),
        ("Are Joe Elliott and Paul Meany both keyboardists?", "both", ["Joe Elliott", "Paul Meany"], ""),
        (
            "Are both Joel Madden and Paul Baloff American punk rock singers?",
            "both",
            ["Joel Madden", "Paul Baloff"],
            "",
        ),
        ("The LNW-80 and Amstrad PCW are both what kind of machine?", "both", ["LNW-80", "Amstrad PCW"], ""),
        ("What are the hotel limits in London and Paris respectively?", "aggregation", ["London", "Paris"], ""),
        ("龙井和铁观音哪个冲泡水温更高？", "comparison", ["龙井", "铁观音"], "more"),
        ("北京大学和清华大学哪个建校更早？", "comparison", ["北京大学", "清华大学"], "early"),
        ("张三和李四谁入职更早？", "comparison", ["张三", "李四"], "early"),
        ("龙井和铁观音的冲泡水温相差多少度？", "arithmetic", ["龙井", "铁观音"], ""),
        ("龙井的冲泡水温比铁观音低多少度？", "arithmetic", ["龙井", "铁观音"], "less"),
        ("图书馆和博物馆都在周一闭馆吗？", "both", ["图书馆", "博物馆"], ""),
        ("伦敦和巴黎的酒店限额分别是多少？", "aggregation", ["伦敦", "巴黎"], ""),
        (
            "数学与应用数学专业与数据计算及应用专业在人才培养方面有哪些共同点和不同点？",
            "contrast",
            ["数学与应用数学专业", "数据计算及应用专业"],
            "",
        ),
        (
            "计算机科学与技术专业与软件工程专业培养的学生在毕业后的职业发展方向有何异同？",
            "contrast",
            ["计算机科学与技术专业", "软件工程专业"],
            "",
        ),
        ("How do green tea and oolong tea differ in brewing temperature?", "contrast", ["green tea", "oolong tea"], ""),
        (
            "What is the difference between the AX-3000 and the AX-5000 routers?",
            "contrast",
            ["AX-3000", "AX-5000 routers"],
            "",
        ),
        ("What occupation do Chris Menges and Aram Avakian share?", "both", ["Chris Menges", "Aram Avakian"], ""),
    ],
)
def test_the_router_names_the_kind_and_the_entities(question, kind, entities, direction):
    plan = route(question)
    assert plan is not None, question
    assert (plan.kind, plan.entities, plan.direction) == (kind, entities, direction)
    assert len(plan.sub_questions) == len(entities)
    assert all(entity in sub for entity, sub in zip(entities, plan.sub_questions))


def test_the_router_leaves_single_hop_questions_alone():
    single = [
        "What is the nightly hotel limit in London?",
        "How long do I hold the reset button on the AX-3000 router?",
        "Which frequency bands does the AX-3000 support?",
        "Who services the Zephyr pump?",
        "What is the daily meal allowance on business trips?",
        "Where was the drivers' world champion of 1995 born?",
        "冲泡龙井茶的水温应该是多少？",
        "图书馆每周哪天闭馆？",
        "持普通读者证每次最多可以借几本书？",
        "铁观音原产于哪里？",
        "What is the capital of Australia?",
        "火星上有多少颗卫星？",
    ]
    assert [q for q in single if route(q) is not None] == []


@pytest.mark.parametrize(
    "question, first, second",
    [
        # a demonstrative and a classifier after 的: the noun after them is named by the clause before
        ("接收出差申请的那个部门由谁负责？", "接收出差申请的部门是什么？", "FOUND由谁负责？"),
        ("三月讲座介绍的那种茶原产于哪里？", "三月讲座介绍的茶是什么？", "FOUND原产于哪里？"),
        ("主持开幕式的那位老师毕业于哪所大学？", "主持开幕式的老师是谁？", "FOUND毕业于哪所大学？"),
        # a thing used, named by a clause
        (
            "用公司给员工办理的读者证，每次最多可以借几本书？",
            "公司给员工办理的读者证是什么？",
            "用FOUND，每次最多可以借几本书？",
        ),
        # a role word, as before
        ("《海岸侵蚀报告》的作者出生在哪里？", "《海岸侵蚀报告》的作者是谁？", "FOUND出生在哪里？"),
    ],
)
def test_chinese_bridges_ask_first_what_the_clause_names(question, first, second):
    plan = bridge_plan(question)
    assert plan is not None, question
    assert (plan.first_question, plan.second_question("FOUND")) == (first, second)


def test_chinese_questions_with_no_clause_to_resolve_are_no_bridge():
    for question in (
        "他的那部作品叫什么？",
        "那种茶原产于哪里？",
        "图书馆每周哪天闭馆？",
        "三月讲座介绍的那种茶很好。",
        # a possessor, not a clause: the second hop of the bridge above, planned again
        "用城东社区图书馆的普通读者证，每次最多可以借几本书？",
        "城东社区图书馆的那个阅览室在几楼？",
    ):
        assert bridge_plan(question) is None, question


def test_same_province_compares_provinces_and_times_compare_in_one_unit():
    from rag.reasoning.values import in_unit_of, province_of

    plan = route("白毫银针和铁观音是不是产于同一个省？")
    assert (plan.kind, plan.operation, plan.level) == ("both", "same", "省")
    assert route("白毫银针和铁观音是不是产于同一个地方？").level == ""
    assert (province_of("福建福鼎"), province_of("浙江杭州西湖一带"), province_of("安溪")) == ("福建", "浙江", None)
    week, days = first_quantity("一周"), first_quantity("十四天")
    assert in_unit_of(week, days) == Quantity(7.0, "天", "一")
    assert difference(days, week).format() == "7天"
    assert in_unit_of(first_quantity("80摄氏度"), days) is None  # degrees are no days


def test_arithmetic_plans_say_what_to_compute():
    assert route("龙井和铁观音的冲泡水温相差多少度？").operation == "difference"
    assert route("伦敦和巴黎的住宿一共多少钱？").operation == "sum"
    plan = route("How many years passed between the opening of the Aurora Tower and the Beacon Bridge?")
    assert plan is not None and plan.kind == "arithmetic" and plan.operation == "difference"
    assert plan.entities == ["opening of the Aurora Tower", "Beacon Bridge"]


# -- values, computed by code -------------------------------------------------------------------


def test_dates_are_read_in_both_languages():
    assert find_dates("Michael James Jackson (27 March 1942 – 30 August 2007) was a writer") == [
        Date(1942, 3, 27),
        Date(2007, 8, 30),
    ]
    assert find_dates("Thomas Wolfe (October 3, 1900 – September 15, 1938)") == [Date(1900, 10, 3), Date(1938, 9, 15)]
    assert find_dates("北京大学创办于1898年，2001年5月12日扩建。") == [Date(1898), Date(2001, 5, 12)]
    assert find_dates("It weighs 1,250 kg and costs 3400.50 euros.") == []
    assert years_between(Date(1900, 10, 3), Date(1942, 3, 27)) == 41
    assert years_between(Date(1898), Date(1911)) == 13


def test_quantities_keep_their_units_and_chinese_numerals_count():
    assert find_quantities("冲泡水温以80摄氏度左右为宜，铁观音用95℃的沸水") == [
        Quantity(80.0, "摄氏度", "80"),
        Quantity(95.0, "℃", "95"),
    ]
    assert find_quantities("每人每次最多可借图书五册") == [Quantity(5.0, "册", "五")]
    assert [q.format() for q in find_quantities("240 pounds in London and 210 euros in Paris, a $15 fee")] == [
        "240 pounds",
        "210 euros",
        "$15",
    ]
    assert difference(first_quantity("80摄氏度"), first_quantity("95℃")).format() == "15摄氏度"
    assert difference(first_quantity("240 pounds"), first_quantity("210 euros")) is None  # no sum of pounds and euros
    assert first_quantity("长城全长约两万一千公里").value == 21000


# -- multi-hop answers through the real pipeline -------------------------------------------------


@pytest.fixture(scope="module")
def landmarks(tmp_path_factory, embedder):
    """Facts one file each, so that every question here needs two of them."""
    root = tmp_path_factory.mktemp("landmarks")
    docfactory.make_md(
        root / "aurora-tower.md",
        "Aurora Tower",
        [
            "The Aurora Tower is a steel observation tower in Kelmsford. It was completed in 1931 "
            "and stands 212 metres tall."
        ],
    )
    docfactory.make_md(
        root / "beacon-bridge.md",
        "Beacon Bridge",
        [
            "The Beacon Bridge is a suspension bridge over the river Anvel. It was opened in 1958 "
            "and is 940 metres long."
        ],
    )
    docfactory.make_md(
        root / "orion-report.md",
        "The Orion report",
        [
            "The Orion report on coastal erosion was written by the geologist Mara Lindqvist "
            "and published by the Kelmsford Institute."
        ],
    )
    docfactory.make_md(
        root / "mara-lindqvist.md",
        "Mara Lindqvist",
        [
            "Mara Lindqvist is a Norwegian geologist. She was born in Tromsø in 1961 and studied in Bergen. "
            "Her husband is the painter Olav Berg."
        ],
    )
    docfactory.make_md(
        root / "olav-berg.md", "Olav Berg", ["Olav Berg is a landscape painter. Olav Berg was born in Narvik."]
    )
    docfactory.make_txt(
        root / "报告" / "海岸侵蚀报告.txt", "海岸侵蚀报告\n\n《海岸侵蚀报告》由地质学家林晓梅撰写，于2019年发表。\n"
    )
    docfactory.make_txt(root / "报告" / "林晓梅.txt", "林晓梅\n\n林晓梅是一位地质学家，出生于厦门，毕业于南京大学。\n")
    docfactory.make_txt(
        root / "茶" / "龙井.txt", "龙井茶\n\n龙井茶产于浙江杭州西湖一带，属于绿茶，冲泡水温以80摄氏度为宜。\n"
    )
    docfactory.make_txt(
        root / "茶" / "铁观音.txt", "铁观音\n\n铁观音原产于福建安溪，属于乌龙茶，宜用95摄氏度的沸水冲泡。\n"
    )
    docfactory.make_txt(
        root / "茶" / "茶艺讲座.txt", "茶艺讲座\n\n茶艺社三月的讲座介绍了大红袍，六月的讲座介绍了白毫银针。\n"
    )
    docfactory.make_txt(root / "茶" / "大红袍.txt", "大红袍\n\n大红袍原产于福建武夷山，属于乌龙茶。\n")
    docfactory.make_txt(root / "桥" / "青石桥.txt", "青石桥\n\n青石桥是一座石拱桥，建于1921年，全长64米。\n")
    docfactory.make_txt(root / "桥" / "白塔.txt", "白塔\n\n白塔是一座砖塔，建于1876年，高约30米。\n")
    settings = Settings.load(env={}, overrides={"index_dir": tmp_path_factory.mktemp("ix") / "index", "device": "cpu"})
    ingest_folder(root, settings, embedder=embedder)
    return AnswerPipeline(settings, generator=default_generator())


def _sources(answer) -> set[str]:
    return {c.source for c in answer.citations}


@pytest.mark.slow
def test_a_comparison_of_dates_is_decided_by_code_and_cites_both(landmarks):
    answer = landmarks.answer("Which was completed earlier, the Aurora Tower or the Beacon Bridge?")
    assert answer.answerable and answer.answer.startswith("Aurora Tower"), answer.answer
    assert _sources(answer) == {"aurora-tower.md", "beacon-bridge.md"}
    assert [h.value for h in answer.reasoning] == ["1931", "1958"]
    assert [answer.passages[h.citation - 1].chunk.source for h in answer.reasoning] == [
        "aurora-tower.md",
        "beacon-bridge.md",
    ]
    zh = landmarks.answer("青石桥和白塔哪个建造得更早？")
    assert zh.answer.startswith("白塔"), zh.answer
    assert [h.value for h in zh.reasoning] == ["1921", "1876"]
    assert _sources(zh) == {"桥/青石桥.txt", "桥/白塔.txt"}


@pytest.mark.slow
def test_arithmetic_over_found_values_is_computed_with_its_unit(landmarks):
    answer = landmarks.answer("龙井和铁观音的冲泡水温相差多少度？")
    assert answer.answerable and answer.answer.startswith("15摄氏度"), answer.answer
    assert _sources(answer) == {"茶/龙井.txt", "茶/铁观音.txt"}
    assert [h.value for h in answer.reasoning] == ["80摄氏度", "95摄氏度"]
    years = landmarks.answer(
        "How many years passed between the completion of the Aurora Tower and the opening of the Beacon Bridge?"
    )
    assert years.answer.startswith("27 years"), years.answer


@pytest.mark.slow
def test_each_part_of_a_respectively_question_is_answered_with_its_own_citation(landmarks):
    answer = landmarks.answer("龙井和铁观音分别属于什么茶？")
    assert answer.answerable, answer.answer
    assert "绿茶" in answer.answer and "乌龙茶" in answer.answer, answer.answer
    part_one, part_two = answer.answer.split("；")
    assert part_one.startswith("龙井") and part_two.startswith("铁观音")
    cited = {answer.passages[h.citation - 1].chunk.source for h in answer.reasoning}
    assert cited == {"茶/龙井.txt", "茶/铁观音.txt"}


@pytest.mark.slow
def test_a_contrast_sets_what_each_document_says_side_by_side(landmarks):
    answer = landmarks.answer("龙井和铁观音在产地和茶类上有哪些不同？")
    assert answer.answerable, answer.answer
    lines = answer.answer.split("\n")
    assert len(lines) == 2 and lines[0].startswith("龙井：") and lines[1].startswith("铁观音："), answer.answer
    assert "绿茶" in lines[0] and "乌龙茶" in lines[1]
    cited = [answer.passages[h.citation - 1].chunk.source for h in answer.reasoning]
    assert cited == ["茶/龙井.txt", "茶/铁观音.txt"]
    assert lines[0].endswith(f"[{answer.reasoning[0].citation}]") and lines[1].endswith(
        f"[{answer.reasoning[1].citation}]"
    )


@pytest.mark.slow
def test_yes_or_no_over_two_things_needs_each_passage_to_say_so(landmarks):
    both = landmarks.answer("Are the Aurora Tower and the Beacon Bridge both in Kelmsford?")
    assert both.answer.startswith("no"), both.answer  # the bridge's passage does not say Kelmsford
    zh = landmarks.answer("龙井和铁观音都属于绿茶吗？")
    assert zh.answer.startswith("否"), zh.answer


@pytest.mark.slow
def test_a_bridge_question_takes_a_second_hop_through_what_the_first_found(landmarks):
    answer = landmarks.answer("Where was the author of the Orion report born?")
    assert answer.answerable and answer.answer.startswith("Tromsø"), (answer.answer, answer.reasoning)
    assert len(answer.reasoning) == 2
    first, second = answer.reasoning
    assert first.question == "Who is the author of the Orion report?"
    assert "Lindqvist" in first.finding and answer.passages[first.citation - 1].chunk.source == "orion-report.md"
    assert second.question.startswith("Where was") and "Lindqvist" in second.question
    assert answer.passages[second.citation - 1].chunk.source == "mara-lindqvist.md"
    assert answer.answer_span.text == "Tromsø"
    assert _sources(answer) == {"orion-report.md", "mara-lindqvist.md"}
    # Streaming sends each hop as it ends, then the passages of all of them and the answer.
    events = list(landmarks.stream("Where was the author of the Orion report born?"))
    assert [e["type"] for e in events] == ["hop", "hop", "retrieval", "token", "done"]
    assert events[1]["hop"]["finding"] == "Tromsø" and events[-1]["answer"]["answer"] == answer.answer
    assert len(events[-1]["answer"]["reasoning"]) == 2


@pytest.mark.slow
def test_a_short_answer_of_the_wrong_kind_is_asked_about_again(landmarks):
    # "When ...?" answered with a name: the name is the bridge, and the date is in its own file.
    answer = landmarks.answer("When was the geologist who wrote the Orion report born?")
    assert answer.answer.startswith("1961"), (
        answer.answer,
        [(h.question, h.query, h.finding) for h in answer.reasoning],
    )
    first, second = answer.reasoning
    assert "Lindqvist" in first.finding and "Lindqvist" in second.query
    assert answer.passages[second.citation - 1].chunk.source == "mara-lindqvist.md"
    assert answer.checks[0]["check"] == "reasoning"


@pytest.mark.slow
def test_bridges_in_chinese_and_through_two_relations(landmarks):
    zh = landmarks.answer("《海岸侵蚀报告》的作者出生在哪里？")
    assert zh.answerable and zh.answer.startswith("厦门"), (zh.answer, zh.reasoning)
    assert [h.question for h in zh.reasoning] == ["《海岸侵蚀报告》的作者是谁？", "林晓梅出生在哪里？"]
    assert _sources(zh) == {"报告/海岸侵蚀报告.txt", "报告/林晓梅.txt"}
    # "the husband of the author of X": the author first, then her husband, then where he was born.
    three = landmarks.answer("Where was the husband of the author of the Orion report born?")
    assert three.answer.startswith("Narvik"), (
        three.answer,
        [(h.question, h.query, h.finding) for h in three.reasoning],
        three.checks,
    )
    assert [h.finding for h in three.reasoning][1:] == ["Olav Berg", "Narvik"]
    assert _sources(three) == {"orion-report.md", "mara-lindqvist.md", "olav-berg.md"}
    # With two hops allowed the inner relation is not resolved first: the question stays two hops.
    two = AnswerPipeline(landmarks.settings.replace(reasoning_hops=2), generator=default_generator())
    assert len(two.answer("Where was the husband of the author of the Orion report born?").reasoning) <= 2


@pytest.mark.slow
def test_a_chinese_bridge_through_a_relative_clause_and_one_the_documents_cannot_finish(landmarks):
    answer = landmarks.answer("茶艺社三月的讲座介绍的那种茶原产于哪里？")
    assert answer.answerable and answer.answer.startswith("福建武夷山"), (answer.answer, answer.reasoning)
    assert [h.finding for h in answer.reasoning] == ["大红袍", "福建武夷山"]
    assert _sources(answer) == {"茶/茶艺讲座.txt", "茶/大红袍.txt"}
    # 白毫银针 is in no other file: a passage about another tea is no answer about it.
    none = landmarks.answer("茶艺社六月的讲座介绍的那种茶原产于哪里？")
    assert not none.answerable, (none.answer, [(h.question, h.finding) for h in none.reasoning])
    assert none.reasoning[0].finding == "白毫银针"


@pytest.mark.slow
def test_a_single_hop_question_takes_one_hop_and_reasoning_off_changes_nothing(landmarks):
    answer = landmarks.answer("How tall is the Aurora Tower?")
    assert answer.reasoning == [] and "212 metres" in answer.answer, answer.answer
    off = AnswerPipeline(landmarks.settings.replace(reasoning=False), generator=default_generator())
    assert off.answer("How tall is the Aurora Tower?").answer == answer.answer
    plain = off.answer("Which was completed earlier, the Aurora Tower or the Beacon Bridge?")
    assert plain.reasoning == []


@pytest.mark.slow
def test_a_hop_that_finds_nothing_refuses_the_whole_question(landmarks):
    answer = landmarks.answer("龙井和普洱的冲泡水温相差多少度？")  # 普洱 is in no document
    assert not answer.answerable, answer.answer
    assert answer.checks[0]["check"] == "reasoning" and answer.checks[0]["action"] == "refuse"
    assert len(answer.reasoning) == 2 and answer.reasoning[0].found


def test_the_openai_footer_lists_what_each_hop_asked_and_found():
    from api.sources import sources_block

    citations = [{"number": 1, "source": "aurora-tower.md"}, {"number": 2, "source": "beacon-bridge.md"}]
    hops = [
        {
            "question": "When was Aurora Tower completed?",
            "finding": "It was completed in 1931.",
            "value": "1931",
            "citation": 1,
        },
        {"question": "When was Beacon Bridge completed?", "finding": "", "value": None, "citation": None},
    ]
    block = sources_block(citations, None, hops)
    assert block.endswith(
        "Steps:\n1. When was Aurora Tower completed? -> 1931 [1]\n"
        "2. When was Beacon Bridge completed? -> (nothing found)"
    )
    assert "Steps:" not in sources_block(citations, None, [])
