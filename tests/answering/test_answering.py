"""The answer pipeline's last stages: the checks, in order, on a scripted generator's text, and
the short answer read by the real default model over a real index."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag.answering import AnswerPipeline
from rag.answering.checks import GENERATE_CHECKS, READ_CHECKS, Context, Draft, append_marker, run_checks
from rag.config import Settings
from rag.documents import Span
from tests.generators import ScriptedGenerator, default_generator

MEALS = "What is the daily meal allowance on business trips?"


def _pipeline(settings, *texts: str) -> AnswerPipeline:
    return AnswerPipeline(settings.replace(answer_mode="generate"), generator=ScriptedGenerator(*texts))


def test_the_checks_of_a_generated_answer_run_in_their_order(index_settings):
    names = [c.name for c in GENERATE_CHECKS]
    assert names == [
        "repeats",
        "markers",
        "model_refused",
        "supported",
        "attributed",
        "lead_in",
        "instructions",
        "leak",
    ]

    looped = "The daily meal allowance is 45 euros【1】. The daily meal allowance is 45 euros【1】."
    answer = _pipeline(index_settings, looped).answer(MEALS, top_k=2)
    assert answer.answer == "The daily meal allowance is 45 euros[1]."
    assert [c["check"] for c in answer.checks] == names
    assert [c["action"] for c in answer.checks] == [
        "replace",
        "replace",
        "keep",
        "keep",
        "keep",
        "keep",
        "keep",
        "keep",
    ]

    # A refusal ends the list there.
    refused = _pipeline(index_settings, "I could not find that in the passages.").answer(MEALS, top_k=2)
    assert not refused.answerable
    assert [c["check"] for c in refused.checks] == ["repeats", "markers", "model_refused"]
    assert refused.checks[-1]["action"] == "refuse"

    # A made-up figure gives way to the passage sentence, then gets its citation.
    made_up = _pipeline(index_settings, "The daily meal allowance is 60 euros.").answer(MEALS, top_k=2)
    assert made_up.answer == "The daily meal allowance is 45 euros on business trips [1]."
    supported = next(c for c in made_up.checks if c["check"] == "supported")
    assert supported["action"] == "replace" and "not in the passages" in supported["reason"]

    # No marker: cited to the passage that holds the words.
    bare = _pipeline(index_settings, "The daily meal allowance is 45 euros.").answer(MEALS, top_k=2)
    assert bare.answer.endswith("45 euros [1].") and bare.citations[0].source.startswith("policies/travel")
    assert next(c for c in bare.checks if c["check"] == "attributed")["action"] == "replace"
    assert bare.to_dict()["checks"] == bare.checks


def test_a_read_answer_that_only_echoes_the_question_gives_way_to_its_sentence():
    evidence = Span(1, 0, 40, "Internet2 is a computer networking group.")
    draft = Draft(append_marker("Internet2", 1), [1], Span(1, 0, 9, "Internet2"), evidence, 0.4)
    context = Context("what is Internet2", "what is Internet2", "en", [])
    outcome = run_checks(READ_CHECKS, draft, context)
    assert outcome.draft.text == "Internet2 is a computer networking group [1]."
    assert [(c["check"], c["action"]) for c in outcome.log] == [
        ("table_cell", "keep"),
        ("confident", "keep"),
        ("no_answer", "keep"),
        ("sure", "keep"),
        ("trimmed", "keep"),
        ("key_value", "keep"),
        ("whole", "keep"),
        ("unit", "keep"),
        ("echo", "replace"),
        ("instructions", "keep"),
        ("leak", "keep"),
    ]
    # Unless the question offers a choice of its own words.
    choice = run_checks(READ_CHECKS, draft, Context("Is it Internet2 or NSFNET?", "", "en", []))
    assert choice.draft.text == "Internet2 [1]"
    unsure = run_checks(READ_CHECKS, draft, Context("what is Internet2", "", "en", [], min_confidence=0.5))
    assert unsure.draft is None and unsure.log[-1]["action"] == "refuse"
    # The reader itself found "the passage does not say" likelier than the span.
    declined = run_checks(
        READ_CHECKS, replace(draft, no_answer=1.2), Context("what is Internet2", "", "en", [], no_answer_margin=0.5)
    )
    assert declined.draft is None and [c["check"] for c in declined.log] == ["table_cell", "confident", "no_answer"]


def test_the_question_s_own_words_are_cut_off_a_short_answer():
    from rag.answering.checks import trim_echo

    def trimmed(span: str, question: str) -> str:
        start, end = trim_echo(span, question)
        return span[start : len(span) - end]

    assert trimmed("45 euros on business trips", MEALS) == "45 euros"
    assert trimmed("锣鼓点", "锣鼓经常用的节奏型称为什么？") == "锣鼓点"  # Chinese spans are left whole
    assert trimmed("New York", "Which is larger, New York or Boston?") == "New York"  # nothing would be left
    assert trimmed("515 million years ago", "How old are the fossils?") == "515 million years ago"
    # a possessive is the question's word too ("what Oxford tower?")
    assert trimmed("Oxford's Magdalen Tower", "The Mitchell Tower looks like what Oxford tower?") == "Magdalen"
    passage = "The daily meal allowance is 45 euros on business trips."
    start = passage.index("45")
    draft = Draft(
        "45 euros on business trips [1]",
        [1],
        Span(1, start, len(passage) - 1, passage[start:-1]),
        Span(1, 0, len(passage), passage),
        0.5,
    )
    outcome = run_checks(READ_CHECKS, draft, Context(MEALS, MEALS, "en", []))
    assert outcome.draft.text == "45 euros [1]"
    assert passage[outcome.draft.span.start : outcome.draft.span.end] == outcome.draft.span.text == "45 euros"


def test_markers_go_where_a_reader_expects_them():
    assert append_marker("45 euros", 1) == "45 euros [1]"
    assert append_marker("七点半", 2) == "七点半[2]"
    assert append_marker("It is 45 euros.", 1) == "It is 45 euros [1]."
    assert append_marker("每天七点半开门。", 1) == "每天七点半开门[1]。"


@pytest.fixture(scope="module")
def reading(index_settings):
    return AnswerPipeline(index_settings.replace(answer_mode="read"), generator=default_generator())


@pytest.mark.slow
def test_the_short_answer_is_the_fact_with_its_place_in_the_passage(reading):
    answer = reading.answer(MEALS, top_k=2)
    assert answer.answerable
    assert answer.answer == "45 euros [1]"
    span = answer.answer_span
    passage = answer.passages[span.passage - 1].chunk.text
    assert passage[span.start : span.end] == span.text == "45 euros"
    assert answer.evidence.text == "The daily meal allowance is 45 euros on business trips."
    assert passage[answer.evidence.start : answer.evidence.end] == answer.evidence.text
    assert answer.citations[0].source.startswith("policies/travel") and 0 < answer.confidence <= 1
    assert answer.timings_ms["read"] > 0 and answer.model == Settings().generator_model
    # Streaming gives the same short answer, in one piece.
    events = list(reading.stream(MEALS, top_k=2))
    assert [e["type"] for e in events] == ["retrieval", "token", "done"]
    assert events[1]["text"] == answer.answer == events[-1]["answer"]["answer"]
    assert events[-1]["answer"]["answer_span"]["text"] == "45 euros"


@pytest.mark.slow
def test_the_short_answer_reads_a_figure_and_refuses_what_is_not_there(reading):
    pump = reading.answer("How fast does the Zephyr pump run?", top_k=2)
    assert pump.answer_span is not None and "3400 rpm" in pump.answer_span.text, pump.answer
    assert len(pump.answer_span.text) <= len("3400 rpm and is serviced yearly")
    refused = reading.answer("What is the capital of Australia?")
    assert not refused.answerable and refused.answer_span is None
