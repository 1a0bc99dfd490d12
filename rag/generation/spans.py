"""Reading an answer out of given texts with a causal LM: which span would the model say?

The reader (:mod:`rag.answering.reader`) asks the generator for the span of the given texts
that the model itself would most likely answer with. Every backend that can see the model's
next-token log-probabilities runs the same search here; only how it computes them differs
(:meth:`~rag.generation.onnx.generator.OnnxGenerator.extract`,
:meth:`~rag.generation.transformers_lm.TransformersGenerator.extract`).

The answer must be copied: it is a run of the texts' own tokens, so it is verbatim by
construction. Its score is the model's log-probability of the whole answer,

    log P(first token) + sum log P(next text token) + log P(end of answer after the last one),

which is what the model would assign to saying exactly that span and stopping. Two methods:

- ``span``: the ``starts`` most likely first tokens (over every position of every text) are
  each followed along their text for up to ``max_tokens`` tokens, and the best (start, end)
  pair over all of them wins. A path is abandoned once its running log-probability falls under
  the best complete score (adding tokens only lowers it), so most starts cost a step or two.
- ``greedy``: copy-constrained greedy decoding: the most likely first token, then the next
  text token for as long as the model prefers it to ending the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from rag.text.language import has_cjk
from rag.text.questions import ASKS_AMOUNT, after_asking_zh, before_asking_zh, starts_a_figure

METHODS = ("span", "greedy")

# follow(tokens) yields the log-probability vector over the vocabulary after each of ``tokens``
# in turn (the prompt, then tokens[:1], tokens[:2], ...); the search stops reading it early.
Follow = Callable[[Sequence[int]], Iterator[np.ndarray]]


@dataclass
class SpanChoice:
    """The span chosen: tokens ``start:end`` of text ``text`` and its log-probability."""

    text: int
    start: int
    end: int
    logprob: float
    first_logprob: float  # of its first token alone: how sure the model is of where it starts
    steps: int  # tokens the model read to decide
    no_answer_logprob: float | None = None  # log P(the model says the no-answer word and stops)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from ``logits`` (flattened, in float64, computed stably)."""
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    top = values.max()
    return values - (top + np.log(np.exp(values - top).sum()))


def word_edges(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[bool, bool]]:
    """For each token of ``text``: may a span start at it, and end after it? Not inside a
    word or a number ("340M" is tokenised 3|4|0|M by some models: "3" is no answer); between
    two Chinese characters always."""

    def joined(left: str, right: str) -> bool:
        return left.isalnum() and right.isalnum() and not (has_cjk(left) or has_cjk(right))

    edges = []
    for a, b in offsets:
        before = text[a - 1] if a > 0 else " "
        first = text[a] if a < len(text) else " "
        last = text[b - 1] if b > 0 else " "
        after = text[b] if b < len(text) else " "
        edges.append((not joined(before, first), not joined(last, after)))
    return edges


NEAR_BONUS = 1.0  # nats for a span edge next to a word of the question
FIGURE_BONUS = 2.0  # nats for a span starting on a figure, asked how many or how much
SLOT_BONUS = 1.0  # nats for a Chinese span starting where the question's asking word stands
_STOP_EN = frozenset("a an the of in on at by for to from with and or is are was were be it its this that".split())


def nearness(text: str, offsets: Sequence[tuple[int, int]], question: str) -> list[tuple[float, float]]:
    """For each token: a bonus for a span starting at it right after a word of the question,
    and for one ending after it right before one ("每天早上[七点半]开门" asked "早上几点开门"):
    the answer usually sits next to what the question says about it."""
    q = question.lower()
    words = {w for w in re.findall(r"[a-z0-9]+", q) if w not in _STOP_EN}
    pairs = {q[i : i + 2] for i in range(len(q) - 1) if has_cjk(q[i]) and has_cjk(q[i + 1])}

    slot = before_asking_zh(question)
    slot_end = after_asking_zh(question)

    def asked_before(at: int) -> float:
        left = text[:at].rstrip().lower()
        if left and has_cjk(left[-1]):
            # Chinese words are not delimited: any word of the question before a span ("每周[一]"
            # asked "每周哪天") would cut "周一" in two. Only the two characters right before
            # the asking word count ("被译为[新港]" asked "被译为什么").
            return SLOT_BONUS if slot and left.endswith(slot) else 0.0
        match = re.search(r"([a-z0-9]+)\W*$", left[-40:])
        return NEAR_BONUS if match and match.group(1) in words else 0.0

    def asked_after(at: int) -> float:
        right = text[at:].lstrip().lower()
        if right and has_cjk(right[0]):
            # Right before what the question says after its asking word ("每周[一]闭馆" asked
            # "每周哪天闭馆") counts more than before any other word of the question.
            if slot_end and right.startswith(slot_end):
                return NEAR_BONUS + SLOT_BONUS
            return NEAR_BONUS if right[:2] in pairs else 0.0
        match = re.match(r"\W*([a-z0-9]+)", right[:40])
        return NEAR_BONUS if match and match.group(1) in words else 0.0

    # Asked how many or how much, the answer starts with its figure ("[一个]国际机场", not the
    # airport's name).
    figure = FIGURE_BONUS if ASKS_AMOUNT.search(question) else 0.0

    def start_bonus(at: int) -> float:
        return asked_before(at) + (figure if figure and starts_a_figure(text, at) else 0.0)

    return [(start_bonus(a), asked_after(b)) for a, b in offsets]


