"""The evaluation loop and its outputs, with a scripted answerer standing in for the pipeline:
scores, results, report and table, failure labels, resume, early stop, the CLI and the HTTP client.
"""

from __future__ import annotations

import json

import pytest

from eval.report import console_table, read_results, write_report
from eval.run import answer_from_dict, evaluate, main
from rag.documents import Answer, Chunk, Citation, SearchHit
from rag.errors import RagError
from tests.eval.conftest import EXAMPLES, ScriptedAnswerer, run


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
