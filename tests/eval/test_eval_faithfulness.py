"""The offline faithfulness judge separates supported from unsupported sentences."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eval.faithfulness import LexicalJudge, LLMJudge, answer_sentences
from tests.conftest import shared_path

EN = (
    "The Panthers defense gave up just 308 points, ranking sixth in the league. "
    "Pro Bowl defensive tackle Kawann Short led the team in sacks with 11, while also forcing three fumbles. "
    "The team played its home games at Bank of America Stadium in Charlotte."
)
ZH = "龙井茶产于浙江杭州西湖一带。冲泡龙井茶的水温应该在80摄氏度左右，水太烫会把嫩芽烫熟。铁观音原产于福建安溪。"

SUPPORTED = [
    ("The Panthers defense gave up 308 points.", EN),
    ("Kawann Short led the team in sacks with 11.", EN),
    ("How many points did the Panthers defense surrender: 308.", EN),
    ("冲泡龙井茶的水温应该在80摄氏度左右。", ZH),
    ("根据文档，铁观音原产于福建安溪。", ZH),
]
UNSUPPORTED = [
    ("The Panthers defense gave up 412 points.", EN),  # wrong number
    ("Tom Brady led the team in sacks with 11.", EN),  # wrong name
    ("The team played its home games at Wembley Stadium.", EN),  # wrong place
    ("The stadium has a retractable roof and heated seats.", EN),  # not in the passage at all
    ("冲泡龙井茶的水温应该在100摄氏度。", ZH),  # wrong number
    ("铁观音原产于云南西双版纳。", ZH),  # fabricated place
    ("龙井茶富含维生素并能治疗感冒。", ZH),  # not said
]


@pytest.fixture(scope="module")
def judge():
    return LexicalJudge()


@pytest.mark.parametrize("sentence,passage", SUPPORTED)
def test_supported_sentences_pass(judge, sentence, passage):
    assert judge.supports(sentence, passage, question="How many points did the Panthers defense surrender?")


@pytest.mark.parametrize("sentence,passage", UNSUPPORTED)
def test_unsupported_sentences_fail(judge, sentence, passage):
    assert not judge.supports(sentence, passage)


def test_failures_say_why(judge):
    assert "412" in judge.support("The Panthers defense gave up 412 points.", EN).missing
    assert judge.support("铁观音原产于云南西双版纳。", ZH).novel  # the run of characters found nowhere


def test_question_words_may_be_restated(judge):
    sentence = "The AX-3000 resets after you hold the button for 10 seconds."
    passage = "Press and hold the RESET button on the back for 10 seconds. The router restarts."
    assert not judge.supports(sentence, passage)
    assert judge.supports(sentence, "AX-3000 FAQ.\n\n" + passage, question="How do I reset the AX-3000?")


def test_answer_sentences_keep_their_citations():
    text = "The limit is 250 euros [1]. Meals are 45 euros. [2][3] 龙井茶产于杭州【1】。"
    assert answer_sentences(text) == [
        ("The limit is 250 euros.", [1]),
        ("Meals are 45 euros.", [2, 3]),
        ("龙井茶产于杭州。", [1]),
    ]


def test_judge_scores_an_answer_and_its_citations(judge):
    other = "The hotel limit in London is 250 euros per night."
    answer = (
        "The Panthers defense gave up 308 points [1]. Kawann Short led the team in sacks with 11 [2]. "
        "Tom Brady scored twice [1]."
    )
    result = judge.judge(answer, [EN, other], cited={1: EN, 2: other})
    assert [v.supported for v in result.sentences] == [True, True, False]
    assert result.score == pytest.approx(2 / 3)
    # three citations: [1] supports sentence 1; [2] points at the hotel passage; [1] cannot support sentence 3
    assert result.citation_precision == pytest.approx(1 / 3)
    assert result.sentences[1].passage == 0


def test_nothing_to_judge(judge):
    result = judge.judge("Yes.", [EN])
    assert result.score is None and result.citation_precision is None


def test_llm_judge_with_a_scripted_generator():
    replies = iter(["- The Panthers gave up 308 points.\n- Kawann Short had 12 sacks.", "Yes.", "No, 11."])
    calls = []

    class Scripted:
        def generate(self, messages, max_new_tokens=None, stop=None):
            calls.append(messages)
            return SimpleNamespace(text=next(replies))

    result = LLMJudge(Scripted()).judge("The Panthers gave up 308 points and Short had 12 sacks [1].", [EN])
    assert [c["claim"] for c in result.claims] == ["The Panthers gave up 308 points.", "Kawann Short had 12 sacks."]
    assert [c["supported"] for c in result.claims] == [True, False]
    assert result.score == 0.5
    assert "[1] The Panthers defense" in calls[1][0]["content"]


def test_judge_accuracy_on_a_labelled_sample():
    """The check `python -m eval.judge_check` runs, on a small sample of the shared QA sets."""
    from eval.judge_check import run_check

    data = shared_path("data")
    result = run_check(data, ["xquad-en", "cmrc2018"], per_set=80, seed=3)
    overall = result["all_at_shipped"]["overall"]
    assert overall["n"] > 600
    assert overall["accuracy"] > 0.78
    assert overall["true_positive_rate"] > 0.8 and overall["true_negative_rate"] > 0.7
