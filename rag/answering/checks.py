"""Answer checks: one named, ordered stage between the model and the person.

Each check looks at the answer drafted so far and says ``keep``, ``replace`` (with a better
draft) or ``refuse``, with a reason. The pipeline runs the list of its answer mode in order
(:data:`GENERATE_CHECKS`, :data:`READ_CHECKS`); a refusal ends the list. What every check
decided goes into the answer's ``checks`` field and eval's ``results.jsonl``, so how often each
fires, and how often the answer it gave was right, is counted (``python -m eval.run``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from rag.answering.citations import best_supporting_passage, clean_markers, support, support_units
from rag.answering.edges import (
    LINKING_EN,
    UNIT_AFTER_EN,
    UNIT_AFTER_ZH,
    WORD_RE,
    line_around,
    trim_echo,
    whole_span,
)
from rag.answering.injection import reveals_instructions, taken_from_instructions
from rag.answering.quote import best_sentence, complete_lead_in, names_only_a_heading
from rag.answering.refusal import is_refusal
from rag.answering.repairs import drop_repeats
from rag.answering.tables import named_cell
from rag.documents import SearchHit, Span
from rag.text.language import has_cjk
from rag.text.sentences import LATIN_SENTENCE_ENDS, SENTENCE_ENDS

KEEP, REPLACE, REFUSE = "keep", "replace", "refuse"


@dataclass
class Draft:
    """The answer as it stands: its text (with ``[n]`` markers), the passages it cites, and
    for a read answer the span, the sentence it came from and the reader's confidence."""

    text: str
    cited: list[int] = field(default_factory=list)
    span: Span | None = None
    evidence: Span | None = None
    confidence: float | None = None
    no_answer: float | None = None  # log P(no answer) - log P(the span), from the reader


@dataclass
class Context:
    """What the checks may look at besides the draft."""

    question: str
    query: str
    language: str
    passages: Sequence[SearchHit]
    min_support: float = 0.5
    extractive_fallback: bool = True
    min_confidence: float = 0.0
    no_answer_margin: float | None = None
    relevance: float = 1.0  # the best passage's share of the question's words
    sure_below: float = 0.0  # under this relevance the reader must be sure ...
    sure_margin: float = 0.0  # ... preferring its span to no answer by this much


@dataclass
class Verdict:
    """What one check decided about a draft: keep it, replace it (with ``draft``) or refuse, and why."""

    action: str  # KEEP, REPLACE or REFUSE
    reason: str = ""
    draft: Draft | None = None  # the replacement, for REPLACE


class Check(Protocol):
    """One answer check: a named callable that judges a draft in its context."""

    name: str

    def __call__(self, draft: Draft, context: Context) -> Verdict: ...


@dataclass
class Outcome:
    """The draft after the checks (``None``: refuse) and what each decided, in order."""

    draft: Draft | None
    log: list[dict[str, str]]


def run_checks(checks: Sequence[Check], draft: Draft, context: Context) -> Outcome:
    """Runs the checks in order, each on the draft the ones before left; stops at the first
    refusal. Returns the final draft (``None`` when refused) and every verdict."""
    log: list[dict[str, str]] = []
    for check in checks:
        verdict = check(draft, context)
        log.append({"check": check.name, "action": verdict.action, "reason": verdict.reason})
        if verdict.action == REFUSE:
            return Outcome(None, log)
        if verdict.action == REPLACE and verdict.draft is not None:
            draft = verdict.draft
    return Outcome(draft, log)


def append_marker(text: str, number: int) -> str:
    """``text`` with ``[number]`` before its final full stop (or at the end): "45 euros [1]",
    "七点半[1]", "It is 45 euros [1]."."""
    stripped = text.rstrip()
    if stripped and stripped[-1] in SENTENCE_ENDS:
        space = " " if stripped[-1] in LATIN_SENTENCE_ENDS else ""
        return f"{stripped[:-1].rstrip()}{space}[{number}]{stripped[-1]}"
    return f"{stripped}[{number}]" if stripped and has_cjk(stripped[-1]) else f"{stripped} [{number}]"


def _sentence_draft(context: Context) -> Draft | None:
    """The passage sentence that best answers, as a draft (the extractive fallback)."""
    found = best_sentence(context.query, context.passages)
    if found is None:
        return None
    number, sentence = found
    return Draft(append_marker(sentence, number), [number])


@dataclass
class _Named:
    name: str
    run: Callable[[Draft, Context], Verdict]

    def __call__(self, draft: Draft, context: Context) -> Verdict:
        return self.run(draft, context)


