"""The reasoning stage: a question answered in several hops, each a retrieval and a reading.

    route (rules) --plan--------> one hop an entity (sub-question) --> compose by code
                  --bridge plan--> "who is the author of X?" --> "where was <that one> born?"
                  --none---------> the single-hop answer

Each hop is the single-hop pipeline (:meth:`AnswerPipeline.answer_hop`): retrieve, pick the
sentences, read the short answer with the generator, run the answer checks; a lookup hop
(dates, "does its passage say so") retrieves and picks the entity's sentence without reading.
What the hops found is combined here, never by the language model: dates and numbers are
compared and subtracted in code (:mod:`rag.reasoning.values`), yes/no comes from whether each
entity's passage states what was asked. Every fact of the final answer cites the passage its hop
read it from; the hops themselves are in ``Answer.reasoning``.

A hop that finds nothing refuses the whole question (the documents do not say that part), and a
finding read from a passage that does not name its entity counts as nothing found.

Here: the hops and the rules that combine their findings. A hop's record and what code reads from
it are in :mod:`~rag.reasoning.findings`, the final answer or refusal made of the hops in
:mod:`~rag.reasoning.final_answer`, and the kind of answer a question wants (for the bridge hop) in
:mod:`~rag.reasoning.answer_kinds`.

Tried and left out: a second retrieval for any question whose first passage leaves a fair share
of its words unexplained (searching for hop 1's answer with those words, outside hop 1's
document). On HotpotQA it changed 7 of 82 answers and made them worse (4 right before, 1 after):
the reader, asked the whole question again, answers with another name of the bridge entity.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.answering.quote import ranked_with_shares
from rag.documents import Answer, Hop
from rag.reasoning.answer_kinds import expected_kind, fits
from rag.reasoning.final_answer import composed_answer, refused_answer
from rag.reasoning.findings import (
    Finding,
    date_of,
    finding_of,
    hop_passages,
    is_about,
    mentions,
    quantity_of,
    same_finding,
    stem,
    stem_in,
)
from rag.reasoning.router import BridgePlan, Plan, bridge_plan, inner_bridge, route
from rag.reasoning.values import difference, in_unit_of, province_of, ratio, total, years_between
from rag.text import detect_language, plain_words
from rag.text.lexical import hit_mentions, query_terms, terms_found

__all__ = ["Reasoner", "expected_kind", "fits"]  # the two moved to rag.reasoning.answer_kinds

if TYPE_CHECKING:
    from rag.answering.pipeline import AnswerPipeline

_YES = {"en": "yes", "zh": "是"}
_NO = {"en": "no", "zh": "否"}


class Reasoner:
    """Answers one question through the pipeline's hops (built per question: it holds no state)."""

    def __init__(self, pipeline: AnswerPipeline) -> None:
        self.pipeline = pipeline
        self.max_hops = max(1, pipeline.settings.reasoning_hops)

    def plan(self, question: str) -> Plan | BridgePlan | None:
        """The router's plan when the question names entities to compare or combine and the
        hops allowed cover them; else ``None`` (one hop, perhaps a bridge)."""
        if self.max_hops < 2:
            return None
        plan = route(question)
        if plan is not None and len(plan.entities) <= self.max_hops:
            return plan
        return bridge_plan(question)

    def answer(
        self, question: str, top_k: int | None = None, filters: Any = None, answer_mode: str | None = None
    ) -> Answer:
        """The answer of ``question``: planned hops composed by code when the router plans it,
        else the single-hop answer, followed by a bridge hop when its short answer is of the wrong
        kind."""
        started = time.perf_counter()
        question = (question or "").strip()
        plan = self.plan(question)
        if plan is not None:
            answer = self.planned(question, plan, top_k, filters)
        else:
            answer = self.pipeline.answer_hop(question, top_k=top_k, filters=filters, answer_mode=answer_mode)
            answer = self.bridged(question, answer, top_k, filters, answer_mode)
        answer.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    def bridged(
        self,
        question: str,
        answer: Answer,
        top_k: int | None = None,
        filters: Any = None,
        answer_mode: str | None = None,
    ) -> Answer:
        """``answer``, or, when its short answer is not of the kind the question asks for (a name
        for "When ...?", a word for "How many ...?"), the answer of a second hop about what it
        names: "When did the pioneer who claimed X die?" -> "Gustave Whitehead" -> his death date.
        The second hop searches for that name with the question, outside the first hop's
        document, and must find a short answer of the kind asked, in a passage naming it."""
        mode = answer_mode or self.pipeline.settings.answer_mode
        span = answer.answer_span
        if mode != "read" or self.max_hops < 2 or not answer.answerable or span is None:
            return answer
        wanted = expected_kind(question)
        if wanted is None or fits(span.text, wanted):
            return answer
        first = finding_of("bridge", question, answer)
        source = answer.passages[span.passage - 1].chunk.source
        query = f"{span.text} {' '.join(query_terms(question))}"
        second = self._hop("bridge", question, query, top_k, filters, mode, frozenset({source}))
        span2 = second.answer.answer_span
        if (
            not second.text
            or span2 is None
            or not fits(second.text, wanted)
            or not mentions(second.answer.passages[span2.passage - 1].chunk.text, span.text)
        ):
            return answer  # nothing better: the one-hop answer stands
        return composed_answer(
            question,
            [first, second],
            second.text,
            second.answer,
            kind="bridge",
            reason=f"bridge: {span.text!r} is no {wanted}; asked again about it",
        )

    # -- hops ------------------------------------------------------------------------------

    def _hop(
        self,
        kind: str,
        question: str,
        query: str | None,
        top_k: int | None,
        filters: Any,
        answer_mode: str | None = None,
        exclude: frozenset[str] = frozenset(),
        pick_by: str | None = None,
        about: str | None = None,
    ) -> Finding:
        answer = self.pipeline.answer_hop(
            question,
            query=query,
            top_k=top_k,
            filters=filters,
            answer_mode=answer_mode,
            exclude=exclude,
            pick_by=pick_by,
            about=about,
        )
        return finding_of(kind, question, answer)

    def _lookup(
        self,
        kind: str,
        question: str,
        entity: str,
        query: str,
        top_k: int | None,
        filters: Any,
        pick_by: str | None = None,
    ) -> Finding:
        """A hop that retrieves and picks the sentence about ``entity`` without reading it: dates
        and whether a passage states something are taken from that sentence by code (picked by
        ``pick_by`` where given, else by the query)."""
        started = time.perf_counter()
        retrieval = self.pipeline.retriever.retrieve(query, top_k=top_k, filters=filters)
        hits = list(retrieval.hits)
        # Only passages that name the entity count: a date of something else is no finding.
        about = [h for h in hits if hit_mentions(h, entity)]
        ranked = ranked_with_shares(pick_by or query, about, 1) if about else []
        number, sentence = (ranked[0][0], ranked[0][1]) if ranked else (None, "")
        about = about or hits
        answer = Answer(
            sentence,
            bool(sentence),
            [],
            about,
            query,
            detect_language(question),
            "lookup",
            timings_ms={
                "retrieve": retrieval.timings_ms.get("retrieve", 0.0),
                "lookup": round((time.perf_counter() - started) * 1000, 2),
            },
            relevance=round(retrieval.best_relevance, 4),
        )
        hop = Hop(
            kind,
            question,
            query,
            hop_passages(about),
            finding=sentence,
            citation=number,
            timings_ms=dict(answer.timings_ms),
        )
        return Finding(hop, answer, "", sentence, entity)

    # -- bridge ----------------------------------------------------------------------------

    def _bridge_steps(self, question: str, plan: BridgePlan, top_k: int | None, filters: Any) -> Iterator[Hop | Answer]:
        """ "Where was the author of X born?": who the author is, then where that one was born.
        A relation inside the relation ("the wife of the author of X") takes a hop more, the
        inner one first, as far as ``reasoning_hops`` allows."""
        found: list[Finding] = []

        def lookup(sub_question: str, query: str | None, last: bool = False) -> Finding:
            # What a hop found is asked about in another document, most often: the one it was
            # read from ("…written by Mara Lindqvist") would only name it again. That document
            # is searched too when the others hold no answer.
            read_in = frozenset(
                f.answer.passages[f.hop.citation - 1].chunk.source
                for f in found[-1:]
                if f.hop.citation is not None and f.hop.citation <= len(f.answer.passages)
            )
            item = self._hop("bridge", sub_question, query, top_k, filters, "read", read_in)
            if read_in and (not item.text or item.answer.answer_span is None):
                item = self._hop("bridge", sub_question, query, top_k, filters, "read")
            if item.answer.answer_span is None and not last:
                # A sentence in place of a short answer (the reader found none) names nothing
                # the next hop could ask about.
                item.text = item.hop.finding = ""
                item.hop.citation = None
            found.append(item)
            return item

        while True:
            sub_question = plan.first_question
            query: str | None = plan.query
            inner = inner_bridge(plan)
            if inner is not None and len(found) + 3 <= self.max_hops:
                item = lookup(inner.first_question, inner.query)
                yield item.hop
                if not item.text:
                    break
                sub_question, query = inner.second_question(item.text), None
            item = lookup(sub_question, query)
            yield item.hop
            if not item.text:
                break
            following = plan.second_question(item.text)
            nested = bridge_plan(following)
            if nested is not None and len(found) + 2 <= self.max_hops:
                plan = nested  # "X的作者的妻子…": the next relation
                continue
            last = lookup(following, None, last=True)
            if last.text and not is_about(last, item.text):
                # Read from a passage that does not name what the hop before found ("七次左右"
                # of oolong tea, asked about 银针): not found.
                last.text = last.hop.finding = ""
                last.hop.citation = None
            yield last.hop
            if not last.text:
                break
            yield composed_answer(
                question,
                found,
                last.text,
                last.answer,
                kind="bridge",
                reason="bridge: " + " -> ".join(repr(f.text) for f in found[:-1]),
            )
            return
        if len(found) == 1:
            # The first relation is not in the documents as asked: the question in one hop.
            yield self.pipeline.answer_hop(question, top_k=top_k, filters=filters)
            return
        yield refused_answer(question, found, "bridge")

    # -- planned: one hop an entity ----------------------------------------------------------

    def planned(self, question: str, plan: Plan | BridgePlan, top_k: int | None = None, filters: Any = None) -> Answer:
        """One hop an entity of the plan, composed by code."""
        for step in self.planned_steps(question, plan, top_k, filters):
            if isinstance(step, Answer):
                return step
        raise AssertionError("planned_steps ends with the answer")

    def planned_steps(
        self, question: str, plan: Plan | BridgePlan, top_k: int | None = None, filters: Any = None
    ) -> Iterator[Hop | Answer]:
        """Each hop of the plan as it ends, then the composed answer (for streaming)."""
        if isinstance(plan, BridgePlan):
            yield from self._bridge_steps(question, plan, top_k, filters)
            return
        found = []
        # Dates and "does its passage say so" are read by code from the entity's sentence; values
        # to subtract, list or name come from the reader.
        lookup = (plan.kind == "comparison" and plan.direction in ("early", "late", "")) or (
            plan.kind == "both" and plan.operation == "all"
        )
        for entity, sub_question in zip(plan.entities, plan.sub_questions):
            query = " ".join(part for part in (entity, plan.attribute, plan.context) if part)
            # The context places the search; the entity and attribute pick the sentence.
            pick_by = " ".join(part for part in (entity, plan.attribute) if part) if plan.context else None
            if lookup:
                item = self._lookup(plan.kind, sub_question, entity, query, top_k, filters, pick_by)
            else:
                # A contrast is told in the documents' sentences; the other kinds need the value.
                mode = "quote" if plan.kind == "contrast" else "read"
                item = self._hop(plan.kind, sub_question, query, top_k, filters, mode, pick_by=pick_by, about=entity)
                item.entity = entity
                if item.text and not is_about(item, entity):
                    # Read from a passage about something else ("80摄氏度" of 龙井 for 普洱): not found.
                    item.text = item.hop.finding = ""
                    item.sentence, item.hop.citation = "", None
            found.append(item)
            yield item.hop
        language = detect_language(question)
        composed = _COMPOSERS[plan.kind](plan, found, language)
        if composed is None:
            yield refused_answer(question, found, plan.kind)
            return
        text, cited, reason = composed
        yield composed_answer(question, found, text, None, kind=plan.kind, reason=reason, cited=cited)


