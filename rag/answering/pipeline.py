"""The answer pipeline: question in, grounded answer with citations out.

    rewrite (follow-ups only) -> retrieve (+ rerank) -> best sentence -> read the short answer
                                                   +-> prompt -> generate -> check citations

The answer mode picks the branch: ``read`` (the short answer out of the best sentence,
:mod:`rag.answering.reader`), ``generate`` (the model writes it) or ``quote`` (the sentence).

This is the one entry point the HTTP API and the evaluation harness use::

    pipeline = AnswerPipeline.from_settings(settings)   # light: nothing loads yet
    pipeline.warm_up()                                  # models load here, or on first use
    answer = pipeline.answer("What is the hotel limit in London?")
    for event in pipeline.stream(question): ...         # retrieval, token..., done

The answer is the fixed refusal sentence in the question's language, with ``answerable``
false and no citations, when retrieval finds nothing relevant enough (``min_relevance``) or
when the model says the passages do not hold the answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from rag.answering.checks import GENERATE_CHECKS, READ_CHECKS, Check, Context, Draft, append_marker, run_checks
from rag.answering.citations import build_citations
from rag.answering.quote import best_sentence, complete_lead_in, ranked_with_shares
from rag.answering.reader import Reader, Reading, check_method
from rag.answering.refusal import refusal_text
from rag.answering.turn import STAGES  # noqa: F401  (STAGES: rag.answering.STAGES)
from rag.answering.turn import Turn as _Turn
from rag.config import ANSWER_MODES, Settings
from rag.documents import Answer
from rag.errors import ConfigError, IndexMissingError, InputError, RagError
from rag.generation import Generator, make_generator
from rag.generation.base import GenerationResult
from rag.index import Index
from rag.prompting import FollowUpPrompt, GroundedPrompt, fallback_query, is_usable_rewrite, usable_history
from rag.reranking import Reranker, make_reranker
from rag.retrieval import HybridRetriever, Retriever
from rag.text.language import detect_language
from rag.text.lexical import hit_mentions, relevance

log = logging.getLogger(__name__)

# A passage is shown to the model only if its relevance is at least this share of the best one's.
RELATIVE_RELEVANCE = 0.5
# The reader weighs reader_sentences_unsure sentences when the best one holds less than this
# share of the question's words, else reader_sentences.
UNSURE_SHARE = 0.5


class AnswerPipeline:
    """Retrieval-augmented answering over one index with one generator."""

    def __init__(
        self,
        settings: Settings,
        generator: Generator | None = None,
        retriever: Retriever | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        if settings.answer_mode not in ANSWER_MODES:
            raise ConfigError(f"answer_mode must be one of {', '.join(ANSWER_MODES)}, not '{settings.answer_mode}'.")
        check_method(settings.reader_method)
        self.settings = settings
        self._generator = generator
        self._retriever = retriever
        self._reranker = reranker
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerPipeline:
        """A pipeline configured by ``settings``; the index and models are loaded later."""
        return cls(settings)

    # -- parts, created on first use ------------------------------------------------------

    @property
    def generator(self) -> Generator:
        """The generator the settings name, made on first use."""
        if self._generator is None:
            with self._lock:
                if self._generator is None:
                    self._generator = make_generator(self.settings)
        return self._generator

    @property
    def retriever(self) -> Retriever:
        """The retriever over the current index; picks up a newer ingest (a cheap check)."""
        if self._retriever is None:
            with self._lock:
                if self._retriever is None:
                    index = Index.open(self.settings)  # raises IndexMissingError
                    if self._reranker is None and self.settings.rerank:
                        self._reranker = make_reranker(self.settings)
                    self._retriever = HybridRetriever(index, self.settings, self._reranker)
                    return self._retriever
        current = getattr(self._retriever, "index", None)
        if isinstance(current, Index):
            current.reload_if_changed()
        return self._retriever

    @property
    def model_name(self) -> str:
        """The generator's name, as answers report it."""
        return self.generator.name

    def warm_up(self) -> None:
        """Load the generator, the embedder and the reranker now.

        A missing index is not an error here (the service may start before the first ingest);
        questions asked before one exists raise :class:`~rag.errors.IndexMissingError`.
        """
        begin = getattr(self.generator, "begin_loading", None)
        if begin is not None:  # a generator that loads in a process of its own starts first
            begin()
        try:
            self.retriever.warm_up()
        except IndexMissingError as exc:
            log.warning("%s", exc)
        self.generator.warm_up()

    # -- answering --------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        top_k: int | None = None,
        filters: Any = None,
        history: Sequence[dict] | None = None,
        answer_mode: str | None = None,
    ) -> Answer:
        """A grounded answer to ``question``; ``history`` is the conversation so far
        (``[{"role": "user" | "assistant", "content": ...}]``), used to resolve follow-ups;
        ``answer_mode`` overrides the setting for this question.

        A question that needs several passages (a comparison, a bridge from one document to
        another, ...) goes through the reasoning stage (:mod:`rag.reasoning`) when the
        ``reasoning`` setting is on; its hops are in the answer's ``reasoning``."""
        reasoner = self._reasoner(history)
        if reasoner is not None:
            return reasoner.answer(question, top_k, filters, answer_mode)
        return self.answer_hop(question, top_k=top_k, filters=filters, history=history, answer_mode=answer_mode)

    def answer_hop(
        self,
        question: str,
        query: str | None = None,
        top_k: int | None = None,
        filters: Any = None,
        history: Sequence[dict] | None = None,
        answer_mode: str | None = None,
        exclude: frozenset[str] = frozenset(),
        pick_by: str | None = None,
        about: str | None = None,
    ) -> Answer:
        """One retrieval and one reading: the single-hop answer. ``query`` searches in place of
        the question (the reader still reads the question), and ``pick_by`` picks the sentence
        to read in place of the query (a hop searches with the words that place it, "城东社区图书馆",
        but they do not say which sentence answers); passages of the ``exclude`` documents are
        left out (a later hop looks beyond the documents an earlier one read). With ``about``,
        only the passages that name it are read, when any does (a hop about 铁观音 reads no
        sentence about 龙井, however many of the question's other words it holds)."""
        turn = self._prepare(question, top_k, filters, history, answer_mode, query, exclude, pick_by, about)
        if turn.quote is not None:
            return self._read(turn) if turn.mode == "read" else self._quoted(turn)
        if turn.messages is None:
            return self._refusal(turn)
        started = time.perf_counter()
        result = self.generator.generate(turn.messages)
        turn.timings_ms["generate"] = _ms(started)
        return self._finish(turn, result)

    def stream(
        self,
        question: str,
        top_k: int | None = None,
        filters: Any = None,
        history: Sequence[dict] | None = None,
        answer_mode: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The answer as events:

        - ``{"type": "retrieval", "query": ..., "passages": [...]}`` once retrieval is done;
        - ``{"type": "token", "text": ...}`` for each piece of generated text;
        - ``{"type": "done", "answer": Answer.to_dict()}`` last.

        The ``done`` answer is authoritative: its text has the citation markers checked, and
        it is the refusal sentence if the model's streamed text turned out to be a refusal.
        Failures before the first event raise; a generation failure after it is reported as
        ``{"type": "error", "message": ...}`` and ends the stream. Closing the iterator early
        stops the generation.
        """
        reasoner = self._reasoner(history)
        plan = reasoner.plan(question.strip()) if reasoner is not None and question else None
        if plan is not None:
            yield from self._stream_planned(reasoner, question.strip(), plan, top_k, filters)
            return
        turn = self._prepare(question, top_k, filters, history, answer_mode)
        yield {"type": "retrieval", "query": turn.query, "passages": [h.to_dict() for h in turn.passages]}
        if turn.messages is None:
            if turn.quote is None:
                answer = self._refusal(turn)
            elif turn.mode == "read":
                try:
                    answer = self._read(turn)
                    if reasoner is not None:  # a short answer of the wrong kind takes a second hop
                        answer = reasoner.bridged(turn.question, answer, top_k, filters, turn.mode)
                except RagError as exc:
                    yield {"type": "error", "message": str(exc)}
                    return
                for hop in answer.reasoning:
                    yield {"type": "hop", "hop": hop.to_dict()}
            else:
                answer = self._quoted(turn)
            turn.timings_ms["first_token"] = _ms(turn.started)
            answer.timings_ms["first_token"] = turn.timings_ms["first_token"]
            yield {"type": "token", "text": answer.answer}
            yield {"type": "done", "answer": answer.to_dict()}
            return
        started = time.perf_counter()
        pieces = self.generator.stream(turn.messages)
        try:
            for piece in pieces:
                # Streamed answers also say when their first text was ready, counted from the question.
                turn.timings_ms.setdefault("first_token", _ms(turn.started))
                yield {"type": "token", "text": piece}
        except RagError as exc:
            yield {"type": "error", "message": str(exc)}
            return
        finally:
            pieces.close()
        turn.timings_ms["generate"] = _ms(started)
        result = pieces.result or GenerationResult("", 0, 0)
        yield {"type": "done", "answer": self._finish(turn, result).to_dict()}

    def _reasoner(self, history: Sequence[dict] | None):
        """The reasoning stage for a question on its own; ``None`` when it is off or the
        question follows a conversation (its follow-up rewriting comes first)."""
        if not self.settings.reasoning or usable_history(history):
            return None
        from rag.reasoning.stage import Reasoner

        return Reasoner(self)

    def _stream_planned(
        self, reasoner, question: str, plan, top_k: int | None, filters: Any
    ) -> Iterator[dict[str, Any]]:
        """A planned multi-hop answer as events: each hop as it ends (its passages numbered as
        the hop itself saw them until the answer renumbers them), then the answer."""
        started = time.perf_counter()
        try:
            for step in reasoner.planned_steps(question, plan, top_k, filters):
                if isinstance(step, Answer):
                    answer = step
                else:
                    yield {"type": "hop", "hop": step.to_dict()}
        except RagError as exc:
            yield {"type": "error", "message": str(exc)}
            return
        yield {"type": "retrieval", "query": answer.query, "passages": [h.to_dict() for h in answer.passages]}
        answer.timings_ms["total"] = answer.timings_ms["first_token"] = _ms(started)
        yield {"type": "token", "text": answer.answer}
        yield {"type": "done", "answer": answer.to_dict()}

    # -- stages -----------------------------------------------------------------------------

    def _prepare(
        self,
        question: str,
        top_k: int | None,
        filters: Any,
        history: Sequence[dict] | None,
        answer_mode: str | None = None,
        query: str | None = None,
        exclude: frozenset[str] = frozenset(),
        pick_by: str | None = None,
        about: str | None = None,
    ) -> _Turn:
        question = (question or "").strip()
        if not question:
            raise InputError("The question is empty; ask something.")
        mode = answer_mode or self.settings.answer_mode
        if mode not in ANSWER_MODES:
            raise InputError(f"answer_mode must be one of {', '.join(ANSWER_MODES)}, not '{mode}'.")
        turn = _Turn(question=question, language=detect_language(question), started=time.perf_counter(), mode=mode)
        retriever = self.retriever

        started = time.perf_counter()
        if query:
            turn.query = query
        else:
            turn.query, turn.rewritten = self._standalone_query(turn, history)
        turn.timings_ms["rewrite"] = _ms(started)

        turn.retrieval = retriever.retrieve(turn.query, top_k=top_k, filters=filters)
        turn.timings_ms["retrieve"] = turn.retrieval.timings_ms.get("retrieve", 0.0)
        turn.timings_ms["rerank"] = turn.retrieval.timings_ms.get("rerank", 0.0)
        turn.passages = [h for h in turn.retrieval.hits if h.chunk.source not in exclude]
        best = turn.retrieval.best_relevance
        if not turn.passages or (best < self.settings.min_relevance and not turn.retrieval.dense_relevant):
            return turn
        # Passages far less relevant than the best one only distract a small model.
        turn.passages = [h for i, h in enumerate(turn.passages) if i == 0 or relevance(h) >= RELATIVE_RELEVANCE * best]
        if about:
            named = [h for h in turn.passages if hit_mentions(h, about)]
            turn.passages = named or turn.passages
        if turn.mode == "quote":
            turn.quote = best_sentence(pick_by or turn.query, turn.passages)  # None: refuse
            return turn
        if turn.mode == "read":
            wanted = max(1, self.settings.reader_sentences)
            ranked = ranked_with_shares(
                pick_by or turn.query, turn.passages, max(wanted, self.settings.reader_sentences_unsure)
            )
            # The best sentence holding few of the question's words may be the wrong one (a
            # question reworded from its passage): the reader then weighs a few more.
            turn.wider = [(number, sentence) for number, sentence, _ in ranked]
            if ranked and ranked[0][2] >= UNSURE_SHARE:
                ranked = ranked[:wanted]
            turn.evidence = [(number, sentence) for number, sentence, _ in ranked]
            turn.quote = turn.evidence[0] if turn.evidence else None  # None: refuse
            return turn

        generator = self.generator
        prompt = GroundedPrompt(
            generator.count_tokens,
            generator.context_window,
            self.settings.max_new_tokens,
            selection_budget=self.settings.context_selection_tokens,
        )
        # A rewritten follow-up reads better than the bare one ("and in Paris?"); the heuristic
        # query (question + key terms) is for search only.
        built = prompt.build(turn.query if turn.rewritten else turn.question, turn.passages, language=turn.language)
        if not built.passages:
            return turn
        turn.passages = built.passages
        turn.messages = built.messages
        return turn

    def _standalone_query(self, turn: _Turn, history: Sequence[dict] | None) -> tuple[str, bool]:
        """The query to search with, and whether it is a model rewrite: the question itself,
        or for a follow-up a rewrite that stands on its own (or the heuristic query)."""
        turns = usable_history(history)
        if not turns or not any(t["role"] == "user" for t in turns):
            return turn.question, False
        if not self.settings.rewrite_followups:
            return fallback_query(turn.question, turns), False
        rewriter = FollowUpPrompt()
        try:
            result = self.generator.generate(
                rewriter.messages(turn.question, turns, turn.language),
                max_new_tokens=rewriter.max_new_tokens,
                stop=["\n"],
                temperature=0.0,
            )
        except RagError as exc:
            log.warning("Follow-up rewriting failed (%s); using the heuristic query.", exc)
            return fallback_query(turn.question, turns), False
        turn.add_usage(result)
        rewritten = rewriter.parse(result.text)
        if is_usable_rewrite(rewritten, turn.question, turns):
            return rewritten, True
        return fallback_query(turn.question, turns), False

    def _finish(self, turn: _Turn, result: GenerationResult) -> Answer:
        turn.add_usage(result)
        return self._checked(turn, Draft(result.text), GENERATE_CHECKS)

    def _checked(self, turn: _Turn, draft: Draft, checks: Sequence[Check]) -> Answer:
        """The answer after the mode's checks (rag/answering/checks.py), with what each decided."""
        context = Context(
            turn.question,
            turn.query,
            turn.language,
            turn.passages,
            self.settings.min_support,
            self.settings.extractive_fallback,
            self.settings.reader_min_confidence,
            self.settings.reader_no_answer_margin,
            turn.retrieval.best_relevance if turn.retrieval is not None else 1.0,
            self.settings.reader_sure_below_relevance,
            self.settings.reader_sure_margin,
        )
        outcome = run_checks(checks, draft, context)
        for entry in outcome.log:
            if entry["action"] != "keep":
                log.info("Check %s: %s (%s)", entry["check"], entry["action"], entry["reason"])
        if outcome.draft is None:
            answer = self._refusal(turn)
        else:
            final = outcome.draft
            answer = self._make_answer(
                turn,
                final.text,
                True,
                build_citations(final.cited, turn.passages, final.evidence.text if final.evidence else final.text),
            )
            answer.answer_span, answer.evidence, answer.confidence = final.span, final.evidence, final.confidence
        answer.checks = outcome.log
        return answer

    @property
    def reader(self) -> Reader:
        """A reader over the generator, with the settings' method, starts and token limit."""
        return Reader(
            self.generator, self.settings.reader_method, self.settings.reader_starts, self.settings.reader_max_tokens
        )

    def _read(self, turn: _Turn) -> Answer:
        """The short answer out of the best sentence; the sentence itself when the reader
        finds nothing in it."""
        started = time.perf_counter()
        question = turn.query if turn.rewritten else turn.question
        reading = self.reader.read(question, turn.passages, turn.evidence, turn.language)
        retried = None
        if self._reads_again(reading, turn):
            # The model says the best sentence does not answer: the answer may be in the next
            # ones (the ranking of sentences is lexical and often second-best). It reads them all.
            retried = self.reader.read(question, turn.passages, turn.wider, turn.language)
            if retried is not None and reading is not None:
                self._add_reading_usage(turn, reading)
                reading = retried
        turn.timings_ms["read"] = _ms(started)
        if reading is None:
            answer = self._quoted(turn)
            answer.checks = [
                {
                    "check": "reader",
                    "action": "replace",
                    "reason": "the reader found no answer in the sentence; the sentence answers",
                }
            ]
            return answer
        self._add_reading_usage(turn, reading)
        number = reading.span.passage
        margin = None if reading.no_answer_logprob is None else round(reading.no_answer_logprob - reading.logprob, 4)
        draft = Draft(
            append_marker(reading.span.text, number),
            [number],
            reading.span,
            reading.evidence,
            reading.confidence,
            margin,
        )
        answer = self._checked(turn, draft, READ_CHECKS)
        answer.no_answer = margin
        if retried is not None:
            reason = f"the best sentence did not answer; read the {len(turn.wider)} best sentences"
            answer.checks.insert(0, {"check": "reader", "action": "replace", "reason": reason})
        return answer

    def _reads_again(self, reading: Reading | None, turn: _Turn) -> bool:
        """Whether the reader preferred no answer to any span of fewer sentences than
        ``turn.wider`` holds (by more than ``reader_reread_margin``)."""
        if reading is None or reading.no_answer_logprob is None or len(turn.wider) <= len(turn.evidence):
            return False
        return reading.no_answer_logprob - reading.logprob > self.settings.reader_reread_margin

    @staticmethod
    def _add_reading_usage(turn: _Turn, reading: Reading) -> None:
        turn.usage["prompt_tokens"] += reading.prompt_tokens
        turn.usage["cached_tokens"] += reading.cached_tokens
        # What the model "said" is the span; it read `steps` tokens after the prompt to choose it.
        turn.usage["completion_tokens"] += reading.tokens
        turn.usage["read_tokens"] = turn.usage.get("read_tokens", 0) + reading.steps

    def _refusal(self, turn: _Turn) -> Answer:
        return self._make_answer(turn, refusal_text(turn.language), False, [])

    def _quoted(self, turn: _Turn) -> Answer:
        assert turn.quote is not None  # its callers quote only when a sentence was found
        number, sentence = turn.quote
        text = append_marker(complete_lead_in(sentence, turn.passages[number - 1]) or sentence, number)
        return self._make_answer(turn, text, True, build_citations([number], turn.passages, text))

    def _make_answer(self, turn: _Turn, text: str, answerable: bool, citations: list) -> Answer:
        turn.timings_ms["total"] = _ms(turn.started)
        return Answer(
            answer=text,
            answerable=answerable,
            citations=citations,
            passages=turn.passages,
            query=turn.query,
            language=turn.language,
            # A quoted answer is the documents' own words; no model wrote it.
            model="quote" if turn.mode == "quote" else self.model_name,
            timings_ms=dict(turn.timings_ms),
            usage=dict(turn.usage),
            relevance=round(turn.retrieval.best_relevance, 4) if turn.retrieval is not None else None,
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