def check(name: str) -> Callable[[Callable[[Draft, Context], Verdict]], _Named]:
    """Make a function a :class:`Check` called ``name``."""
    return lambda run: _Named(name, run)


# --- checks of a generated answer ---------------------------------------------------------------


@check("repeats")
def drop_loops(draft: Draft, context: Context) -> Verdict:
    """Small models loop: sentences and clauses said again are cut."""
    text = drop_repeats(draft.text)
    if text == draft.text:
        return Verdict(KEEP)
    return Verdict(REPLACE, "the model repeated itself; the repeats were cut", replace(draft, text=text))


@check("markers")
def check_markers(draft: Draft, context: Context) -> Verdict:
    """Citation markers in any shape become ``[n]``; numbers of no passage are dropped."""
    text, cited = clean_markers(draft.text, len(context.passages))
    if text == draft.text and cited == draft.cited:
        return Verdict(KEEP)
    return Verdict(REPLACE, "citation markers rewritten as [n]", replace(draft, text=text, cited=cited))


@check("model_refused")
def model_refused(draft: Draft, context: Context) -> Verdict:
    """Refuses an empty draft or one in which the model said the passages do not answer."""
    if not draft.text or is_refusal(draft.text, context.language):
        return Verdict(REFUSE, "the model said the passages do not answer")
    return Verdict(KEEP)


@check("supported")
def supported(draft: Draft, context: Context) -> Verdict:
    """An answer mostly made of words the passages lack (made up, or garbled), or only a
    passage's title, gives way to the passage sentence that best answers."""
    if support(draft.text, context.passages) >= context.min_support:
        if not names_only_a_heading(draft.text, context.passages):
            return Verdict(KEEP)
        reason = "the answer only repeats a passage's title"
    else:
        reason = "most of the answer is not in the passages"
    fallback = _sentence_draft(context) if context.extractive_fallback else None
    if fallback is None:
        return Verdict(REFUSE, reason)
    return Verdict(REPLACE, f"{reason}; the best passage sentence answers instead", fallback)


@check("attributed")
def attribute(draft: Draft, context: Context) -> Verdict:
    """An answer without a marker is cited to the passage holding most of its words."""
    if draft.cited:
        return Verdict(KEEP)
    best = best_supporting_passage(draft.text, context.passages)
    if best is None:
        return Verdict(KEEP, "no passage holds enough of the answer to cite")
    return Verdict(
        REPLACE,
        f"no marker; cited to passage {best}, which holds most of its words",
        replace(draft, text=append_marker(draft.text, best), cited=[best]),
    )


@check("lead_in")
def complete_list(draft: Draft, context: Context) -> Verdict:
    """ "The challenges include:" and nothing more: the list is in the cited passage."""
    if len(draft.cited) != 1:
        return Verdict(KEEP)
    number = draft.cited[0]
    completed = complete_lead_in(draft.text, context.passages[number - 1])
    if completed is None:
        return Verdict(KEEP)
    return Verdict(
        REPLACE,
        "the answer announced a list; the passage's items were added",
        replace(draft, text=append_marker(completed, number)),
    )


# --- checks of every answer: passages are data ---------------------------------------------------


def _texts(context: Context) -> list[str]:
    return [hit.chunk.text for hit in context.passages]


@check("instructions")
def not_an_instruction(draft: Draft, context: Context) -> Verdict:
    """An answer that is an instruction, or carries words only an instruction planted in a
    passage holds (its canary, its link, its false figure: the model obeyed it), is not the
    documents' answer: the best passage sentence answers instead (it is never a planted one),
    or, for a short answer, nothing does."""
    if not taken_from_instructions(draft.text, _texts(context), context.question):
        return Verdict(KEEP)
    reason = "the answer follows or repeats an instruction planted in a passage"
    fallback = _sentence_draft(context) if context.extractive_fallback and draft.span is None else None
    if fallback is None or taken_from_instructions(fallback.text, _texts(context), context.question):
        return Verdict(REFUSE, reason)
    return Verdict(REPLACE, f"{reason}; the best passage sentence answers instead", fallback)


@check("leak")
def no_leak(draft: Draft, context: Context) -> Verdict:
    """The service's own instructions (the answer prompt's and the reader's rules) are never
    an answer."""
    if reveals_instructions(draft.text, _texts(context), context.question):
        return Verdict(REFUSE, "the answer repeats the service's own instructions")
    return Verdict(KEEP)


GENERATE_CHECKS: tuple[Check, ...] = (
    drop_loops,
    check_markers,
    model_refused,
    supported,
    attribute,
    complete_list,
    not_an_instruction,
    no_leak,
)


# --- checks of a read (short) answer ----------------------------------------------------------


