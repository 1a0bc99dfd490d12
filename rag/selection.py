"""Context selection: the sentences of the retrieved passages that bear on the question.

On a CPU, reading the prompt is most of the time to first token (~2.3 ms a token for
SmolLM2-135M on two cores), and a small model answers better from a few relevant sentences than
from five whole passages. So before the prompt is built, every passage is split into sentences,
each sentence is scored by the question's content words it contains (weighted by how rare each
word is among the candidate sentences, and a little by the passage's rank), and the best
sentences are kept until a token budget is spent; each kept sentence then brings its neighbours
while room is left, since the answer often sits in the sentence after the one that names the
subject. Kept sentences stay in document order, with "…" where text was left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.text.lexical import query_terms, terms_found
from rag.text.sentences import split_sentences

GAP = " … "
RANK_DECAY = 0.15  # a passage's sentences count 1 / (1 + RANK_DECAY * rank) as much


@dataclass
class _Sentence:
    passage: int
    position: int
    text: str
    tokens: int
    terms: frozenset[str]
    score: float = 0.0


def select_context(
    question: str, passages: Sequence[str], budget: int, count_tokens: Callable[[str], int]
) -> list[str]:
    """For each passage, the text of its selected sentences ("" when none was selected).

    ``budget`` is the number of tokens (by ``count_tokens``) all selected text may take. When no
    sentence shares a word with the question, the passages are kept from their start instead.
    """
    sentences = _scored_sentences(query_terms(question), passages, count_tokens)
    if not sentences:
        return ["" for _ in passages]
    chosen = _choose(sentences, budget)
    return [_passage_text(p, [s for s in sentences if s.passage == p], chosen) for p in range(len(passages))]


def _scored_sentences(terms: list[str], passages: Sequence[str], count_tokens: Callable[[str], int]) -> list[_Sentence]:
    """The passages' non-blank sentences, each scored by the question's ``terms`` it holds."""
    sentences: list[_Sentence] = []
    for p, text in enumerate(passages):
        for s, piece in enumerate(split_sentences(text)):
            if piece.strip():
                sentences.append(_Sentence(p, s, piece, count_tokens(piece), frozenset(terms_found(terms, piece))))
    if not sentences:
        return sentences
    # A word found in few of the candidate sentences tells them apart; one found in all does not.
    total = len(sentences)
    weight = {t: math.log(1 + total / (1 + sum(1 for s in sentences if t in s.terms))) for t in terms}
    for sentence in sentences:
        sentence.score = sum(weight[t] for t in sentence.terms) / (1 + RANK_DECAY * sentence.passage)
    return sentences


def _choose(sentences: list[_Sentence], budget: int) -> set[tuple[int, int]]:
    """The (passage, position) of the sentences kept within ``budget`` tokens: the best scored
    first, then their neighbours while room is left."""
    chosen: set[tuple[int, int]] = set()
    room = budget

    def take(sentence: _Sentence) -> None:
        nonlocal room
        key = (sentence.passage, sentence.position)
        if key not in chosen and sentence.tokens <= room:
            chosen.add(key)
            room -= sentence.tokens

    ranked = sorted((s for s in sentences if s.score > 0), key=lambda s: (-s.score, s.passage, s.position))
    for sentence in ranked:
        take(sentence)
    if not chosen:
        # Nothing matches the question's words: keep the best passages' opening sentences.
        for sentence in sentences:
            take(sentence)
    by_key = {(s.passage, s.position): s for s in sentences}
    for sentence in ranked:
        if (sentence.passage, sentence.position) not in chosen:
            continue
        for offset in (1, -1):
            neighbour = by_key.get((sentence.passage, sentence.position + offset))
            if neighbour is not None:
                take(neighbour)
    return chosen


def _passage_text(p: int, own: list[_Sentence], chosen: set[tuple[int, int]]) -> str:
    """Passage ``p``'s chosen sentences (``own`` are all its sentences, in order), runs of
    neighbours joined and gaps marked with "…"; "" when none was chosen."""
    groups: list[list[str]] = []
    previous = None
    for sentence in own:
        if (p, sentence.position) not in chosen:
            continue
        if previous is None or sentence.position != previous + 1:
            groups.append([])
        groups[-1].append(sentence.text)
        previous = sentence.position
    if not groups or previous is None:
        return ""
    text = GAP.join("".join(group).strip() for group in groups)
    first = min(pos for (q, pos) in chosen if q == p)
    if first > own[0].position:
        text = GAP.lstrip() + text
    if previous < own[-1].position:
        text += GAP.rstrip()
    return text
