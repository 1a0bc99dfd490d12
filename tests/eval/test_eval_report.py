"""The evaluation loop and its outputs, with a scripted answerer standing in for the pipeline."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from eval.dataset import load_qa
from eval.faithfulness import LexicalJudge
from eval.metrics import paired_bootstrap
from eval.report import (
    compare_runs,
    console_table,
    format_comparison,
    read_results,
    summarize,
    write_report,
    write_results_line,
)
from eval.run import answer_from_dict, evaluate, main, score_record
from rag.documents import Answer, Chunk, Citation, SearchHit
from rag.errors import RagError

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


def test_a_run_scores_every_question_and_writes_its_outputs(tmp_path, items):
    records, summary = run(items, tmp_path, ScriptedAnswerer(items), concurrency=3)
    assert [r["id"] for r in records] == [i.id for i in items]
    m = summary["metrics"]
    assert m["answer_accuracy"]["mean"] == 1.0
    assert m["correct_refusal"]["n"] == 2 and m["correct_refusal"]["mean"] == 1.0
    assert m["recall@1"]["mean"] == 1.0 and m["mrr"]["n"] == 10
    assert m["faithfulness"]["mean"] > 0.8
    assert summary["failures"]["wrong_answer"] == 0
    assert summary["latency_ms"]["generate"]["p50"] == 100.0
    assert summary["throughput"]["completion_tokens_per_s"] == pytest.approx(200.0)
    assert set(summary["by_language"]) == {"en", "zh"}
    # no question has a type, and no reasoning stage ran: no per-type section, 0 hops
    assert summary["by_type"] == {} and summary["hops"] == {"mean": 0.0, "max": 0, "n": 12}
    lines = (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert {"prediction", "sources", "scores", "sentences", "timings_ms", "failures"} <= set(first)
    html = write_report(tmp_path, summary, records).read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "show('retrieval_miss')" in html
    assert "<script>alert" not in html
    table = console_table(summary)
    assert "answer_accuracy" in table and "95% CI" in table


def test_wrong_answers_are_labelled_by_failure_type(tmp_path, items):
    records, summary = run(items, tmp_path, ScriptedAnswerer(items, right=False))
    by_id = {r["id"]: r for r in records}
    assert {"wrong_answer", "retrieval_miss", "unfaithful"} <= set(by_id["en-1"]["failures"])
    assert by_id["none-1"]["failures"] == []  # refused, as it should
    assert summary["failures"]["wrong_answer"] == 10
    assert summary["metrics"]["recall@3"]["mean"] < 1


def test_resume_skips_finished_questions_and_retries_failed_ones(tmp_path, items):
    first = ScriptedAnswerer(items, fail_ids={"en-2"})
    run(items[:5], tmp_path, first)
    assert read_results(tmp_path / "results.jsonl")[1]["error"] == "RuntimeError: HTTP 500: boom"
    second = ScriptedAnswerer(items)
    records, summary = run(items, tmp_path, second, resume=True)
    assert sorted(second.asked) == sorted(["en-2", *[i.id for i in items[5:]]])
    assert len(records) == len(items) and summary["errors"] == 0


def test_a_broken_setup_stops_early(tmp_path, items):
    broken = ScriptedAnswerer(items, fail_ids={i.id for i in items})
    with pytest.raises(RagError, match="first 3 questions all failed.*HTTP 500"):
        run(items, tmp_path, broken)
    assert len(broken.asked) < len(items)


def test_compare_two_runs(tmp_path, items):
    run(items, tmp_path / "a", ScriptedAnswerer(items, right=False))
    _, summary = run(items, tmp_path / "b", ScriptedAnswerer(items))
    (tmp_path / "a" / "summary.json").write_text("{}")
    result = compare_runs(tmp_path / "a" / "summary.json", tmp_path / "b")
    rows = {r["metric"]: r for r in result["metrics"]}
    assert result["shared_questions"] == len(items)
    assert rows["answer_accuracy"]["diff"] == pytest.approx(10 / 12)
    assert rows["answer_accuracy"]["significant"]
    assert not rows["correct_refusal"]["significant"]
    assert result["by_type"] == {}
    assert "answer_accuracy" in format_comparison(result)


def test_cli_compare_and_errors(tmp_path, items, capsys):
    run(items, tmp_path / "a", ScriptedAnswerer(items))
    run(items, tmp_path / "b", ScriptedAnswerer(items))
    assert main(["--compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "questions answered by both" in capsys.readouterr().out
    assert main(["--compare", str(tmp_path / "a"), str(tmp_path / "nothing")]) == 2
    assert "error: No results.jsonl" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_answer_round_trips_through_its_dict():
    chunk = Chunk("id1", "text", "a.md", 2, "Intro", "text", 0, 4)
    answer = Answer(
        "It is 4 [1].",
        True,
        [Citation(1, "id1", "a.md", 2, "Intro", "text")],
        [SearchHit(chunk, 0.5, {"dense": 0.5}, 1)],
        "q",
        "en",
        "m",
        {"total": 3.0},
        {"prompt_tokens": 9},
    )
    assert answer_from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def test_cli_run_with_the_pipeline_swapped_for_a_script(tmp_path, items, capsys, monkeypatch):
    import eval.run as run_module

    made = []

    def factory(settings):
        made.append(settings)
        return ScriptedAnswerer(items)

    monkeypatch.setattr(run_module, "PipelineAnswerer", factory)
    qa = tmp_path / "qa.jsonl"
    qa.write_text((EXAMPLES / "qa.jsonl").read_text(encoding="utf-8") + "{bad line\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [str(qa), "--index-dir", str(tmp_path / "ix"), "--out", str(out), "--quiet", "--k", "1,2"]
    assert main([*args, "--sample", "8", "--seed", "2", "--limit", "5"]) == 0
    captured = capsys.readouterr()
    assert "line 13: not valid JSON" in captured.err
    assert "recall@2" in captured.out and "5 of 5 questions answered" in captured.out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["questions"] == 5 and summary["mode"] == "in-process"
    assert str(made[0].index_dir) == str(tmp_path / "ix")
    assert summary["dataset_problems"] == [
        "line 13: not valid JSON (Expecting property name enclosed in double quotes at column 2)"
    ]
    # --resume over a larger selection answers only the new questions
    assert main([*args, "--resume"]) == 0
    assert len(read_results(out / "results.jsonl")) == 12
    # everything answered: the report is rebuilt without building an answerer
    assert main([*args, "--resume"]) == 0
    assert len(made) == 2
    assert main([*args, "--strict"]) == 2
    assert "line 13" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")
def test_http_answerer_against_the_api_app(tmp_path, items):
    """The --url client speaks the real /ask route (served in-process, pipeline scripted)."""
    pytest.importorskip("api.app")
    from fastapi.testclient import TestClient

    from api.app import create_app
    from eval.run import HttpAnswerer
    from rag.config import Settings
    from rag.index import DB_NAME

    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / DB_NAME).write_bytes(b"")  # the server only checks that an index exists
    scripted = ScriptedAnswerer(items)

    class Pipeline:
        """The part of AnswerPipeline's surface the server uses."""

        model_name = "scripted"
        retriever = None

        def warm_up(self):
            pass

        def answer(self, question, top_k=None, filters=None, history=None, answer_mode=None):
            return scripted.answer(question, top_k)

    app = create_app(Settings.load(env={}, overrides={"index_dir": tmp_path / "ix"}), lambda settings: Pipeline())
    # The server answers only to its own host names (api/guard.py), not TestClient's "testserver".
    with TestClient(app, base_url="http://127.0.0.1") as client:
        answerer = HttpAnswerer("http://127.0.0.1")
        answerer.client = client
        answerer.warm_up(wait_s=30)
        subset = [*items[:3], items[-1]]
        records, answered, _ = evaluate(subset, answerer, tmp_path / "out", ks=[1], progress=False)
        with pytest.raises(RuntimeError, match="HTTP 422: The question is empty"):
            answerer.answer("   ")
    assert answered == 4
    assert [r["scores"]["answer_accuracy"] for r in records] == [1.0, 1.0, 1.0, 1.0]
    assert records[0]["sources"][0] == "travel-policy.md" and records[0]["citations"][0]["number"] == 1


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