@check("confident")
def confident(draft: Draft, context: Context) -> Verdict:
    """The reader was too unsure of any answer in the sentence: the documents mention the
    question's words, but do not say what was asked."""
    if draft.confidence is None or draft.confidence >= context.min_confidence:
        return Verdict(KEEP)
    return Verdict(REFUSE, f"the reader's confidence {draft.confidence:.3f} is under {context.min_confidence:g}")


@check("echo")
def not_an_echo(draft: Draft, context: Context) -> Verdict:
    """A span made only of the question's own words ("what is Internet2" -> "Internet2")
    answers nothing: the sentence it came from answers instead."""
    if draft.span is None or draft.evidence is None:
        return Verdict(KEEP)
    words = support_units(draft.span.text)
    if not words or not words <= support_units(context.question) or _offers_a_choice(context.question):
        return Verdict(KEEP)
    return Verdict(
        REPLACE,
        "the short answer only repeats the question's words; the sentence answers instead",
        Draft(
            append_marker(draft.evidence.text, draft.evidence.passage),
            [draft.evidence.passage],
            evidence=draft.evidence,
            confidence=draft.confidence,
        ),
    )


@check("no_answer")
def answers_at_all(draft: Draft, context: Context) -> Verdict:
    """The reader's own choice not to answer: it finds "the passage does not say" likelier
    than any span of it, by more than ``reader_no_answer_margin``."""
    if draft.no_answer is None or context.no_answer_margin is None or draft.no_answer <= context.no_answer_margin:
        return Verdict(KEEP)
    return Verdict(REFUSE, f"the reader prefers no answer to any span (log-odds {draft.no_answer:+.2f})")


@check("sure")
def sure_on_little_evidence(draft: Draft, context: Context) -> Verdict:
    """Passages that hold few of the question's words may only mention its subject: the answer
    stands only if the reader clearly prefers it to saying the passage does not answer."""
    if draft.no_answer is None or context.relevance >= context.sure_below or draft.no_answer <= context.sure_margin:
        return Verdict(KEEP)
    return Verdict(
        REFUSE,
        f"the passages hold few of the question's words (relevance {context.relevance:.2f}) "
        f"and the reader is not sure (log-odds {draft.no_answer:+.2f})",
    )


@check("trimmed")
def trimmed(draft: Draft, context: Context) -> Verdict:
    """Words of the question at the span's edges are cut, and what only frames a Chinese answer
    (the author before a title in 《》, the noun a how-many question names) (:func:`trim_echo`)."""
    if draft.span is None:
        return Verdict(KEEP)
    cut_start, cut_end = trim_echo(draft.span.text, context.question)
    if not cut_start and not cut_end:
        return Verdict(KEEP)
    span = draft.span
    text = span.text[cut_start : len(span.text) - cut_end]
    shorter = Span(span.passage, span.start + cut_start, span.end - cut_end, text)
    return Verdict(
        REPLACE,
        f"cut '{span.text}' to '{text}': the question's own words, or what only frames the answer",
        replace(draft, text=append_marker(text, span.passage), span=shorter),
    )


@check("unit")
def with_unit(draft: Draft, context: Context) -> Verdict:
    """A bare figure gets the unit written right after it ("3400" -> "3400 rpm", "45" ->
    "45 euros"): a number without its unit is only half the answer, even when the question
    names the unit ("Within how many days ...?" -> "30 days", though XQuAD's answers would
    say "17" to "How many seconds ...?")."""
    span = draft.span
    if span is None or not span.text or not span.text[-1].isdigit() or not 1 <= span.passage <= len(context.passages):
        return Verdict(KEEP)
    if re.search(r"\d\.\d+\.\d", span.text):
        return Verdict(KEEP)  # an address or a version number, not a quantity
    passage = context.passages[span.passage - 1].chunk.text
    if passage[span.start : span.end] != span.text:
        return Verdict(KEEP)
    pattern = UNIT_AFTER_ZH if has_cjk(passage[span.end : span.end + 1]) else UNIT_AFTER_EN
    match = pattern.match(passage, span.end)
    if match is None:
        return Verdict(KEEP)
    longer = Span(span.passage, span.start, match.end(), passage[span.start : match.end()])
    return Verdict(
        REPLACE,
        f"'{span.text}' read with its unit",
        replace(draft, text=append_marker(longer.text, span.passage), span=longer),
    )


# key=value, key: value, key：value inside a line of code or settings; the value ends at a comma,
# a semicolon, a closing bracket or white space (or is quoted).
_PAIR_RE = re.compile(
    r"(?<![\w.])([A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff .\-]{0,40}?)\s*(?:==?|:|：)\s*"
    r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;，；()\[\]{}]+)"
)
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _key_words(key: str) -> set[str]:
    return {w.lower() for w in re.split(r"[\s_.\-]+", _CAMEL_RE.sub(" ", key)) if w}


