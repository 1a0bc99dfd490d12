"""The QA set: one JSON object a line.

    {"id": "q1", "question": "...", "answers": ["alt 1", "alt 2"], "gold_docs": ["a.txt"]}

``answers`` are alternatives (any one is right); an empty list marks a question the documents
cannot answer (the right response is a refusal). ``answers_all_of`` lists groups whose items
must all appear in the answer (``[["2.4 GHz", "5 GHz"]]``). ``answerable`` defaults to "has
answers or groups". ``gold_docs`` name the source files (relative to the ingested folder) that
hold the answer. ``lang`` ("en"/"zh") is optional and otherwise detected from the question.
``type`` names the kind of question ("bridge", "comparison", "multi-doc"...): the summary
breaks the figures down by it.

Bad lines are reported with their line numbers and skipped; ``strict=True`` raises instead.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.text import detect_language

KNOWN_FIELDS = ("id", "question", "answers", "answers_all_of", "answerable", "gold_docs", "lang", "type")


class DatasetError(RagError):
    """The QA file is missing, unreadable, or (in strict mode) has a bad line."""


@dataclass
class QAItem:
    """One question with what counts as a right answer."""

    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    answers_all_of: list[list[str]] = field(default_factory=list)
    answerable: bool = True
    gold_docs: list[str] = field(default_factory=list)
    lang: str = "en"
    type: str | None = None  # the kind of question ("bridge", "comparison"...), when the QA file says
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields, kept for the report

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "answers_all_of": [list(g) for g in self.answers_all_of],
            "answerable": self.answerable,
            "gold_docs": list(self.gold_docs),
            "lang": self.lang,
            "type": self.type,
        }


@dataclass
class LineProblem:
    """A line of the QA file that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class QASet:
    path: str
    items: list[QAItem]
    problems: list[LineProblem]

    def __len__(self) -> int:
        return len(self.items)


def _answers(obj: dict[str, Any]) -> list[str]:
    """The item's gold answer alternatives (a single string is one alternative; blanks dropped)."""
    answers = obj.get("answers", [])
    if answers is None:
        answers = []
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError("'answers' must be a list of strings (empty for an unanswerable question)")
    return [a for a in answers if a.strip()]


def _answer_groups(obj: dict[str, Any]) -> list[list[str]]:
    """The item's all-of answer groups, as given (each a non-empty list of non-empty strings)."""
    groups = obj.get("answers_all_of", []) or []
    if not isinstance(groups, list) or not all(
        isinstance(g, list) and g and all(isinstance(x, str) and x.strip() for x in g) for g in groups
    ):
        raise ValueError("'answers_all_of' must be a list of non-empty lists of non-empty strings")
    return groups


def _answerable(obj: dict[str, Any], has_gold: bool) -> bool:
    """The item's ``answerable`` flag (by default: whether it gives an answer), checked against its answers."""
    answerable = obj.get("answerable", has_gold)
    if not isinstance(answerable, bool):
        raise ValueError("'answerable' must be true or false")
    if answerable and not has_gold:
        raise ValueError("'answerable' is true but neither 'answers' nor 'answers_all_of' gives an answer")
    if not answerable and has_gold:
        raise ValueError("'answerable' is false but answers are given; drop the answers or the flag")
    return answerable


def _gold_docs(obj: dict[str, Any]) -> list[str]:
    """The item's gold document paths, as given (a single string is one path)."""
    gold_docs = obj.get("gold_docs", []) or []
    if isinstance(gold_docs, str):
        gold_docs = [gold_docs]
    if not isinstance(gold_docs, list) or not all(isinstance(d, str) and d for d in gold_docs):
        raise ValueError("'gold_docs' must be a list of file paths")
    return gold_docs


def _item_id(obj: dict[str, Any], line: int) -> str:
    """The item's id as text; ``line-N`` where it gives none."""
    raw_id = obj.get("id")
    if raw_id is None or raw_id == "":
        return f"line-{line}"
    if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        return str(raw_id)
    raise ValueError("'id' must be a string or a number")


def parse_item(obj: Any, line: int) -> QAItem:
    """Validate one decoded JSON value; raises ``ValueError`` with a readable reason."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    answers = _answers(obj)
    groups = _answer_groups(obj)
    answerable = _answerable(obj, bool(answers or groups))
    gold_docs = _gold_docs(obj)
    item_id = _item_id(obj, line)
    lang = obj.get("lang")
    if lang is not None and lang not in ("en", "zh"):
        raise ValueError('\'lang\' must be "en" or "zh" when given')
    qtype = obj.get("type")
    if qtype is not None and not isinstance(qtype, str):
        raise ValueError('\'type\' must be a string such as "bridge" or "comparison" when given')
    return QAItem(
        id=item_id,
        question=question.strip(),
        answers=answers,
        answers_all_of=[[x.strip() for x in g] for g in groups],
        answerable=answerable,
        gold_docs=[d.replace("\\", "/") for d in gold_docs],
        lang=lang or detect_language(question),
        type=(qtype or "").strip() or None,
        line=line,
        extra={k: v for k, v in obj.items() if k not in KNOWN_FIELDS},
    )


def load_qa(path: str | Path, strict: bool = False) -> QASet:
    """Read a QA file; bad lines are listed in ``problems`` (or raised when ``strict``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"QA file {path} does not exist; pass a JSONL file with one question a line.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"QA file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8."
        ) from exc
    items: list[QAItem] = []
    problems: list[LineProblem] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            item = parse_item(obj, number)
            if item.id in seen:
                raise ValueError(f"duplicate id '{item.id}' (first on line {seen[item.id]})")
        except ValueError as exc:
            problem = LineProblem(number, str(exc))
            if strict:
                raise DatasetError(f"{path}, {problem}; fix the line or run without --strict to skip it.") from None
            problems.append(problem)
            continue
        seen[item.id] = number
        items.append(item)
    if not items:
        detail = f" ({len(problems)} bad lines, the first: {problems[0]})" if problems else ""
        raise DatasetError(
            f"QA file {path} holds no usable question{detail}; see the QA file schema in README.md (Evaluation)."
        )
    return QASet(str(path), items, problems)


def select(items: list[QAItem], sample: int | None = None, seed: int = 0, limit: int | None = None) -> list[QAItem]:
    """A seeded random sample (kept in file order), then the first ``limit`` of it."""
    chosen = list(items)
    if sample is not None and sample < len(chosen):
        keep = set(random.Random(seed).sample(range(len(chosen)), sample))
        chosen = [item for i, item in enumerate(chosen) if i in keep]
    if limit is not None:
        chosen = chosen[: max(limit, 0)]
    return chosen


__all__ = ["QAItem", "QASet", "LineProblem", "DatasetError", "load_qa", "parse_item", "select"]