def test_a_hop_that_read_the_second_gold_document_counts_as_found(typed_items):
    by_id = {i.id: i for i in typed_items}
    answers = run_a(typed_items)
    c1 = score_record(by_id["c1"], answers["c1"], LexicalJudge(), [1, 3], 1.0)
    assert (c1["hops"], c1["scores"]["supporting_recall"], c1["scores"]["supporting_fraction"]) == (1, 1.0, 1.0)
    assert c1["reasoning"][0]["passages"][0]["source"] == "f.txt" and c1["reasoning"][0]["citation"] == 1
    assert c1["scores"]["recall@3"] == 0.5  # retrieval metrics still count the passages only
    without = score_record(by_id["c1"], typed_answer("yes [1]", ["e.txt"]), LexicalJudge(), [1, 3], 1.0)
    assert (without["hops"], without["reasoning"]) == (0, [])
    assert (without["scores"]["supporting_recall"], without["scores"]["supporting_fraction"]) == (0.0, 0.5)
    # over HTTP the hops arrive as dicts and are kept
    b2 = score_record(by_id["b2"], answers["b2"], LexicalJudge(), [1, 3], 1.0)
    assert b2["hops"] == 2 and [h["finding"] for h in b2["reasoning"]] == ["the bank is in x", "x is in Marseille"]
    assert (b2["scores"]["supporting_recall"], b2["scores"]["supporting_fraction"]) == (0.0, 0.5)