# The words the reader's prompt says to answer with when the passage holds no answer
# (rag.answering.reader.NO_ANSWER). Copied from a passage alone, they are the model saying "no
# answer", not an answer: "无" out of "无外流老剑客" asked who the hero is.
NO_ANSWER_WORDS = frozenset({"unknown", "无"})


def fresh_tokens(text: str, offsets: Sequence[tuple[int, int]], question: str) -> list[bool]:
    """For each token: does it say something the question does not? A span must hold one such
    token: "Internet2" is no answer to "What is Internet2?", nor "约翰" to "约翰是谁？", nor a
    no-answer word alone (:data:`NO_ANSWER_WORDS`)."""
    q = question.lower()
    asked = {w for w in re.findall(r"[a-z0-9]+", q)}
    flags = []
    for a, b in offsets:
        piece = text[a:b].strip().lower()
        if not piece or not any(ch.isalnum() for ch in piece):
            flags.append(False)
        elif has_cjk(piece):
            flags.append(piece not in q and piece not in NO_ANSWER_WORDS)
        else:
            # the whole word the token is part of ("Inter|net|2" -> "internet2")
            start, end = a + len(text[a:b]) - len(text[a:b].lstrip()), a + len(text[a:b].rstrip())
            while start > 0 and text[start - 1].isalnum():
                start -= 1
            while end < len(text) and text[end].isalnum():
                end += 1
            word = text[start:end].lower()
            flags.append(word not in asked and word not in _STOP_EN and word not in NO_ANSWER_WORDS)
    return flags


def search_span(
    first: np.ndarray,
    texts: Sequence[Sequence[int]],
    stop_ids: Sequence[int],
    follow: Follow,
    method: str = "span",
    starts: int = 4,
    max_tokens: int = 16,
    edges: Sequence[Sequence[tuple[bool, bool]]] | None = None,
    no_answer: Sequence[int] | None = None,
    prior: Sequence[Sequence[tuple[float, float]]] | None = None,
    fresh: Sequence[Sequence[bool]] | None = None,
) -> SpanChoice | None:
    """The span of ``texts`` (token ids) the model most likely answers with, given ``first``,
    the log-probabilities of the answer's first token; ``None`` when the texts are empty.
    ``edges`` (:func:`word_edges`) keeps spans to whole words and numbers. ``no_answer`` (the
    tokens of the word the prompt says to answer when the text does not hold the answer) is
    scored the same way, as the option of saying that instead. ``prior`` (:func:`nearness`)
    adds a bonus per start and end token to the score spans are ranked by; ``logprob`` stays
    the model's own. With ``fresh`` (:func:`fresh_tokens`), a span must hold a token marked
    so: one made only of the question's words is never chosen."""
    top_end = max((b for p in prior for _, b in p), default=0.0) if prior is not None else 0.0
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not '{method}'")
    rules = _SpanRules([int(s) for s in stop_ids if 0 <= int(s) < first.shape[0]], edges, prior, top_end, fresh)
    positions = [
        (float(first[token]) + rules.bonus_start(t, i), t, i)
        for t, ids in enumerate(texts)
        for i, token in enumerate(ids)
        if 0 <= token < first.shape[0] and rules.may_start(t, i)
    ]
    if not positions or not rules.stops:
        return None
    positions.sort(key=lambda p: -p[0])
    best = _Best()
    no_answer_lp = _no_answer_logprob(first, no_answer, follow, rules.stops, best) if no_answer else None
    for ranked_lp, t, i in positions[: 1 if method == "greedy" else max(1, starts)]:
        if best.choice is not None and ranked_lp + top_end <= best.score:
            break  # every span from here scores below the best already found
        _follow_start(rules, best, follow, texts[t], t, i, ranked_lp, method, max_tokens)
    if best.choice is not None:
        best.choice.steps = best.steps
        best.choice.no_answer_logprob = no_answer_lp
    return best.choice