# -- composing the findings -----------------------------------------------------------------------


def _supports(item: Finding, attribute: str, entity: str) -> float:
    """Share of the attribute's words that the hop's sentence (or passage) states of the entity."""
    terms = [t for t in query_terms(attribute) if t]
    if not terms or not item.answer.passages:
        return 0.0
    # Only text that names the entity counts: another passage's "won an Academy Award" is not its.
    texts = [h.chunk.text for h in item.answer.passages[:3] if hit_mentions(h, entity)]
    best = 0.0
    for text in texts:
        found = set(terms_found(terms, text)) | {t for t in terms if stem(t) in {stem(w) for w in plain_words(text)}}
        best = max(best, len(found) / len(terms))
    return best


def _compare(plan: Plan, found: list[Finding], language: str) -> tuple[str, list[int], str] | None:
    if plan.direction in ("early", "late"):
        found_dates = [date_of(f) for f in found]
        dates = [d for d in found_dates if d is not None]
        if len(dates) < len(found_dates):
            return None
        for item, date in zip(found, dates):
            item.hop.value = str(date)
        pick = min if plan.direction == "early" else max
        chosen = dates.index(pick(dates))
        if plan.operation == "yes-no":  # "Was A released before B?"
            yes = chosen == 0 and dates[0] != dates[1]
            return (_YES if yes else _NO)[language], [0, 1], f"comparison of dates {', '.join(map(str, dates))}"
        return plan.entities[chosen], [0, 1], f"comparison of dates {', '.join(map(str, dates))}"
    if plan.direction in ("more", "less"):
        found_values = [quantity_of(f) for f in found]
        values = [v for v in found_values if v is not None]
        # One unit for all ("一周" and "十四天" in days); values of different kinds do not compare.
        same = [in_unit_of(v, values[0]) for v in values] if values else []
        if len(values) == len(found_values) and all(v is not None for v in same):
            for item, value in zip(found, values):
                item.hop.value = value.format()
            numbers = [v.value for v in same if v is not None]
            chosen = numbers.index(max(numbers) if plan.direction == "more" else min(numbers))
            return plan.entities[chosen], [0, 1], f"comparison of values {', '.join(v.format() for v in values)}"
    # No value to compare: the entity whose passage states the attribute.
    support = [_supports(f, plan.attribute, e) for f, e in zip(found, plan.entities)]
    if max(support) == 0 or support.count(max(support)) > 1:
        return None
    chosen = support.index(max(support))
    return plan.entities[chosen], [chosen], f"the passage of {plan.entities[chosen]!r} states {plan.attribute!r}"