def test_summary_table_and_report_break_the_figures_down_by_question_type(tmp_path, typed_items):
    records = write_run(tmp_path, typed_items, run_a(typed_items), walls={"u1": 40.0})
    summary = summarize(records, [1, 3], {"qa_file": "typed.jsonl"})
    by_type = summary["by_type"]
    assert list(by_type) == ["bridge", "comparison", "untyped"]
    bridge, comparison, untyped = by_type["bridge"], by_type["comparison"], by_type["untyped"]

    def means(t):
        return {
            n: t["metrics"][n]["mean"]
            for n in ("answer_accuracy", "exact_match", "f1", "supporting_recall", "supporting_fraction")
        }

    # b1 "It is Paris": right, EM 0, F1 2*(1/3)*1/(1/3+1) = 0.5, both gold documents; b2 wrong, one of two
    assert means(bridge) == {
        "answer_accuracy": 0.5,
        "exact_match": 0.0,
        "f1": pytest.approx(0.25),
        "supporting_recall": 0.5,
        "supporting_fraction": 0.75,
    }
    assert (bridge["questions"], bridge["answered"], bridge["metrics"]["f1"]["n"]) == (2, 2, 2)
    assert bridge["hops"] == {"mean": 1.0, "max": 2, "n": 2}
    assert bridge["latency_ms"]["p50"] == 200.0  # totals 100 and 300
    assert means(comparison) == {
        "answer_accuracy": 1.0,
        "exact_match": 1.0,
        "f1": 1.0,
        "supporting_recall": 1.0,
        "supporting_fraction": 1.0,
    }
    assert comparison["hops"]["mean"] == 1.0 and comparison["latency_ms"]["p50"] == 50.0
    assert means(untyped)["supporting_recall"] == 1.0 and untyped["hops"]["mean"] == 0.0
    assert untyped["latency_ms"]["p50"] == 40.0  # no total: the wall time
    # the overall figures are over all four questions, as before
    assert summary["metrics"]["answer_accuracy"]["mean"] == 0.75
    assert summary["metrics"]["supporting_recall"]["mean"] == 0.75
    assert summary["hops"] == {"mean": 0.75, "max": 2, "n": 4}

    table = console_table(summary).splitlines()
    rows = {
        line.split()[0]: line.split() for line in table if line.split()[:1] in (["bridge"], ["comparison"], ["untyped"])
    }
    assert rows["bridge"] == ["bridge", "2", "50.0", "0.0", "25.0", "50.0", "1.00", "200"]
    assert rows["comparison"] == ["comparison", "1", "100.0", "100.0", "100.0", "100.0", "1.00", "50"]
    assert rows["untyped"] == ["untyped", "1", "100.0", "100.0", "100.0", "100.0", "0.00", "40"]
    html = write_report(tmp_path, summary, records).read_text(encoding="utf-8")
    assert (
        "<tr><td>bridge</td><td class=num>2</td><td class=num>2</td><td class=num>50.0</td><td class=num>0.0</td>"
        "<td class=num>25.0</td><td class=num>50.0</td><td class=num>75.0</td><td class=num>1.00</td>"
        "<td class=num>200</td></tr>"
    ) in html
    assert "<td>b2<br><span class=muted>bridge, 2 hops</span></td>" in html


