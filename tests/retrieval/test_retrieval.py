"""Retrieval over a small real index (real parser, embedder, FAISS, BM25), with and without the
ONNX reranker. The answer pipeline on top of it is tested in tests/answering/test_pipeline.py.

The index is built once per module from a handful of English and Chinese files.
"""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.documents import Chunk, SearchHit
from rag.errors import InputError
from rag.index import Index
from rag.retrieval import (
    HybridRetriever,
    SearchFilters,
    drop_near_duplicates,
    query_terms,
    term_overlap,
)
from tests.conftest import HOTELS, REPO


@pytest.fixture(scope="module")
def index(index_settings, embedder):
    return Index.open(index_settings, embedder=embedder)


@pytest.fixture(scope="module")
def retriever(index, index_settings):
    return HybridRetriever(index, index_settings)


def sources(hits):
    return [h.chunk.source for h in hits]


def make_hit(text: str, source: str, rank: int) -> SearchHit:
    chunk = Chunk(id=source, text=text, source=source, page=None, section=None, kind="text", start=0, end=len(text))
    return SearchHit(chunk=chunk, score=1 / rank, scores={}, rank=rank)


def test_hybrid_retrieval_finds_the_passage_and_drops_its_duplicate(retriever):
    result = retriever.retrieve("What is the nightly hotel limit in London?", top_k=3)
    assert result.hits[0].chunk.source in ("policies/travel.md", "policies/travel-copy.md")
    hotel_hits = [h for h in result.hits if "250 euros in London" in h.chunk.text]
    assert len(hotel_hits) == 1, sources(result.hits)
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert len(result.hits) <= 3
    assert {"rrf", "overlap"} <= set(result.hits[0].scores)
    assert set(result.timings_ms) == {"retrieve", "rerank"} and not result.reranked


def test_chinese_question_finds_the_chinese_passage(retriever):
    result = retriever.retrieve("铁观音原产于哪里？", top_k=2)
    assert result.hits[0].chunk.source == "中文/茶叶.txt"
    assert result.best_relevance >= 0.5


def test_relevance_separates_answerable_from_unrelated_questions(retriever):
    answerable = retriever.retrieve("How long do I hold the reset button on the router?").best_relevance
    unrelated = retriever.retrieve("What is the capital of Australia?").best_relevance
    unrelated_zh = retriever.retrieve("火星上有多少颗卫星？").best_relevance
    assert answerable >= 0.6
    assert unrelated <= 0.2 and unrelated_zh <= 0.2


def test_a_reworded_question_passes_the_gate_by_its_dense_margin(retriever):
    """A question sharing none of its passage's words is let through by how far the passage's
    dense score stands out; questions about nothing in the documents are not."""
    reworded = retriever.retrieve("How much can I spend on food per day when travelling for work?")
    assert reworded.best_relevance < 0.33 and reworded.dense_relevant
    assert reworded.hits[0].chunk.source.startswith("policies/travel")
    for unrelated in (
        "What is the capital of Australia?",
        "火星上有多少颗卫星？",
        "How do I bake bread?",
        "Who won the 2018 World Cup?",
    ):
        assert not retriever.retrieve(unrelated).dense_relevant, unrelated
    off = HybridRetriever(retriever.index, retriever.settings.replace(min_dense_margin=-1.0))
    assert not off.retrieve("How much can I spend on food per day when travelling for work?").dense_relevant


