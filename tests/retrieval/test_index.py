"""The index's own rules (rag/index.py): how fusion weighs BM25 for a query, the dense
ranking's background level, and which embedding model an index is opened with."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.embedding import DEFAULT_EMBEDDER
from rag.index import DB_NAME, dense_background, names_a_rare_word, resolve_embed_model, rrf_fuse, sparse_weight
from rag.stores.chunk_store import ChunkStore


def test_bm25_weighs_as_much_as_its_best_passages_hold_the_question():
    assert sparse_weight(1.0, dense=1.0, power=3.0) == 1.0  # every word found: as before
    assert sparse_weight(0.5, dense=1.0, power=3.0) == pytest.approx(0.125)
    assert sparse_weight(0.0, dense=1.0, power=3.0) == 0.0  # no word found: dense decides
    assert sparse_weight(0.0, dense=0.0, power=3.0) == 1.0  # embedder can't read it: BM25 decides
    assert sparse_weight(0.5, dense=0.5, power=3.0) == pytest.approx(0.5625)
    assert sparse_weight(0.2, dense=1.0, power=0.0) == 1.0  # power 0: equal weights


def test_a_low_bm25_weight_lets_the_dense_ranking_lead():
    dense, sparse = [7, 3, 5], [1, 2, 3]
    equal = rrf_fuse([dense, sparse], 60, [1.0, 1.0])
    assert max(equal, key=equal.get) == 3  # in both lists
    weighted = rrf_fuse([dense, sparse], 60, [1.0, sparse_weight(0.2, 1.0, 3.0)])
    assert sorted(weighted, key=lambda r: -weighted[r])[:2] == [7, 3]


def test_bm25_leads_when_its_passages_hold_the_rare_name_the_question_asks_about():
    question = "基氏软汉鱼整体呈什么颜色？"
    terms = ["基氏", "软汉鱼", "整体", "颜色"]
    counts = {"基氏": 1, "软汉鱼": 1, "整体": 12, "颜色": 31}
    passage = "基氏软汉鱼为辐鳍鱼纲银汉鱼目的一种，体呈银白色。"
    assert names_a_rare_word(question, terms, counts, 2000, [passage])
    # BM25's passages do not hold it: the name was not found
    assert not names_a_rare_word(question, terms, counts, 2000, ["金钱鱼体呈银白色。"])
    # the rarest word is held by many passages (0.5% of them at most is rare)
    assert not names_a_rare_word(question, terms, dict.fromkeys(terms, 40), 2000, [passage])
    # a rarest word no passage holds names nothing that was found
    assert not names_a_rare_word(question, terms, dict(counts, 整体=0), 2000, [passage])


def test_a_common_word_rare_in_a_small_corpus_is_no_name():
    # "开车" is held by one passage of 200, but it is a word jieba knows, not a name
    question = "临开车两天内不走了，要扣多少钱？"
    terms = ["临", "开车", "两天", "扣"]
    counts = {"临": 3, "开车": 1, "两天": 4, "扣": 5}
    assert not names_a_rare_word(question, terms, counts, 200, ["开车前两天退票，收取票价的百分之二十。"])
    # nor is an English word, rare or not
    assert not names_a_rare_word(
        "What is the Zephyr pump?",
        ["zephyr", "pump"],
        {"zephyr": 1, "pump": 2},
        200,
        ["The Zephyr pump runs at 3400 rpm."],
    )


def test_dense_background_is_the_mean_of_places_2_to_10():
    scores = [0.9] + [0.5] * 9 + [0.1] * 5
    assert dense_background(scores) == pytest.approx(0.5)
    assert dense_background([0.9]) == 0.0
    assert dense_background([0.9, 0.4, 0.2]) == pytest.approx(0.3)


def _index_with_model(directory, model):
    directory.mkdir(parents=True)
    store = ChunkStore(directory / DB_NAME)
    store.begin()
    store.set_meta({"embed_model": model, "generation": 0})
    store.commit()
    store.close()


def test_auto_opens_an_index_with_the_model_it_records(tmp_path):
    auto = Settings.load(env={}, overrides={"index_dir": tmp_path / "ix"})
    assert resolve_embed_model(auto).embed_model == DEFAULT_EMBEDDER  # no index yet
    _index_with_model(tmp_path / "ix", "all-MiniLM-L6-v2")
    assert resolve_embed_model(auto).embed_model == "all-MiniLM-L6-v2"
    assert resolve_embed_model(auto, rebuild=True).embed_model == DEFAULT_EMBEDDER
    named = auto.replace(embed_model="use-multilingual-v3")
    assert resolve_embed_model(named) is named  # a named model stays

    class Given:
        name = "my-embedder"

    assert resolve_embed_model(auto, embedder=Given()).embed_model == "my-embedder"
