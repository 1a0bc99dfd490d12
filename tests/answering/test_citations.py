"""Citation markers, citation objects, snippets and refusal detection (pure functions)."""

from __future__ import annotations

import pytest

from rag.citations import (
    REFUSALS,
    best_sentence,
    best_supporting_passage,
    build_citations,
    clean_markers,
    drop_repeats,
    is_refusal,
    parse_markers,
    refusal_text,
    snippet_around,
    support,
)
from rag.documents import Chunk, SearchHit


def hit(text: str, source: str, page: int | None = None, section: str | None = None) -> SearchHit:
    chunk = Chunk(
        id=f"id-{source}", text=text, source=source, page=page, section=section, kind="text", start=0, end=len(text)
    )
    return SearchHit(chunk=chunk, score=0.03, scores={"dense": 0.61, "sparse": 7.2, "rrf": 0.03}, rank=1)


@pytest.mark.parametrize(
    "text, numbers",
    [
        ("It runs at 3400 rpm [1].", [1]),
        ("A [2][1] and B [1].", [2, 1]),
        ("Both [1, 2] and [3，4].", [1, 2, 3, 4]),
        ("全角【2】和［3］。", [2, 3]),
        ("A range [1-3].", [1, 2, 3]),
        ("Named [Passage 2] and [passage 1 and 3].", [2, 1, 3]),
        ("No markers, a year 2024, a list [a] and [ ].", []),
    ],
)
def test_parse_markers(text, numbers):
    assert parse_markers(text) == numbers


def test_clean_markers_drops_markers_that_point_nowhere_and_normalises_the_rest():
    text, cited = clean_markers("Limit is 250 euros [1][7]. Breakfast is included [2, 9]. Meals 【3】.", 2)
    assert cited == [1, 2]
    assert text == "Limit is 250 euros [1]. Breakfast is included [2]. Meals."
    text, cited = clean_markers("Only an invalid one [5].", 2)
    assert (text, cited) == ("Only an invalid one.", [])
    text, cited = clean_markers("重复 [1] [1]，范围【1-2】。", 2)
    assert text == "重复 [1]，范围[1][2]。" and cited == [1, 2]


def test_build_citations_has_source_scores_and_snippet_around_the_answer():
    long_text = (
        "Filler sentence about nothing. " * 12
        + "The nightly hotel limit in London is 250 euros. "
        + "More filler about other topics. " * 12
    )
    hits = [
        hit("Receipts within 30 days.", "expenses.md", page=2, section="Expenses"),
        hit(long_text, "travel.md", section="Hotels"),
    ]
    citations = build_citations([2, 1, 5], hits, answer="The limit in London is 250 euros [1].", max_chars=120)
    assert [c.number for c in citations] == [2, 1]
    first = citations[0]
    assert first.source == "travel.md" and first.section == "Hotels" and first.chunk_id == "id-travel.md"
    assert "250 euros" in first.snippet and len(first.snippet) <= 122
    assert first.snippet.startswith("…") and first.snippet.endswith("…")
    assert first.scores == {"dense": 0.61, "sparse": 7.2, "rrf": 0.03}
    assert citations[1].page == 2 and citations[1].snippet == "Receipts within 30 days."


def test_snippet_of_a_short_passage_is_the_passage():
    assert snippet_around("  Short passage.  ", "anything") == "Short passage."


def test_chinese_snippet_centres_on_the_matching_sentence():
    passage = "绿茶宜用八十度的水。" * 10 + "铁观音原产于福建安溪。" + "红茶宜用沸水冲泡。" * 10
    snippet = snippet_around(passage, "铁观音原产于福建安溪", max_chars=40)
    assert "铁观音原产于福建安溪。" in snippet and len(snippet) <= 42


def test_refusal_texts_per_language():
    assert refusal_text("en") == REFUSALS["en"] == "I could not find the answer in the documents."
    assert refusal_text("zh") == REFUSALS["zh"] == "文档中没有找到答案。"
    assert refusal_text("fr") == REFUSALS["en"]