def test_source_and_type_filters(retriever):
    only_policies = retriever.retrieve("limit", top_k=5, filters={"source": "policies/*"})
    assert only_policies.hits and all(s.startswith("policies/") for s in sources(only_policies.hits))
    only_txt = retriever.retrieve("hotel limit London", top_k=5, filters={"type": [".txt"]})
    assert only_txt.hits and all(s.endswith(".txt") for s in sources(only_txt.hits))
    assert "policies/travel-copy.md" in sources(retriever.retrieve("hotel", filters={"source": "*copy*"}).hits)
    # A filter that leaves only a passage deep in the ranking still finds it.
    deep = retriever.retrieve("hotel limit London", top_k=5, filters={"source": ["pumps.md"]})
    assert sources(deep.hits) == ["pumps.md"]
    assert retriever.retrieve("hotel", filters={"source": "nothing/*"}).hits == []
    with pytest.raises(InputError, match="Unknown filter 'author'"):
        retriever.retrieve("hotel", filters={"author": "me"})
    with pytest.raises(InputError, match="Filters must be an object"):
        retriever.retrieve("hotel", filters="policies/*")


def test_filter_parsing():
    assert SearchFilters.parse(None) is None and SearchFilters.parse({}) is None
    parsed = SearchFilters.parse({"source": "a/*.md", "file_type": ["PDF", ".md"]})
    assert parsed.sources == ["a/*.md"] and parsed.types == ["pdf", "md"]
    chunk = make_hit("x", "a/b.md", 1).chunk
    assert parsed.matches(chunk)
    assert not SearchFilters(types=["pdf"]).matches(chunk)
    assert not SearchFilters(sources=["b/*"]).matches(chunk)


def test_near_duplicates_are_dropped_keeping_the_better_ranked():
    a = make_hit(HOTELS, "a.md", 1)
    b = make_hit(HOTELS.replace("Breakfast", "breakfast") + " ", "b.md", 2)
    c = make_hit("The daily meal allowance is 45 euros.", "c.md", 3)
    assert sources(drop_near_duplicates([a, b, c], 0.8)) == ["a.md", "c.md"]
    assert sources(drop_near_duplicates([a, b, c], 0)) == ["a.md", "b.md", "c.md"]  # 0 turns it off
    assert sources(drop_near_duplicates([a, b, c], 0.8, limit=1)) == ["a.md"]
    assert sources(drop_near_duplicates([a, b, c], 0.8, limit=2)) == ["a.md", "c.md"]  # the duplicate does not count


def test_term_overlap_matches_chinese_words_as_substrings():
    terms = query_terms("冲泡龙井茶的水温应该是多少？")
    assert "水温" in terms and "多少" not in terms and all(len(t) > 1 for t in terms)
    assert term_overlap(terms, "冲泡龙井时水温以80摄氏度左右为宜，龙井茶产于杭州。") >= 0.75
    assert term_overlap(query_terms("What is the capital of Australia?"), HOTELS) == 0


def test_a_name_jieba_does_not_know_keeps_no_function_word_glued_to_it():
    # jieba's guesser reads "王沈是" as one word; the passage says "王沈，字处道".
    terms = query_terms("王沈是哪里人？")
    assert terms == ["王沈"]
    assert term_overlap(terms, "王沈，字处道，太原晋阳人。") == 1.0
    assert "图书馆" in query_terms("图书馆是几点开门的？")  # a word jieba knows stays whole


def test_the_reranking_retriever_reranks_english_and_skips_chinese(onnx_reranker, index, index_settings):
    reranking = HybridRetriever(index, index_settings, onnx_reranker)
    english = reranking.retrieve("How long do I hold the reset button?", top_k=2)
    assert english.reranked and english.hits[0].chunk.source == "router.txt"
    chinese = reranking.retrieve("铁观音原产于哪里？", top_k=2)
    assert not chinese.reranked and chinese.hits[0].chunk.source == "中文/茶叶.txt"


@pytest.mark.slow
def test_cli_ingested_index_is_searchable(tmp_path, corpus):
    """The ingestion CLI's index, opened by the retriever (the path the service takes)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "ingest", str(corpus / "中文"), "--index-dir", str(tmp_path / "ix")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    settings = Settings.load(env={}, overrides={"index_dir": tmp_path / "ix", "device": "cpu"})
    hits = HybridRetriever.from_settings(settings).retrieve("龙井茶的冲泡水温", top_k=1).hits
    assert sources(hits) == ["茶叶.txt"]
