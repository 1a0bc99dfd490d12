"""Which sentences the reader reads (rag/answering/evidence.py), with the real cross-encoder."""

from rag.answering.evidence import reader_sentences, reads_language
from rag.config import Settings
from rag.documents import Chunk, SearchHit

MUSEUM = (
    "The Harbour Museum is famous for its shop, its café and its garden. "
    "The museum first welcomed visitors in 1852. A new wing was added in 1990."
)
OPENED = "The museum first welcomed visitors in 1852."


def _hit(text: str) -> SearchHit:
    chunk = Chunk(id="m", text=text, source="museum.md", page=None, section=None, kind="text", start=0, end=len(text))
    return SearchHit(chunk=chunk, score=1.0)


def test_the_cross_encoder_puts_the_sentence_that_answers_first(onnx_reranker):
    question = "When did the Harbour Museum open to the public?"
    settings = Settings.load(env={})
    lexical, _ = reader_sentences(question, [_hit(MUSEUM)], settings)
    assert lexical[0][1] != OPENED  # the sentence with more of the question's words wins on words alone
    evidence, wider = reader_sentences(question, [_hit(MUSEUM)], settings, onnx_reranker)
    assert evidence[0] == (1, OPENED)
    assert len(wider) <= settings.reader_sentences_unsure and (1, OPENED) in wider


def test_the_shipped_cross_encoder_orders_english_sentences_only(onnx_reranker):
    assert reads_language(onnx_reranker, "en") and not reads_language(onnx_reranker, "zh")
    assert not reads_language(None, "en")