@dataclass
class _SpanRules:
    """What every start of one search shares: the end-of-answer tokens, where spans may start
    and end (``edges``), the bonus for each edge (``prior``; ``top_end``, its largest end bonus)
    and which tokens say something the question does not (``fresh``)."""

    stops: list[int]
    edges: Sequence[Sequence[tuple[bool, bool]]] | None
    prior: Sequence[Sequence[tuple[float, float]]] | None
    top_end: float
    fresh: Sequence[Sequence[bool]] | None = None

    def is_fresh(self, t: int, i: int) -> bool:
        return self.fresh is None or bool(self.fresh[t][i])

    def bonus_start(self, t: int, i: int) -> float:
        return self.prior[t][i][0] if self.prior is not None else 0.0

    def bonus_end(self, t: int, i: int) -> float:
        return self.prior[t][i][1] if self.prior is not None else 0.0

    def may_start(self, t: int, i: int) -> bool:
        return self.edges is None or self.edges[t][i][0]

    def may_end(self, t: int, i: int) -> bool:
        return self.edges is None or self.edges[t][i][1]


@dataclass
class _Best:
    """The best span found so far, the score it is ranked by and the tokens read in all."""

    choice: SpanChoice | None = None
    score: float = float("-inf")
    steps: int = 0


def _no_answer_logprob(
    first: np.ndarray, no_answer: Sequence[int], follow: Follow, stops: Sequence[int], best: _Best
) -> float:
    """log P(the model says the ``no_answer`` tokens and stops); counts the tokens read in ``best``."""
    words = [int(t) for t in no_answer]
    logprob = float(first[words[0]])
    for j, lp in enumerate(follow(words)):
        best.steps += 1
        logprob += float(lp[words[j + 1]]) if j + 1 < len(words) else max(float(lp[s]) for s in stops)
    return logprob


def _follow_start(
    rules: _SpanRules,
    best: _Best,
    follow: Follow,
    ids: Sequence[int],
    t: int,
    i: int,
    ranked_lp: float,
    method: str,
    max_tokens: int,
) -> None:
    """Follow text ``t`` from token ``i`` (ranked ``ranked_lp``) for up to ``max_tokens`` tokens,
    keeping in ``best`` any span that beats it (``greedy``: the span it reaches)."""
    first_lp = ranked_lp - rules.bonus_start(t, i)
    running = first_lp
    path = list(ids[i : i + max_tokens])
    says_something = False
    for j, lp in enumerate(follow(path)):
        best.steps += 1
        says_something = says_something or rules.is_fresh(t, i + j)
        end_lp = max(float(lp[s]) for s in rules.stops)
        score = running + end_lp
        ranked = score + rules.bonus_start(t, i) + rules.bonus_end(t, i + j)
        # greedy keeps the span it has reached; span keeps the best one seen
        if (
            rules.may_end(t, i + j)
            and says_something
            and (method == "greedy" or best.choice is None or ranked > best.score)
        ):
            best.choice = SpanChoice(t, i, i + j + 1, score, first_lp, best.steps)
            best.score = ranked
        if j + 1 >= len(path):
            break
        next_lp = float(lp[path[j + 1]])
        if method == "greedy":
            if end_lp >= next_lp and rules.may_end(t, i + j):
                break
        elif best.choice is not None and running + next_lp + rules.bonus_start(t, i) + rules.top_end <= best.score:
            break  # longer spans only lose probability
        running += next_lp


@dataclass
class Extraction:
    """A span read out of the texts the reader gave: characters ``start:end`` of text number
    ``text`` (0-based), with the model's log-probabilities and the cost."""

    text: int
    start: int
    end: int
    logprob: float
    first_logprob: float
    tokens: int
    prompt_tokens: int
    cached_tokens: int = 0
    steps: int = 0
    no_answer_logprob: float | None = None


def to_extraction(
    choice: SpanChoice | None,
    offsets: Sequence[Sequence[tuple[int, int]]],
    texts: Sequence[str],
    prompt_tokens: int,
    cached_tokens: int,
) -> Extraction | None:
    """``choice`` (token positions) as character offsets into ``texts``, white space trimmed;
    ``offsets[t][i]`` is token ``i`` of text ``t``'s (start, end) characters."""
    if choice is None:
        return None
    spans = offsets[choice.text]
    start, end = spans[choice.start][0], spans[choice.end - 1][1]
    text = texts[choice.text]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return None
    return Extraction(
        choice.text,
        start,
        end,
        choice.logprob,
        choice.first_logprob,
        choice.end - choice.start,
        prompt_tokens,
        cached_tokens,
        choice.steps,
        choice.no_answer_logprob,
    )