@pytest.mark.parametrize(
    "text",
    [
        "I could not find the answer in the documents.",
        "I could not find the answer in the documents",
        "文档中没有找到答案。",
        "The passages do not mention the capital of Australia.",
        "There is no information about Mars in the passages.",
        "I'm unable to answer this from the given passages.",
        "The answer is not mentioned.",
        "资料中没有提到火星的卫星。",
        "无法回答这个问题。",
        "",
    ],
)
def test_refusals_are_detected(text):
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "The nightly hotel limit in London is 250 euros [1].",
        "The limit is 250 euros [1]. The passages do not mention breakfast for other cities, which is a detail.",
        "冲泡龙井茶的水温以80摄氏度左右为宜[1]。",
        "Business class is never reimbursed [1].",  # a "never" in the answer is not a refusal
    ],
)
def test_answers_are_not_refusals(text):
    assert not is_refusal(text)


def test_best_supporting_passage():
    hits = [
        hit("Receipts must be uploaded within 30 days.", "a.md"),
        hit("The nightly hotel limit is 250 euros in London.", "b.md"),
    ]
    assert best_supporting_passage("The hotel limit in London is 250 euros.", hits) == 2
    assert best_supporting_passage("Canberra is the capital of Australia.", hits) is None
    assert best_supporting_passage("", hits) is None


def test_support_measures_how_much_of_an_answer_the_passages_hold():
    tea = [hit("龙井茶产于浙江杭州西湖一带。冲泡龙井时水温以80摄氏度左右为宜。", "茶.md")]
    assert support("冲泡龙井时水温以80摄氏度左右为宜[1]。", tea) == 1.0
    assert support("资料中有一个问题，说明的是资料中有一个问题", tea) < 0.2  # garbled
    hotels = [hit("The nightly hotel limit is 250 euros in London.", "b.md")]
    assert support("The hotel limit in London is 250 euros [1].", hotels) == 1.0
    assert support("Canberra is the capital of Australia.", hotels) == 0.0
    assert support("", hotels) == 0.0
    # Passage words around a figure the passages do not hold: unsupported.
    assert support("The hotel limit in London is 180 euros [1].", hotels) == 0.0
    assert support("冲泡龙井时水温以90摄氏度左右为宜[1]。", tea) == 0.0
    big = [hit("The stadium holds 1,200 people and opened in 2016.", "c.md")]
    assert support("It holds 1200 people [1].", big) > 0.5  # the same figure, written without the comma


def test_figures_in_text():
    from rag.citations import figures_in

    assert figures_in("Gates 3 and 12 open at 9.30; 1,200 seats, 2016") == {"3", "12", "9.30", "1200", "2016"}
    assert figures_in("第3章说水温80摄氏度") == {"3", "80"}
    assert figures_in("no numbers") == set()


def test_best_sentence_is_an_extractive_answer():
    passages = [
        hit("绿茶宜用八十度的水。铁观音是乌龙茶的代表，原产于福建安溪。", "茶.md"),
        hit("The nightly hotel limit is 250 euros in London. Breakfast is included.", "b.md"),
    ]
    assert best_sentence("铁观音原产于哪里？", passages) == (1, "铁观音是乌龙茶的代表，原产于福建安溪。")
    assert best_sentence("What is the hotel limit in London?", passages) == (
        2,
        "The nightly hotel limit is 250 euros in London.",
    )
    assert best_sentence("Who painted the Mona Lisa?", passages) is None