def test_no_types_no_breakdown(tmp_path, typed_items):
    untyped = [replace(i, type=None) for i in typed_items]
    records = write_run(tmp_path, untyped, run_a(typed_items))
    summary = summarize(records, [1, 3], {})
    assert summary["by_type"] == {} and "by question type" not in console_table(summary)
    assert "By question type" not in write_report(tmp_path, summary, records).read_text(encoding="utf-8")


def test_compare_pairs_the_questions_of_each_type(tmp_path, typed_items):
    write_run(tmp_path / "a", typed_items, run_a(typed_items))
    # B: b1 the same; b2 right, its hop read the second gold document; c1 wrong, no hop; u1 not asked.
    write_run(
        tmp_path / "b",
        typed_items,
        {
            "b1": typed_answer("It is Paris [1].", ["a.txt", "b.txt"], total=100.0),
            "b2": typed_answer(
                "Lyon [1]",
                ["c.txt"],
                total=120.0,
                reasoning=[Hop("bridge", "Which bank?", "bank", hop_passages("d.txt"), "in Lyon", 1)],
            ),
            "c1": typed_answer("no [1]", ["e.txt", "f.txt"], total=60.0),
        },
    )
    result = compare_runs(tmp_path / "a", tmp_path / "b")
    assert (result["shared_questions"], result["only_a"], result["only_b"]) == (3, 1, 0)
    assert list(result["by_type"]) == ["bridge", "comparison"]  # u1 is in A only
    bridge, comparison = result["by_type"]["bridge"], result["by_type"]["comparison"]
    assert (bridge["shared_questions"], bridge["hops_a"], bridge["hops_b"]) == (2, 1.0, 0.5)
    assert (comparison["shared_questions"], comparison["hops_a"], comparison["hops_b"]) == (1, 1.0, 0.0)
    rows = {r["metric"]: r for r in bridge["metrics"]}
    assert list(rows) == ["answer_accuracy", "exact_match", "f1", "supporting_recall"]
    # per question A -> B: b1 1 -> 1, b2 0 -> 1 (accuracy, EM, supporting recall); F1 b1 .5 -> .5, b2 0 -> 1
    for name, a, b in (
        ("answer_accuracy", [1, 0], [1, 1]),
        ("exact_match", [0, 0], [0, 1]),
        ("f1", [0.5, 0], [0.5, 1]),
        ("supporting_recall", [1, 0], [1, 1]),
    ):
        expected = paired_bootstrap(a, b)
        assert (rows[name]["n"], rows[name]["a"], rows[name]["b"]) == (
            2,
            pytest.approx(expected.mean_a),
            pytest.approx(expected.mean_b),
        )
        assert rows[name]["diff"] == pytest.approx(0.5)
        assert (rows[name]["p_value"], rows[name]["significant"]) == (expected.p_value, expected.significant)
    rows = {r["metric"]: r for r in comparison["metrics"]}
    assert (rows["answer_accuracy"]["diff"], rows["f1"]["diff"], rows["supporting_recall"]["diff"]) == (-1.0, -1.0, 0.0)
    assert rows["answer_accuracy"]["n"] == 1 and not rows["answer_accuracy"]["significant"]
    # overall, over the three shared questions: accuracy 2/3 in both
    overall = {r["metric"]: r for r in result["metrics"]}
    assert overall["answer_accuracy"]["diff"] == pytest.approx(0.0)
    assert overall["supporting_recall"]["diff"] == pytest.approx(1 / 3)
    text = format_comparison(result)
    assert "type bridge: 2 questions; mean hops A 1.00, B 0.50" in text
    assert "type comparison: 1 question; mean hops A 1.00, B 0.00" in text