@check("key_value")
def key_value(draft: Draft, context: Context) -> Verdict:
    """In a ``key=value`` or ``key: value`` line, the value of the key the question names is the
    answer ("What learning rate ...?" on ``lr_schedule="cosine", learning_rate=3e-4`` -> "3e-4")."""
    evidence = draft.evidence
    if draft.span is None or evidence is None:
        return Verdict(KEEP)
    question = context.question.lower()
    asked = {w.lower().strip("?'’") for w in WORD_RE.findall(context.question)}
    best: tuple[float, re.Match] | None = None
    for match in _PAIR_RE.finditer(evidence.text):
        key = match.group(1).strip()
        if has_cjk(key):
            named = 1.0 if key in question else 0.0
        else:
            words = _key_words(key) - LINKING_EN
            named = len(words & asked) / len(words) if words else 0.0
        if named >= 1.0 and (best is None or len(key) > len(best[1].group(1).strip())):
            best = (named, match)
    if best is None:
        return Verdict(KEEP)
    match = best[1]
    value_start, value_end = match.start(2), match.end(2)
    if match.group(2)[:1] in "\"'" and match.group(2)[-1:] == match.group(2)[:1] and len(match.group(2)) > 2:
        value_start, value_end = value_start + 1, value_end - 1  # the value, not its quotes
    start, end = evidence.start + value_start, evidence.start + value_end
    if draft.span.start >= start and draft.span.end <= end:
        return Verdict(KEEP)
    value = evidence.text[value_start:value_end]
    span = Span(evidence.passage, start, end, value)
    return Verdict(
        REPLACE,
        f"the line sets '{match.group(1).strip()}', which the question names, to '{value}'",
        replace(draft, text=append_marker(value, evidence.passage), span=span),
    )


@check("whole")
def whole(draft: Draft, context: Context) -> Verdict:
    """A span that is part of a name, a range or a list takes all of it, and one that opens a
    bracket it does not close ends before it (:func:`~rag.answering.edges.whole_span`)."""
    span = draft.span
    if span is None or not 1 <= span.passage <= len(context.passages):
        return Verdict(KEEP)
    passage = context.passages[span.passage - 1].chunk.text
    if passage[span.start : span.end] != span.text:
        return Verdict(KEEP)
    found = whole_span(passage, span.start, span.end, context.question)
    if found is None:
        return Verdict(KEEP)
    start, end, done = found
    longer = Span(span.passage, start, end, passage[start:end])
    return Verdict(
        REPLACE,
        f"'{span.text}' -> '{longer.text}': {done}",
        replace(draft, text=append_marker(longer.text, span.passage), span=longer),
    )


@check("table_cell")
def table_cell(draft: Draft, context: Context) -> Verdict:
    """A table row the question names by its first cell, in a column the question names and
    asks for, answers with that cell ("三月的讲座介绍的茶是什么？" on the row "三月 | … | 铁观音"
    under "月份 | 讲座主题 | 介绍的茶" -> "铁观音"), whatever the reader chose or preferred:
    a small model reads a table's columns poorly. Only one such cell may be found."""
    found = named_cell(context.question, [hit.chunk.text for hit in context.passages])
    if found is None:
        return Verdict(KEEP)
    number, start, end, cell, name = found
    span = draft.span
    if span is not None and span.passage == number and span.start >= start and span.end <= end:
        return Verdict(KEEP)
    row_text = context.passages[number - 1].chunk.text
    line_start, line_end = line_around(row_text, start, end)
    evidence = Span(number, line_start, line_end, row_text[line_start:line_end])
    cited = Span(number, start, end, cell)
    return Verdict(
        REPLACE,
        f"the table row the question names, in its column '{name}': '{cell}'",
        replace(draft, text=append_marker(cell, number), cited=[number], span=cited, evidence=evidence, no_answer=None),
    )


READ_CHECKS: tuple[Check, ...] = (
    table_cell,
    confident,
    answers_at_all,
    sure_on_little_evidence,
    trimmed,
    key_value,
    whole,
    with_unit,
    not_an_echo,
    not_an_instruction,
    no_leak,
)


_CHOICE_RE = re.compile(r"\bor\b|还是|或者|哪(?:个|一个|位)?(?:更|比较)", re.IGNORECASE)


def _offers_a_choice(question: str) -> bool:
    """ "Which is larger, New York or Boston?": the answer is one of the question's words."""
    return bool(_CHOICE_RE.search(question))