def test_a_passage_title_is_not_an_answer():
    from rag.citations import names_only_a_heading

    rules = hit(
        "城东社区图书馆借阅规定\n\n一、开放时间：周二至周日开放，每周一闭馆整理。",
        "图书馆规定.txt",
        section="城东社区图书馆借阅规定",
    )
    # SmolLM2 answered "图书馆周一开放吗？" with the document's title.
    assert names_only_a_heading("城东社区图书馆借阅规定 [1]", [rules])
    assert names_only_a_heading("# 城东社区图书馆借阅规定。", [rules])
    assert not names_only_a_heading("每周一闭馆整理[1]。", [rules])
    # The title shares more of the question's words than the answer does, but is never picked.
    assert best_sentence("图书馆周一开放吗？", [rules]) == (1, "一、开放时间：周二至周日开放，每周一闭馆整理。")
    # Within a passage about one thing, the words naming it do not pick the sentence.
    fish = hit(
        "白尾雀鲷\n\n白尾雀鲷，又称金尾雀鲷，为鲈形目雀鲷科的其中一种。本鱼栖息在水深0.5至3公尺的珊瑚礁海域。",
        "fish.md",
        section="白尾雀鲷",
    )
    assert best_sentence("白尾雀鲷生活在水深多少的海域？", [fish]) == (1, "本鱼栖息在水深0.5至3公尺的珊瑚礁海域。")
    # A long first line is a paragraph, not a title: an answer that copies it stands.
    paragraph = hit("Ratzel believed expansion was necessary for a state's survival, and Mackinder agreed", "geo.md")
    assert not names_only_a_heading(
        "Ratzel believed expansion was necessary for a state's survival, and Mackinder agreed [1]", [paragraph]
    )


def test_the_passage_about_the_subject_wins_a_tie_of_words():
    # Both sentences hold "毕业于" and "大学"; only the first passage is about 楼曾瑞.
    subject = hit("楼曾瑞\n\n楼曾瑞是香港教育工作者。他毕业于香港中文大学。", "lou.md", section="楼曾瑞")
    other = hit("梁卓伟\n\n梁卓伟其后毕业于西安大略大学医学院。", "leung.md", section="梁卓伟")
    subject.scores["overlap"], other.scores["overlap"] = 1.0, 0.75
    assert best_sentence("楼曾瑞毕业于哪个大学？", [other, subject]) == (2, "他毕业于香港中文大学。")


def test_an_faq_question_points_to_its_answer():
    faq = hit(
        "常见问题\n\n大规模语言模型有哪些应用场景？\n\n文本分类、机器翻译、问答系统等。\n\n"
        "什么是微调？\n\n在特定任务上继续训练。",
        "faq.md",
        section="常见问题",
    )
    assert best_sentence("大规模语言模型有哪些应用场景？", [faq]) == (1, "文本分类、机器翻译、问答系统等。")
    router = hit("Router FAQ\n\nHow do I reset the router? Hold RESET for 10 seconds.", "router.txt")
    assert best_sentence("How do I reset the router?", [router]) == (1, "Hold RESET for 10 seconds.")
    # A question inside running text is no FAQ: the sentence after it is not its answer.
    prose = hit("Routers are simple. Why reset the router? Nobody knows. Resetting takes 10 seconds.", "prose.txt")
    assert best_sentence("How long does resetting the router take?", [prose]) == (1, "Resetting takes 10 seconds.")
    assert best_sentence("Why reset the router?", [prose]) == (1, "Why reset the router?")


def test_an_answer_that_announces_a_list_gets_the_list():
    from rag.citations import complete_lead_in

    passage = hit(
        "8.3 面临的挑战\n\n大模型面临的挑战包括但不限于：\n\n计算资源：需要大量的计算资源。\n\n"
        "过拟合：需要正则化和微调。\n\n8.4 研究展望\n\n未来的研究方向。",
        "llm.md",
        section="8.3 面临的挑战",
    )
    assert complete_lead_in("大模型面临的挑战包括但不限于： [1]", passage) == (
        "大模型面临的挑战包括但不限于：计算资源：需要大量的计算资源；过拟合：需要正则化和微调。"
    )
    english = hit(
        "Travel rules\n\nThe policy covers three costs:\n\nHotels up to 250 euros\n\nMeals up to 45 euros", "travel.md"
    )
    assert complete_lead_in("The policy covers three costs:", english) == (
        "The policy covers three costs: Hotels up to 250 euros; Meals up to 45 euros."
    )
    # Nothing announced, or a list the passage does not hold: no change.
    assert complete_lead_in("Hotels cost up to 250 euros [1].", english) is None
    assert complete_lead_in("The menu offers these dishes:", english) is None
    # The copied ellipsis after a lead-in goes too.
    assert drop_repeats("大模型面临的挑战包括但不限于： … [2]") == "大模型面临的挑战包括但不限于： [2]"


