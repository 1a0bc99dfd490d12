"""What a run leaves behind: results.jsonl, summary.json, report.html and a console table.

``results.jsonl`` holds one scored question a line (written as answers arrive, so a run can be
inspected while it goes and resumed after a stop); the summary and the HTML report are built
from it at the end. ``compare_runs`` reads the results of two runs and tests each metric's
difference with a paired bootstrap over the questions both runs answered. Where the QA file
gives question types (bridge, comparison...), both also break the figures down by type.

The work is done by ``eval.results`` (results.jsonl and summary.json), ``eval.summary`` (the
summary and the console table), ``eval.html_report`` (report.html) and ``eval.compare``
(``--compare``); this module keeps every name importable from its old path.
"""

from __future__ import annotations

from eval.compare import compare_runs, format_comparison
from eval.html_report import plots, recall_curve, render_html, write_report
from eval.results import REPORT, RESULTS, SUMMARY, latest_by_id, read_results, write_results_line, write_summary
from eval.summary import (
    FAILURE_TYPES,
    METRIC_HELP,
    STAGES,
    TYPE_METRICS,
    UNTYPED,
    check_counts,
    console_table,
    energy_text,
    hop_counts,
    metric_names,
    question_types,
    summarize,
    total_ms,
    type_table,
)

__all__ = [
    "RESULTS",
    "SUMMARY",
    "REPORT",
    "FAILURE_TYPES",
    "UNTYPED",
    "TYPE_METRICS",
    "metric_names",
    "question_types",
    "total_ms",
    "hop_counts",
    "type_table",
    "read_results",
    "latest_by_id",
    "summarize",
    "write_results_line",
    "write_summary",
    "console_table",
    "plots",
    "render_html",
    "write_report",
    "compare_runs",
    "format_comparison",
    "recall_curve",
    "energy_text",
    "check_counts",
    "METRIC_HELP",
    "STAGES",
]