def _both(plan: Plan, found: list[Finding], language: str) -> tuple[str, list[int], str] | None:
    if plan.operation == "common":  # "A and B are both what kind of machine?"
        answered = [i for i, item in enumerate(found) if item.text]
        if not answered:
            return None
        # A finding that the other entity's passages state too is the shared one; else the first.
        for i in answered:
            others = [f for j, f in enumerate(found) if j != i]
            if all(any(stem_in(found[i].text, h.chunk.text) for h in f.answer.passages[:3]) for f in others):
                return found[i].text, list(range(len(found))), f"what {' and '.join(map(repr, plan.entities))} share"
        i = answered[0]
        return found[i].text, [i], f"what {plan.entities[i]!r} is, as both are"
    if plan.operation == "same":
        if not all(f.text for f in found):
            return None
        a, b = found[0].text, found[1].text
        if plan.level == "省":  # "福建福鼎" and "福建安溪": the same province, not the same place
            a, b = province_of(a) or a, province_of(b) or b
        same = same_finding(a, b)
        return (_YES if same else _NO)[language], [0, 1], f"{a!r} and {b!r}"
    support = [_supports(f, plan.attribute, e) for f, e in zip(found, plan.entities)]
    yes = all(s > 0.5 for s in support)
    return (
        (_YES if yes else _NO)[language],
        list(range(len(found))),
        "support of the attribute per entity: " + ", ".join(f"{s:.2f}" for s in support),
    )


