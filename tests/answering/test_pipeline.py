"""The answer pipeline over a small real index (real parser, embedder, FAISS, BM25): refusals,
quote mode, a missing index, and answers from the language model.

The index is built once per module from a handful of English and Chinese files. The refusal runs
in the fast tier; tests that build pipelines of their own (each loads the embedder) or need the
language model are marked slow.
"""

from __future__ import annotations

import re
import shutil

import pytest

from rag.answering import AnswerPipeline
from rag.config import Settings
from rag.errors import IndexMissingError, InputError
from rag.ingestion import ingest_folder
from tests.ingest_cli import sources


def test_pipeline_refuses_without_the_model_when_nothing_is_relevant(index_settings):
    pipeline = AnswerPipeline.from_settings(index_settings.replace(min_relevance=0.3))
    answer = pipeline.answer("What is the capital of Australia?")
    assert answer.answer == "I could not find the answer in the documents."
    assert not answer.answerable and answer.citations == [] and answer.language == "en"
    assert set(answer.timings_ms) == {"rewrite", "retrieve", "rerank", "read", "generate", "total"}
    assert answer.timings_ms["generate"] == 0 and answer.usage == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_tokens": 0,
    }
    zh = pipeline.answer("火星上有多少颗卫星？")
    assert zh.answer == "文档中没有找到答案。" and not zh.answerable and zh.language == "zh"
    events = list(pipeline.stream("What is the capital of Australia?"))
    assert [e["type"] for e in events] == ["retrieval", "token", "done"]
    assert events[-1]["answer"]["answerable"] is False
    assert pipeline.generator.load_info == {}  # the model was never loaded


@pytest.mark.slow
def test_quote_mode_answers_with_the_passage_sentence_without_the_model(index_settings):
    from rag.errors import ConfigError

    pipeline = AnswerPipeline.from_settings(index_settings.replace(answer_mode="quote"))
    answer = pipeline.answer("What is the daily meal allowance on business trips?", top_k=2)
    assert answer.answerable and answer.model == "quote"
    assert answer.answer == "The daily meal allowance is 45 euros on business trips [1]."
    assert answer.citations[0].number == 1 and answer.citations[0].source.startswith("policies/travel")
    zh = pipeline.answer("铁观音原产于哪里？")
    assert zh.answer == "铁观音原产于福建安溪，属于乌龙茶[1]。" and zh.citations[0].source == "中文/茶叶.txt"
    # Streaming gives the same answer in one piece; nothing relevant is still a refusal.
    events = list(pipeline.stream("铁观音原产于哪里？"))
    assert [e["type"] for e in events] == ["retrieval", "token", "done"]
    assert events[1]["text"] == zh.answer == events[-1]["answer"]["answer"]
    refused = pipeline.answer("What is the capital of Australia?")
    assert not refused.answerable and refused.citations == []
    assert pipeline.generator.load_info == {}  # the model was never loaded
    with pytest.raises(ConfigError, match="answer_mode"):
        AnswerPipeline.from_settings(index_settings.replace(answer_mode="summarise"))
    # One question can pick its mode; a bad one is the caller's error.
    generating = AnswerPipeline.from_settings(index_settings)
    assert generating.answer("铁观音原产于哪里？", answer_mode="quote").answer == zh.answer
    with pytest.raises(InputError, match="answer_mode"):
        generating.answer("铁观音原产于哪里？", answer_mode="summarise")
    assert generating.generator.load_info == {}


@pytest.mark.slow
def test_pipeline_reports_a_missing_index_and_picks_up_a_new_one(tmp_path, corpus, embedder):
    settings = Settings.load(env={}, overrides={"index_dir": tmp_path / "index", "device": "cpu", "min_relevance": 0.3})
    pipeline = AnswerPipeline.from_settings(settings)
    with pytest.raises(IndexMissingError, match="python -m ingest"):
        pipeline.answer("What is the capital of Australia?")
    one = tmp_path / "one"
    shutil.copytree(corpus / "中文", one)
    ingest_folder(one, settings, embedder=embedder)
    first = pipeline.answer("How fast does the Zephyr pump run?")
    assert "pumps.md" not in sources(first.passages)
    shutil.copy(corpus / "pumps.md", one / "pumps.md")
    ingest_folder(one, settings, embedder=embedder)
    second = pipeline.answer("How fast does the Zephyr pump run?")  # same pipeline, newer index
    assert sources(second.passages)[0] == "pumps.md"


