"""Question types and multi-hop evidence: hops that read a gold document, and the summary, console
table and HTML report broken down by question type.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from eval.faithfulness import LexicalJudge
from eval.report import console_table, summarize, write_report
from eval.run import score_record
from tests.eval.conftest import run_a, typed_answer, write_run


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
