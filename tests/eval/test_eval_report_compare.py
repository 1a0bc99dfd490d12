"""Comparing two evaluation runs: paired differences and their significance, overall and per
question type, in the library and on the command line.
"""

from __future__ import annotations

import pytest

from eval.metrics import paired_bootstrap
from eval.report import compare_runs, format_comparison
from eval.run import main
from tests.eval.conftest import Hop, ScriptedAnswerer, hop_passages, run, run_a, typed_answer, write_run


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
