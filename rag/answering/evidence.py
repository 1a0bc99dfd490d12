"""Which sentences the reader reads: the lexical ranking, reordered by a cross-encoder.

:func:`~rag.answering.quote.ranked_with_shares` ranks a passage's sentences by the question's
words they hold. A question reworded from its passage ("When did the museum open to the
public?" / "Its doors first opened to visitors in 1852.") leaves the answer one or two places
down, under a sentence that repeats the question's words; a cross-encoder reads the question
and each sentence together and sees the difference. Where the reranker reads the question's
language, the best ``limit`` sentences of the lexical ranking are put in its order (equal
scores keep the lexical order); elsewhere the lexical order stands.

Settings: ``reader_rerank`` (on) and ``reader_rerank_sentences`` (8); figures in README,
"The reader".
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.answering.quote import ranked_with_shares
from rag.config import Settings
from rag.documents import SearchHit
from rag.reranking import Reranker

# The reader weighs reader_sentences_unsure sentences when the best one holds less than this
# share of the question's words, else reader_sentences.
UNSURE_SHARE = 0.5


def reads_language(reranker: Reranker | None, language: str) -> bool:
    """Whether ``reranker`` reads questions in ``language``."""
    if reranker is None:
        return False
    languages = getattr(reranker, "languages", None)
    return languages is None or language in languages


def reordered(reranker: Reranker, query: str, ranked: Sequence[tuple[int, str, float]]) -> list[tuple[int, str, float]]:
    """``ranked`` ((passage number, sentence, share), best first) in the order ``reranker``
    scores the sentences for ``query`` (equal scores in their first order)."""
    if len(ranked) < 2:
        return list(ranked)
    scores = reranker.score(query, [sentence for _, sentence, _ in ranked])
    order = sorted(range(len(ranked)), key=lambda i: (-scores[i], i))
    return [ranked[i] for i in order]


def reader_sentences(
    query: str, passages: Sequence[SearchHit], settings: Settings, reranker: Reranker | None = None
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The (passage number, sentence) pairs the reader reads first, and those it reads when
    they do not answer: the best ``reader_sentences_unsure`` (in ``reranker``'s order when one
    is given, chosen from the best ``reader_rerank_sentences``)."""
    wanted = max(1, settings.reader_sentences)
    limit = max(wanted, settings.reader_sentences_unsure)
    ranked = ranked_with_shares(query, passages, max(limit, settings.reader_rerank_sentences) if reranker else limit)
    if reranker is not None:
        ranked = reordered(reranker, query, ranked)
    ranked = ranked[:limit]
    wider = [(number, sentence) for number, sentence, _ in ranked]
    # The best sentence holding few of the question's words may be the wrong one (a question
    # reworded from its passage): the reader then weighs a few more.
    if ranked and ranked[0][2] >= UNSURE_SHARE:
        ranked = ranked[:wanted]
    return [(number, sentence) for number, sentence, _ in ranked], wider


__all__ = ["UNSURE_SHARE", "reader_sentences", "reads_language", "reordered"]