def _arithmetic(plan: Plan, found: list[Finding], language: str) -> tuple[str, list[int], str] | None:
    found_dates = [date_of(f) for f in found]
    dates = [d for d in found_dates if d is not None]
    asks_years = re.search(r"\byears?\b|年", plan.attribute + " " + " ".join(f.hop.question for f in found))
    found_quantities = [quantity_of(f) for f in found]
    if (
        asks_years
        and len(dates) == len(found_dates)
        and not all(q is not None and q.unit not in ("年", "") for q in found_quantities)
    ):
        for item, date in zip(found, dates):
            item.hop.value = str(date)
        years = years_between(dates[0], dates[1])
        text = f"{years}年" if language == "zh" else f"{years} years"
        return text, [0, 1], f"years between {dates[0]} and {dates[1]}"
    known = [q for q in found_quantities if q is not None]
    if len(known) < len(found_quantities):
        return None
    unit = known[0].unit
    quantities = [known[0]] + [quantity_of(f, unit) or q for f, q in zip(found[1:], known[1:])]
    for item, value in zip(found, quantities):
        item.hop.value = value.format()
    if plan.operation == "sum":
        result = total(quantities)
        return (result.format(), [0, 1], "sum of " + ", ".join(q.format() for q in quantities)) if result else None
    if plan.operation == "ratio":
        times = ratio(quantities[0], quantities[1])
        if times is None:
            return None
        return (
            (f"{times:.3g}倍" if language == "zh" else f"{times:.3g} times"),
            [0, 1],
            f"ratio of {quantities[0].format()} to {quantities[1].format()}",
        )
    result = difference(quantities[0], quantities[1])
    if result is None:
        return None
    return result.format(), [0, 1], f"difference of {quantities[0].format()} and {quantities[1].format()}"