def test_drop_repeats_removes_a_loop_and_its_cut_off_tail():
    looped = "It supports 2.4 GHz [1]. It supports 5 GHz. It supports 5 GHz. It supports 5 GHz. It sup"
    assert drop_repeats(looped) == "It supports 2.4 GHz [1]. It supports 5 GHz."
    assert drop_repeats("A fine answer. Without a loop") == "A fine answer. Without a loop"
    assert drop_repeats("答案是八十度。答案是八十度。") == "答案是八十度。"
    clauses = "敲击乐器是锣鼓的编号节奏，是一种编号节奏，是一种编号节奏，是一种编号节奏，是一"
    assert drop_repeats(clauses) == "敲击乐器是锣鼓的编号节奏，是一种编号节奏，"
    assert drop_repeats("The code is 1111111111111 [1].") == "The code is 1111111111111 [1]."
    alternating = "花朵通常是白色的，花朵被白色花朵。花朵被白色花朵，花朵被白色花朵。花朵被白色花朵，"
    assert drop_repeats(alternating) == "花朵通常是白色的，花朵被白色花朵。"


def test_an_ellipsis_copied_after_the_last_sentence_is_dropped():
    # Passages mark left-out text with "…"; SmolLM2 sometimes ends its answer with one.
    assert drop_repeats("预训练后再针对任务微调。 …") == "预训练后再针对任务微调。"
    assert drop_repeats("It restarts after 10 seconds. ... [1]") == "It restarts after 10 seconds. [1]"
    # An ellipsis that is part of the sentence stays.
    assert drop_repeats("Bands include 2.4 GHz, 5 GHz…") == "Bands include 2.4 GHz, 5 GHz…"
    assert drop_repeats("Wait... then press RESET.") == "Wait... then press RESET."


def test_an_echoed_question_is_not_an_answer():
    from rag.citations import only_asks

    counties = [hit("佛蒙特州共有14个县。州府是蒙彼利埃。", "vt.md")]
    assert only_asks("佛蒙特州总共拥有多少个县[1]？")
    assert support("佛蒙特州总共拥有多少个县[1]？", counties) == 0.0
    assert not only_asks("佛蒙特州共有14个县[1]。你还想知道什么？")
    assert support("佛蒙特州共有14个县[1]。", counties) == 1.0


def test_a_rare_word_of_a_chinese_question_picks_the_sentence_over_common_ones():
    from rag.answering.quote import term_weights

    sentences = [
        "铁观音产自福建安溪，属于乌龙茶。",
        "铁观音的茶园多在山坡上。",
        "茶展上获奖的那一款来自西坪镇。",
        "铁观音产量很高，茶园很多。",
    ]
    passage = hit("".join(sentences), "tea.md")
    weights = term_weights(["茶展", "获奖", "铁观音", "茶园"], sentences)
    assert weights["茶展"] == weights["获奖"] > weights["茶园"] > weights["铁观音"]
    # With equal weights a sentence holding 铁观音 and 茶园 wins (three of the five words, with
    # 观音); but most sentences hold them: 茶展 and 获奖, held by one, decide.
    assert best_sentence("茶展上获奖的铁观音产自哪个茶园？", [passage]) == (1, sentences[2])
    # English words weigh the same: three of the question's words beat two with the rare one.
    english = hit("Tesla did receive many bids. Tesla did receive praise. The 1915 bids went to Edison.", "t.md")
    assert best_sentence("Which bids did Tesla receive in 1915?", [english]) == (1, "Tesla did receive many bids.")
