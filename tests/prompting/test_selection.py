"""Context selection keeps the sentences that bear on the question, within a token budget."""

from __future__ import annotations

from rag.generation.base import estimate_tokens
from rag.selection import select_context

PASSAGES = [
    "The Zephyr pump was built in 1990. It was designed by Anna Berg in Oslo. The factory closed in 2004. "
    "Sales were strong in Norway. The museum shows one today.",
    "Weather in Oslo is cold. The Zephyr pump runs at 3400 rpm and is serviced every year.",
    "长城是中国古代的军事防御工程。长城全长约两万一千公里。它始建于春秋战国时期。现在是著名的旅游景点。",
]


def test_the_sentences_holding_the_question_words_are_kept_in_order():
    picked = select_context("Who designed the Zephyr pump?", PASSAGES, 45, estimate_tokens)
    assert "designed by Anna Berg" in picked[0]
    assert picked[0].index("built in 1990") < picked[0].index("designed by")  # document order
    assert "museum" not in picked[0] and picked[0].endswith("…")  # cut text is marked
    assert picked[2] == ""  # nothing relevant there


def test_the_budget_is_respected():
    for budget in (10, 25, 60):
        picked = select_context("How fast does the Zephyr pump run?", PASSAGES, budget, estimate_tokens)
        kept = sum(estimate_tokens(t.replace("…", "")) for t in picked)
        assert kept <= budget + 2
    assert "3400 rpm" in select_context("How fast does the Zephyr pump run?", PASSAGES, 25, estimate_tokens)[1]


def test_chinese_questions_pick_chinese_sentences_and_their_neighbours():
    picked = select_context("长城全长多少公里？", PASSAGES, 40, estimate_tokens)
    assert "两万一千公里" in picked[2]
    assert picked[2].startswith("长城是中国古代")  # the sentence before came along as context
    assert "…" not in picked[2][:3]


def test_a_question_sharing_no_word_keeps_the_opening_sentences():
    picked = select_context("What colour is the sky?", PASSAGES, 20, estimate_tokens)
    assert picked[0].startswith("The Zephyr pump was built in 1990.")
    assert select_context("anything?", [], 50, estimate_tokens) == []
    assert select_context("anything?", ["", "  "], 50, estimate_tokens) == ["", ""]
