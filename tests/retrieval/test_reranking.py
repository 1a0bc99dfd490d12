"""The rerankers (rag/reranking.py): the default ONNX cross-encoder orders passages by how well they
answer a query, and ``rerank`` reorders search hits by its scores."""

from __future__ import annotations

from rag.documents import Chunk, SearchHit
from rag.reranking import rerank
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
