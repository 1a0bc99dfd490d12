"""Answer, refusal and retrieval metrics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (
    bootstrap_ci,
    contains_answer,
    exact_match,
    f1_score,
    mean_with_ci,
    normalize_en,
    paired_bootstrap,
    retrieval_scores,
    same_document,
    score_answer,
    strip_citations,
    supporting_scores,
    tokens_en,
    tokens_zh,
)

# --- normalisation -------------------------------------------------------------------------


def test_english_normalisation_follows_squad():
    assert normalize_en("The  Cat's hat!") == "cats hat"
    assert normalize_en("An apple, a day.") == "apple day"
    assert tokens_en("“Theory” of everything") == ["theory", "of", "everything"]


def test_chinese_tokens_are_characters_with_english_words_and_numbers_whole():
    assert tokens_zh("《战国无双3》是由光荣和ω-force开发") == [
        "战",
        "国",
        "无",
        "双",
        "3",
        "是",
        "由",
        "光",
        "荣",
        "和",
        "ω",
        "force",
        "开",
        "发",
    ]
    assert tokens_zh("GPT-4 模型，2023年。") == ["gpt", "4", "模", "型", "2023", "年"]


def test_strip_citations():
    assert strip_citations("It is 14 days [1][2]. Also [1, 3] this【2】") == "It is 14 days. Also this"


# --- EM / F1 -----------------------------------------------------------------------------------


def test_english_em_and_f1():
    assert exact_match("The Eiffel Tower.", "eiffel tower", "en") == 1.0
    assert exact_match("Eiffel", "eiffel tower", "en") == 0.0
    # pred [14, days, before] vs gold [14, days]: P = 2/3, R = 1, F1 = 0.8
    assert f1_score("the 14 days before", "14 days", "en") == pytest.approx(0.8)
    # bag of words: order does not matter in English
    assert f1_score("days 14", "14 days", "en") == pytest.approx(1.0)
    assert f1_score("nothing here", "14 days", "en") == 0.0


def test_chinese_f1_uses_the_longest_common_run():
    # pred 8 tokens [水 温 80 摄 氏 度 左 右], gold 4 tokens, common run 4: P = .5, R = 1, F1 = 2/3
    assert f1_score("水温80摄氏度左右", "80摄氏度", "zh") == pytest.approx(2 / 3)
    # same characters, scrambled: the longest common run is 1 token, P = R = 1/4
    assert f1_score("度氏摄80", "80摄氏度", "zh") == pytest.approx(0.25)
    assert exact_match("80 摄氏度。", "80摄氏度", "zh") == 1.0


def test_mixed_text_scores_english_words_as_tokens_inside_chinese():
    assert exact_match("GPT-4模型", "gpt 4 模型", "zh") == 1.0
    # pred [使 用 bert 模 型] vs gold [bert 模 型]: run 3, P = 3/5, R = 1, F1 = .75
    assert f1_score("使用BERT模型", "BERT模型", "zh") == pytest.approx(0.75)
    # Chinese characters inside an English answer count one by one
    assert f1_score("the city of 北京", "北京", "en") == pytest.approx(2 * (2 / 4) / (2 / 4 + 1))


def test_empty_texts():
    assert f1_score("", "14 days", "en") == 0.0
    assert f1_score("", "", "en") == 1.0
    assert exact_match("!!!", "", "en") == 1.0  # both normalise to nothing
    s = score_answer("", refused=False, answers=["14 days"], lang="en")
    assert (s.exact_match, s.f1, s.answer_accuracy) == (0.0, 0.0, 0.0)


def test_best_alternative_counts():
    s = score_answer("It is 250 euros per night [1].", refused=False, answers=["250 euros", "€250"], lang="en")
    assert s.answer_accuracy == 1.0
    # pred [it is 250 euros per night] vs [250 euros]: P = 2/6, R = 1, F1 = .5
    assert s.f1 == pytest.approx(0.5)
    assert s.exact_match == 0.0
    assert score_answer("250 euros [1]", False, ["€250", "250 euros"]).exact_match == 1.0


# --- accuracy, refusals, all-of groups -------------------------------------------------------


def test_accuracy_is_containment_of_whole_tokens():
    assert contains_answer("Open http://192.168.50.1 in a browser", ["192.168.50.1"], [], "en")
    assert not contains_answer("Book 140 days ahead", ["14"], [], "en")
    assert contains_answer("龙井茶用80摄氏度左右的水冲泡。", ["80摄氏度"], [], "zh")
    assert not contains_answer("龙井茶用90摄氏度的水冲泡。", ["80摄氏度"], [], "zh")


def test_answers_all_of_needs_every_item_of_a_group():
    groups = [["2.4 GHz", "5 GHz"]]
    both = score_answer("It broadcasts on 2.4 GHz and 5 GHz.", False, [], groups, lang="en")
    one = score_answer("It broadcasts on 5 GHz.", False, [], groups, lang="en")
    assert both.answer_accuracy == 1.0
    assert one.answer_accuracy == 0.0
    # F1 against the group joined: pred [it broadcasts on 24 ghz and 5 ghz] (8) vs [24 ghz 5 ghz] (4)
    assert both.f1 == pytest.approx(2 * (4 / 8) * 1 / (4 / 8 + 1))


def test_refusals():
    right = score_answer("I could not find it.", refused=True, answers=[], answerable=False)
    missed = score_answer("Canberra.", refused=False, answers=[], answerable=False)
    wrong = score_answer("I could not find it.", refused=True, answers=["14 days"])
    assert (right.exact_match, right.f1, right.answer_accuracy, right.correct_refusal) == (1, 1, 1, 1)
    assert (missed.answer_accuracy, missed.correct_refusal, missed.wrong_refusal) == (0, 0, None)
    assert (wrong.answer_accuracy, wrong.f1, wrong.wrong_refusal, wrong.correct_refusal) == (0, 0, 1, None)
    assert score_answer("14 days", False, ["14 days"]).wrong_refusal == 0.0


# --- retrieval ---------------------------------------------------------------------------------


def test_retrieval_metrics_by_document():
    # passages from b, a, a, c: documents ranked b, a, c
    s = retrieval_scores(["b.txt", "a.txt", "a.txt", "c.txt"], ["a.txt"], [1, 3])
    assert s["recall@1"] == 0.0
    assert s["recall@3"] == 1.0
    assert s["mrr"] == 0.5
    assert s["ndcg@1"] == 0.0
    assert s["ndcg@3"] == pytest.approx(1 / math.log2(3))


def test_retrieval_with_two_gold_documents():
    s = retrieval_scores(["b", "a", "c"], ["a", "c"], [1, 2, 3])
    assert (s["recall@1"], s["recall@2"], s["recall@3"]) == (0.0, 0.5, 1.0)
    ideal = 1 + 1 / math.log2(3)
    assert s["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert s["mrr"] == 0.5


def test_retrieval_miss_and_paths():
    s = retrieval_scores(["x", "y"], ["a"], [5])
    assert (s["recall@5"], s["mrr"], s["ndcg@5"]) == (0.0, 0.0, 0.0)
    assert same_document("docs/a.txt", "a.txt")
    assert same_document("a.txt", "cmrc2018/docs/a.txt")
    assert not same_document("ba.txt", "a.txt")
    assert retrieval_scores(["docs/a.txt"], ["a.txt"], [1])["recall@1"] == 1.0


def test_supporting_recall_needs_every_gold_document():
    both = supporting_scores(["x.txt", "docs/b.txt", "a.txt", "a.txt"], ["a.txt", "b.txt"])
    one = supporting_scores(["x.txt", "a.txt"], ["a.txt", "b.txt"])
    assert both == {"supporting_recall": 1.0, "supporting_fraction": 1.0}
    assert one == {"supporting_recall": 0.0, "supporting_fraction": 0.5}
    # one gold document named twice is one document to find
    assert supporting_scores(["a.txt"], ["a.txt", "a.txt"])["supporting_recall"] == 1.0
    assert supporting_scores([], ["a.txt", "b.txt", "c.txt"]) == {"supporting_recall": 0.0, "supporting_fraction": 0.0}


# --- confidence intervals and significance ------------------------------------------------------


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1] * 5
    low, high = bootstrap_ci(values, seed=3)
    assert (low, high) == bootstrap_ci(values, seed=3)
    assert low < 0.7 < high
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    m = mean_with_ci([1, None, 0, None])
    assert (m["mean"], m["n"]) == (0.5, 2)


def test_paired_bootstrap():
    same = paired_bootstrap([1, 0, 1, 0], [1, 0, 1, 0])
    assert (same.diff, same.p_value, same.significant) == (0.0, 1.0, False)
    better = paired_bootstrap([0] * 30, [1] * 25 + [0] * 5)
    assert better.diff == pytest.approx(25 / 30)
    assert better.significant and better.ci_low > 0
    noisy = paired_bootstrap([1, 0, 1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 1, 0, 1, 1])
    assert not noisy.significant and noisy.ci_low < 0 < noisy.ci_high
    with pytest.raises(ValueError, match="the same number of scores in both runs"):
        paired_bootstrap([1, 2], [1])


def test_point_coverage_is_the_share_of_each_reference_point_the_answer_states():
    from eval.metrics import point_coverage

    points = ["都注重数学基础", "数据计算专业强调交叉融合"]
    assert point_coverage("两个专业都注重数学基础。[1]", points, "zh") == pytest.approx((1.0 + 2 / 12) / 2, abs=1e-3)
    assert point_coverage("", points, "zh") == 0.0
    assert point_coverage("anything", [], "en") is None
    assert (
        point_coverage("Both train strong maths [1]; only one stresses data", ["both train strong maths"], "en") == 1.0
    )
