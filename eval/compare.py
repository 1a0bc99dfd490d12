"""Comparing two finished runs: each metric's difference, with a paired bootstrap over the
questions both runs answered, overall and per question type."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eval.metrics import paired_bootstrap
from eval.results import RESULTS, latest_by_id, read_results
from eval.summary import TYPE_METRICS, UNTYPED, hop_counts, metric_names, question_types
from rag.errors import RagError


def _results_beside(path: Path) -> tuple[Path, list[dict[str, Any]]]:
    folder = path if path.is_dir() else path.parent
    results = folder / RESULTS
    records = read_results(results)
    if not records:
        raise RagError(
            f"No {RESULTS} beside {path}; --compare needs the results.jsonl a run writes next to summary.json."
        )
    return folder, [r for r in latest_by_id(records).values() if not r.get("error")]


def _paired_rows(
    by_a: dict[str, dict[str, Any]],
    by_b: dict[str, dict[str, Any]],
    ids: Sequence[str],
    names: Sequence[str],
    seed: int,
) -> list[dict[str, Any]]:
    """Per metric of ``names``: A, B, B - A with a 95% CI and a paired-bootstrap p-value over ``ids``."""
    rows = []
    for name in names:
        pairs = [(by_a[i]["scores"].get(name), by_b[i]["scores"].get(name)) for i in ids]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        if not pairs:
            continue
        res = paired_bootstrap([x for x, _ in pairs], [y for _, y in pairs], seed=seed)
        rows.append(
            {
                "metric": name,
                "n": res.n,
                "a": res.mean_a,
                "b": res.mean_b,
                "diff": res.diff,
                "ci_low": res.ci_low,
                "ci_high": res.ci_high,
                "p_value": res.p_value,
                "significant": res.significant,
            }
        )
    return rows


def _mean_hops(records: Iterable[dict[str, Any]]) -> float | None:
    counts = hop_counts(list(records))
    return counts["mean"] if counts else None


def compare_runs(path_a: Path, path_b: Path, seed: int = 0) -> dict[str, Any]:
    """Per metric: A, B, B - A with a 95% CI and a paired-bootstrap p-value over shared questions;
    where the questions have types, the same per type for :data:`TYPE_METRICS`."""
    folder_a, a = _results_beside(Path(path_a))
    folder_b, b = _results_beside(Path(path_b))
    by_a = {r["id"]: r for r in a}
    by_b = {r["id"]: r for r in b}
    shared = [i for i in by_a if i in by_b]
    if not shared:
        raise RagError(
            f"Runs {folder_a} and {folder_b} share no answered question ids; compare runs over the same QA set."
        )
    names: list[str] = []
    for r in (*a, *b):
        for name in r.get("scores", {}):
            if name not in names:
                names.append(name)
    ks = sorted({int(n.split("@")[1]) for n in names if "@" in n})
    order = [n for n in metric_names(ks) if n in names] + [n for n in names if n not in metric_names(ks)]
    # A question's type as either run recorded it (a run from before types were recorded has none).
    kind = {i: by_a[i].get("type") or by_b[i].get("type") or UNTYPED for i in shared}
    by_type = {}
    for t in question_types({"type": k} for k in kind.values()):
        ids = [i for i in shared if kind[i] == t]
        by_type[t] = {
            "shared_questions": len(ids),
            "hops_a": _mean_hops(by_a[i] for i in ids),
            "hops_b": _mean_hops(by_b[i] for i in ids),
            "metrics": _paired_rows(by_a, by_b, ids, TYPE_METRICS, seed),
        }
    return {
        "a": str(folder_a),
        "b": str(folder_b),
        "shared_questions": len(shared),
        "only_a": len(by_a) - len(shared),
        "only_b": len(by_b) - len(shared),
        "metrics": _paired_rows(by_a, by_b, shared, order, seed),
        "by_type": by_type,
    }


def _comparison_line(row: dict[str, Any]) -> str:
    ci = f"[{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"
    mark = " *" if row["significant"] else ""
    return (
        f"  {row['metric']:<20} {row['n']:>6} {100 * row['a']:>7.1f} {100 * row['b']:>7.1f} "
        f"{100 * row['diff']:>+7.1f}   {ci:<16} {row['p_value']:>6.3f}{mark}"
    )


def _hops_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_comparison(result: dict[str, Any]) -> str:
    lines = [
        f"A = {result['a']}",
        f"B = {result['b']}",
        f"{result['shared_questions']} questions answered by both"
        + (
            f" ({result['only_a']} only in A, {result['only_b']} only in B: left out)"
            if result["only_a"] or result["only_b"]
            else ""
        ),
        "",
        f"  {'metric':<20} {'n':>6} {'A %':>7} {'B %':>7} {'B-A':>7}   {'95% CI':<16} {'p':>6}",
    ]
    lines.extend(_comparison_line(row) for row in result["metrics"])
    for kind, t in (result.get("by_type") or {}).items():
        hops = (
            ""
            if t["hops_a"] is None and t["hops_b"] is None
            else f"; mean hops A {_hops_text(t['hops_a'])}, B {_hops_text(t['hops_b'])}"
        )
        lines.append("")
        n = t["shared_questions"]
        lines.append(f"  type {kind}: {n} question{'s' * (n != 1)}{hops}")
        lines.extend(_comparison_line(row) for row in t["metrics"])
    lines.append("")
    lines.append("  * significant at p < 0.05 (paired bootstrap over questions, 2000 resamples)")
    return "\n".join(lines)