@pytest.fixture(scope="module")
def pipeline(index_settings):
    from tests.generators import shared_smollm2

    pipeline = AnswerPipeline(index_settings.replace(answer_mode="generate"), generator=shared_smollm2())
    pipeline.warm_up()
    return pipeline


@pytest.mark.slow
def test_pipeline_answers_an_english_question_with_a_citation(pipeline):
    answer = pipeline.answer("What is the daily meal allowance on business trips?", top_k=2)
    assert answer.answerable, answer.answer
    assert "45" in answer.answer
    assert answer.citations and answer.citations[0].source.startswith("policies/travel")
    assert f"[{answer.citations[0].number}]" in answer.answer
    assert answer.usage["prompt_tokens"] > 0 and answer.usage["completion_tokens"] > 0
    assert answer.timings_ms["generate"] > 0 and answer.timings_ms["total"] >= answer.timings_ms["generate"]
    assert answer.model == "SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_pipeline_streams_the_same_answer(pipeline):
    question = "How long do I hold the reset button on the router?"
    events = list(pipeline.stream(question, top_k=2))
    assert events[0]["type"] == "retrieval" and events[0]["passages"]
    assert events[-1]["type"] == "done"
    tokens = "".join(e["text"] for e in events if e["type"] == "token")
    done = events[-1]["answer"]
    assert tokens.strip() and done["answer"]
    if done["answerable"]:
        assert "10" in done["answer"] and done["citations"]
    whole = pipeline.answer(question, top_k=2)
    assert whole.answer == done["answer"]


@pytest.mark.slow
def test_pipeline_resolves_a_follow_up(pipeline):
    history = [
        {"role": "user", "content": "What is the nightly hotel limit in London?"},
        {"role": "assistant", "content": "The nightly hotel limit in London is 250 euros [1]."},
    ]
    answer = pipeline.answer("And in most other cities?", history=history, top_k=2)
    assert "hotel" in answer.query.lower()
    assert answer.timings_ms["rewrite"] > 0
    assert sources(answer.passages)[0].startswith("policies/travel")


class _SaysNoToOneSentence:
    """A reader's generator that finds no answer in one sentence and, given several, the first
    figure in them: what the pipeline does when the best sentence does not answer."""

    name = "scripted-reader"
    context_window = 2048

    def __init__(self) -> None:
        self.reads: list[list[str]] = []

    def warm_up(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def extract(self, messages, texts, prefix="", method="span", starts=4, max_tokens=16, no_answer="", near=""):
        from rag.generation.spans import Extraction

        self.reads.append(list(texts))
        if len(texts) == 1:
            return Extraction(0, 0, 3, -9.0, -3.0, 1, 100, no_answer_logprob=-0.5)
        which = next(i for i, text in enumerate(texts) if re.search(r"\d+", text))
        figure = re.search(r"\d+", texts[which])
        return Extraction(which, figure.start(), figure.end(), -0.5, -0.2, 1, 100, no_answer_logprob=-6.0)


def test_when_the_best_sentence_does_not_answer_the_reader_reads_the_next_ones(index_settings):
    generator = _SaysNoToOneSentence()
    pipeline = AnswerPipeline(index_settings.replace(answer_mode="read"), generator=generator)
    answer = pipeline.answer("Is breakfast included in the nightly hotel limit?")
    assert [len(texts) for texts in generator.reads] == [1, len(generator.reads[1])]
    assert len(generator.reads[1]) > 1 and generator.reads[0][0] in generator.reads[1]
    assert answer.answerable and answer.answer == "180 euros [1]"  # the unit check still ran
    assert answer.checks[0]["check"] == "reader" and "did not answer" in answer.checks[0]["reason"]
    assert answer.usage["prompt_tokens"] == 200  # both reads are counted