def _aggregate(plan: Plan, found: list[Finding], language: str) -> tuple[str, list[int], str] | None:
    if not all(f.text for f in found):
        return None
    parts = []
    for i, (entity, item) in enumerate(zip(plan.entities, found)):
        # {cI}: hop I's citation, numbered by _compose once the hops' passages are merged
        parts.append(f"{entity}：{item.text} {{c{i}}}" if language == "zh" else f"{entity}: {item.text} {{c{i}}}")
    return ("；" if language == "zh" else "; ").join(parts), list(range(len(found))), "every part answered"


def _contrast(plan: Plan, found: list[Finding], language: str) -> tuple[str, list[int], str] | None:
    """ "How do A and B differ in X?": what the documents say of each, side by side, each cited."""
    if not all(f.text for f in found):
        return None
    lines = [
        f"{entity}：{item.text} {{c{i}}}" if language == "zh" else f"{entity}: {item.text} {{c{i}}}"
        for i, (entity, item) in enumerate(zip(plan.entities, found))
    ]
    return "\n".join(lines), list(range(len(found))), "what the documents say of each"


_COMPOSERS = {
    "comparison": _compare,
    "both": _both,
    "arithmetic": _arithmetic,
    "aggregation": _aggregate,
    "contrast": _contrast,
}
