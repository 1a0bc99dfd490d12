"""Shared by the evaluation tests: a scripted answerer standing in for the pipeline, the example
questions, and typed multi-hop questions with the answers of a scripted run over them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from eval.dataset import load_qa
from eval.faithfulness import LexicalJudge
from eval.report import read_results, summarize, write_results_line
from eval.run import answer_from_dict, evaluate, score_record
from rag.documents import Answer, Chunk, Citation, SearchHit

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


class ScriptedAnswerer:
    """Answers from the example documents: right (gold first, gold answer) or wrong, as told."""

    description = "scripted answerer"

    def __init__(self, items, right=True, fail_ids=()):
        self.by_question = {i.question: i for i in items}
        self.texts = {p.name: p.read_text(encoding="utf-8") for p in (EXAMPLES / "docs").iterdir()}
        self.right = right
        self.fail_ids = set(fail_ids)
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def warm_up(self):
        pass

    def close(self):
        pass

    def answer(self, question, top_k=None, filters=None):
        item = self.by_question[question]
        with self.lock:
            self.asked.append(item.id)
        if item.id in self.fail_ids:
            raise RuntimeError("HTTP 500: boom")
        order = sorted(self.texts, key=lambda name: (name not in item.gold_docs, name))
        if not self.right:
            order = [n for n in order if n not in item.gold_docs]
        hits = [
            SearchHit(Chunk(f"c{i}", self.texts[n], n, None, None, "text", 0, 1), 1 / (i + 1), {}, i + 1)
            for i, n in enumerate(order)
        ]
        timings = {"retrieve": 5.0, "generate": 100.0, "total": 110.0}
        usage = {"prompt_tokens": 300, "completion_tokens": 20}
        if not item.answerable:
            return Answer(
                "I could not find the answer in the documents.",
                False,
                [],
                hits,
                question,
                item.lang,
                "scripted",
                timings,
                usage,
            )
        gold = (item.answers or [" and ".join(g) for g in item.answers_all_of])[0]
        text = f"{question.rstrip('?？')}: {gold if self.right else 'something else entirely'} [1]."
        cite = [Citation(1, "c0", order[0], None, None, "")]
        return Answer(text, True, cite, hits, question, item.lang, "scripted", timings, usage)


@pytest.fixture(scope="module")
def items():
    return load_qa(EXAMPLES / "qa.jsonl").items


def run(items, out, answerer, **kw):
    records, answered, seconds = evaluate(items, answerer, out, ks=[1, 3], progress=False, **kw)
    meta = {"qa_file": "examples/qa.jsonl", "mode": "scripted", "run_seconds": seconds, "answered_this_run": answered}
    return records, summarize(records, [1, 3], meta)


# --- question types and multi-hop evidence ------------------------------------------------------

TYPED = [
    {
        "id": "b1",
        "question": "Which city is the capital of France?",
        "answers": ["Paris"],
        "gold_docs": ["a.txt", "b.txt"],
        "type": "bridge",
    },
    {
        "id": "b2",
        "question": "Which city hosts the second bank?",
        "answers": ["Lyon"],
        "gold_docs": ["c.txt", "d.txt"],
        "type": "bridge",
    },
    {
        "id": "c1",
        "question": "Are both rivers in France?",
        "answers": ["yes"],
        "gold_docs": ["e.txt", "f.txt"],
        "type": "comparison",
    },
    {"id": "u1", "question": "What colour is the sky?", "answers": ["blue"], "gold_docs": ["g.txt"]},
]


@dataclass
class Hop:
    """A reasoning hop as the pipeline will hold it (a dataclass; eval reads it with asdict)."""

    kind: str
    question: str
    query: str
    passages: list
    finding: str
    citation: int | None


def hop_passages(*sources):
    return [{"number": n, "source": s, "chunk_id": f"{s}#0"} for n, s in enumerate(sources, start=1)]


def typed_answer(text, sources, total=None, reasoning=()):
    hits = [
        SearchHit(Chunk(f"{s}#0", f"{s}: {text}", s, None, None, "text", 0, 1), 1 / (i + 1), {}, i + 1)
        for i, s in enumerate(sources)
    ]
    answer = Answer(
        text,
        True,
        [Citation(1, hits[0].chunk.id, sources[0], None, None, "")],
        hits,
        "q",
        "en",
        "scripted",
        {"total": total} if total else {},
        {},
    )
    if reasoning:
        answer.reasoning = list(reasoning)  # not a field of Answer yet: set as the pipeline will
    return answer


def write_run(folder, items, answers, walls=None):
    """Score ``answers`` (id -> Answer) against ``items`` and write them as a run's results.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [
        score_record(item, answers[item.id], LexicalJudge(), [1, 3], (walls or {}).get(item.id, 1.0))
        for item in items
        if item.id in answers
    ]
    with open(folder / "results.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            write_results_line(handle, record)
    return read_results(folder / "results.jsonl")


@pytest.fixture()
def typed_items(tmp_path):
    qa = tmp_path / "typed.jsonl"
    qa.write_text("\n".join(json.dumps(q) for q in TYPED) + "\n", encoding="utf-8")
    return load_qa(qa).items


def run_a(typed_items):
    """b1: right, both gold documents among its passages; b2: wrong, the second gold document in
    neither its passages nor its two hops; c1: right, the second gold document only in its hop;
    u1: right, no type, no total (its latency is the wall time)."""
    over_http = answer_from_dict(
        json.loads(
            json.dumps(
                {
                    **typed_answer("Marseille or Nice", ["c.txt", "x.txt"], total=300.0).to_dict(),
                    "reasoning": [
                        {
                            "kind": "bridge",
                            "question": "Which bank?",
                            "query": "second bank",
                            "passages": hop_passages("x.txt"),
                            "finding": "the bank is in x",
                            "citation": 1,
                        },
                        {
                            "kind": "bridge",
                            "question": "Where is x?",
                            "query": "x city",
                            "passages": hop_passages("c.txt", "z.txt"),
                            "finding": "x is in Marseille",
                            "citation": None,
                        },
                    ],
                }
            )
        )
    )
    return {
        "b1": typed_answer("It is Paris [1].", ["a.txt", "b.txt"], total=100.0),
        "b2": over_http,
        "c1": typed_answer(
            "yes [1]",
            ["e.txt"],
            total=50.0,
            reasoning=[
                Hop(
                    "comparison", "Is the Loire in France?", "Loire", hop_passages("f.txt"), "the Loire is in France", 1
                )
            ],
        ),
        "u1": typed_answer("Blue.", ["g.txt"]),
    }
