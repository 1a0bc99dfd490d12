"""What a run leaves behind: results.jsonl, summary.json, report.html and a console table.

``results.jsonl`` holds one scored question a line (written as answers arrive, so a run can be
inspected while it goes and resumed after a stop); the summary and the HTML report are built
from it at the end. ``compare_runs`` reads the results of two runs and tests each metric's
difference with a paired bootstrap over the questions both runs answered. Where the QA file
gives question types (bridge, comparison...), both also break the figures down by type.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eval.metrics import mean_with_ci, paired_bootstrap, percentile, retrieval_scores
from rag.errors import RagError

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"

FAILURE_TYPES = {
    "wrong_answer": "wrong answer",
    "retrieval_miss": "retrieval miss",
    "wrong_refusal": "wrong refusal",
    "missed_refusal": "missed refusal",
    "unfaithful": "unfaithful",
}
STAGES = ("rewrite", "retrieve", "rerank", "read", "generate", "first_token", "total", "wall")
UNTYPED = "untyped"  # the group of questions without a type, where other questions have one
# What the per-type table shows and what --compare tests per type.
TYPE_METRICS = ("answer_accuracy", "exact_match", "f1", "supporting_recall")


def metric_names(ks: Sequence[int]) -> list[str]:
    """Every per-question score, in the order tables show them."""
    return [
        "answer_accuracy",
        "exact_match",
        "f1",
        "bleu",
        "rouge_l",
        "point_coverage",
        "evidence_accuracy",
        "evidence_f1",
        "correct_refusal",
        "wrong_refusal",
        *(f"recall@{k}" for k in ks),
        "mrr",
        *(f"ndcg@{k}" for k in ks),
        "supporting_recall",
        "supporting_fraction",
        "faithfulness",
        "citation_precision",
        "faithfulness_llm",
    ]


METRIC_HELP = {
    "answer_accuracy": "answer contains a gold alternative (or every item of an all-of group); refusal right on unanswerable",
    "exact_match": "normalised answer equals a gold alternative (SQuAD / CMRC 2018 normalisation)",
    "bleu": "sentence BLEU (sacreBLEU, zh tokenizer for Chinese) against the gold alternatives, 0-1",
    "rouge_l": "ROUGE-L F (rouge-score, EM/F1 tokens), best over the gold alternatives",
    "point_coverage": "mean ROUGE-L recall of the reference's answer_points in the answer (0 for a refusal), 0-1",
    "evidence_accuracy": "the sentence a short answer was read from contains a gold alternative",
    "evidence_f1": "token F1 of that sentence, as if it were the answer",
    "f1": "token F1 (English words; Chinese characters, longest common run as in CMRC 2018)",
    "correct_refusal": "share of unanswerable questions refused",
    "wrong_refusal": "share of answerable questions refused (lower is better)",
    "mrr": "1 / rank of the first gold document among retrieved documents",
    "supporting_recall": "every gold document is among the documents the answer used (its passages and its hops')",
    "supporting_fraction": "share of the gold documents among the documents the answer used",
    "faithfulness": "share of answer sentences supported by the retrieved passages (offline lexical judge)",
    "citation_precision": "share of citations whose passage supports the citing sentence",
    "faithfulness_llm": "share of the answer's claims an LLM judge found supported",
}


# --- reading and writing results -----------------------------------------------------------


def read_results(path: Path) -> list[dict[str, Any]]:
    """Records of a results.jsonl; a line cut off by a crash is ignored."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def latest_by_id(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each question, preferring one without an error."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        prev = out.get(r["id"])
        if prev is None or not r.get("error") or prev.get("error"):
            out[r["id"]] = r
    return out


# --- the summary -------------------------------------------------------------------------------


def question_types(records: Iterable[dict[str, Any]]) -> list[str]:
    """The question types of ``records``, sorted, with ``untyped`` last; none when no record has a type."""
    kinds = {r.get("type") or UNTYPED for r in records}
    if kinds <= {UNTYPED}:
        return []
    return sorted(kinds - {UNTYPED}) + ([UNTYPED] if UNTYPED in kinds else [])


def total_ms(record: dict[str, Any]) -> float | None:
    """A question's latency: the pipeline's total, or the wall time where it gave none."""
    timings = record.get("timings_ms") or {}
    value = timings.get("total") or timings.get("wall")
    return float(value) if isinstance(value, (int, float)) else None


def hop_counts(records: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Mean and most reasoning hops per question (0: no reasoning stage ran); None for records
    written before hops were recorded."""
    values = [r["hops"] for r in records if isinstance(r.get("hops"), int)]
    if not values:
        return None
    return {"mean": sum(values) / len(values), "max": max(values), "n": len(values)}


def summarize(
    records: Sequence[dict[str, Any]], ks: Sequence[int], meta: dict[str, Any], seed: int = 0
) -> dict[str, Any]:
    """Means with bootstrap 95% CIs, by language and by question type, failure counts, reasoning
    hops, latency and throughput."""
    ok = [r for r in records if not r.get("error")]
    names = metric_names(ks)

    def means(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for name in names:
            values = [r["scores"].get(name) for r in rows]
            if any(v is not None for v in values):
                out[name] = mean_with_ci(values, seed=seed)
        return out

    languages = sorted({r.get("lang", "en") for r in ok})
    failures = Counter(f for r in ok for f in r.get("failures", []))
    latency = {}
    for stage in STAGES:
        values = [r.get("timings_ms", {}).get(stage) for r in ok]
        values = [v for v in values if isinstance(v, (int, float))]
        if values:
            latency[stage] = {
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "mean": sum(values) / len(values),
                "n": len(values),
            }
    completion = [r.get("usage", {}).get("completion_tokens") for r in ok]
    generate_ms = [r.get("timings_ms", {}).get("generate") for r in ok]
    pairs = [(c, g) for c, g in zip(completion, generate_ms) if isinstance(c, (int, float)) and g]
    completion = [c for c in completion if isinstance(c, (int, float))]
    prompt = [r.get("usage", {}).get("prompt_tokens") for r in ok]
    prompt = [p for p in prompt if isinstance(p, (int, float))]
    run_seconds = meta.get("run_seconds") or 0
    throughput = {
        "completion_tokens_per_s": sum(c for c, _ in pairs) / (sum(g for _, g in pairs) / 1000) if pairs else None,
        "questions_per_s": meta.get("answered_this_run", 0) / run_seconds if run_seconds else None,
        "prompt_tokens_mean": sum(prompt) / len(prompt) if prompt else None,
        "completion_tokens_mean": sum(completion) / len(completion) if completion else None,
    }
    models = Counter(r.get("model") for r in ok if r.get("model"))
    by_type = {}
    for kind in question_types(records):
        rows = [r for r in records if (r.get("type") or UNTYPED) == kind]
        done = [r for r in rows if not r.get("error")]
        totals = [t for t in (total_ms(r) for r in done) if t is not None]
        by_type[kind] = {
            "questions": len(rows),
            "answered": len(done),
            "metrics": means(done),
            "hops": hop_counts(done),
            "latency_ms": {"p50": percentile(totals, 50), "p95": percentile(totals, 95), "n": len(totals)}
            if totals
            else None,
        }
    return {
        **meta,
        "questions": len(records),
        "answered": len(ok),
        "errors": len(records) - len(ok),
        "model": models.most_common(1)[0][0] if models else None,
        "ks": list(ks),
        "metrics": means(ok),
        "by_language": {lang: means([r for r in ok if r.get("lang", "en") == lang]) for lang in languages},
        "by_type": by_type,
        "hops": hop_counts(ok),
        "failures": {name: failures.get(name, 0) for name in FAILURE_TYPES},
        "latency_ms": latency,
        "throughput": throughput,
        "checks": check_counts(ok),
        "reference_perplexity": _distribution([r.get("reference_perplexity") for r in ok]),
    }


def _distribution(values: Sequence[Any]) -> dict[str, float] | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    if not numbers:
        return None
    return {"p50": percentile(numbers, 50), "mean": sum(numbers) / len(numbers), "n": len(numbers)}


def check_counts(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """For each answer check: how often it ran, replaced the answer or refused, and how many of
    the answers it changed came out right (a right answer, or a refusal of an unanswerable one)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        scores = r.get("scores") or {}
        right = (
            bool(scores.get("answer_accuracy")) if r.get("answerable", True) else bool(scores.get("correct_refusal"))
        )
        for entry in r.get("checks") or []:
            row = out.setdefault(entry.get("check", "?"), {"ran": 0, "replace": 0, "refuse": 0, "right_after": 0})
            row["ran"] += 1
            action = entry.get("action")
            if action in ("replace", "refuse"):
                row[action] += 1
                row["right_after"] += int(right)
    return out


def write_results_line(handle, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY
    path.write_text(json.dumps(_finite(summary), ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# --- console ------------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:5.1f}"


def console_table(summary: dict[str, Any]) -> str:
    """The end-of-run table: metrics with 95% CIs, failures, latency and throughput."""
    lines = [
        f"{summary['answered']} of {summary['questions']} questions answered"
        + (f", {summary['errors']} FAILED (not scored; see results.jsonl)" if summary["errors"] else "")
        + (f" by {summary['model']}" if summary.get("model") else ""),
        "",
        f"  {'metric':<20} {'%':>6}   {'95% CI':<15} {'n':>6}",
    ]
    for name, m in summary["metrics"].items():
        ci = f"[{_pct(m['ci_low']).strip()}, {_pct(m['ci_high']).strip()}]"
        lines.append(f"  {name:<20} {_pct(m['mean']):>6}   {ci:<15} {m['n']:>6}")
    if len(summary.get("by_language", {})) > 1:
        head = ["answer_accuracy", "f1", "faithfulness"]
        lines.append("")
        lines.append(
            "  by language: "
            + "; ".join(
                f"{lang} " + " ".join(f"{n}={_pct(m[n]['mean']).strip()}" for n in head if n in m)
                for lang, m in summary["by_language"].items()
            )
        )
    if summary.get("by_type"):
        lines.append("")
        lines.extend(type_table(summary["by_type"]))
    lines.append("")
    lines.append("  failures: " + ", ".join(f"{FAILURE_TYPES[k]} {v}" for k, v in summary["failures"].items()))
    ppl = summary.get("reference_perplexity")
    if ppl:
        lines.append(
            f"  generator's perplexity of the gold answers: p50 {ppl['p50']:.2f}, mean {ppl['mean']:.2f} (n={ppl['n']})"
        )
    fired = {name: c for name, c in (summary.get("checks") or {}).items() if c["replace"] or c["refuse"]}
    if fired:
        lines.append(
            "  checks that changed answers (replaced / refused, right after): "
            + ", ".join(f"{name} {c['replace']}/{c['refuse']}, {c['right_after']}" for name, c in fired.items())
        )
    if summary["latency_ms"]:
        lines.append(
            "  latency ms (p50 / p95): "
            + ", ".join(f"{stage} {v['p50']:.0f} / {v['p95']:.0f}" for stage, v in summary["latency_ms"].items())
        )
    t = summary["throughput"]
    parts = []
    if t.get("completion_tokens_per_s"):
        parts.append(f"{t['completion_tokens_per_s']:.1f} generated tokens/s")
    if t.get("questions_per_s"):
        parts.append(f"{t['questions_per_s']:.2f} questions/s")
    if t.get("prompt_tokens_mean"):
        parts.append(f"{t['prompt_tokens_mean']:.0f} prompt tokens per question")
    if parts:
        lines.append("  throughput: " + ", ".join(parts))
    energy = energy_text(summary.get("energy"))
    if energy:
        lines.append("  energy: " + energy)
    return "\n".join(lines)


def type_table(by_type: dict[str, Any]) -> list[str]:
    """The per-question-type lines of the console table."""
    heads = {"answer_accuracy": "acc", "exact_match": "EM", "f1": "F1", "supporting_recall": "support"}
    lines = [
        "  by question type (% of answered questions; support: all gold documents used; latency: total ms)",
        f"  {'type':<16} {'n':>5} " + " ".join(f"{heads[n]:>7}" for n in TYPE_METRICS) + f" {'hops':>5} {'p50 ms':>7}",
    ]
    for kind, t in by_type.items():
        m = t["metrics"]
        hops = f"{t['hops']['mean']:.2f}" if t.get("hops") else "-"
        p50 = f"{t['latency_ms']['p50']:.0f}" if t.get("latency_ms") else "-"
        lines.append(
            f"  {kind:<16} {t['answered']:>5} "
            + " ".join(f"{_pct(m[n]['mean']) if n in m else '-':>7}" for n in TYPE_METRICS)
            + f" {hops:>5} {p50:>7}"
        )
    return lines


def energy_text(energy: dict[str, Any] | None) -> str:
    """The energy of the answering as one line (rag/energy.py): kWh and g CO2e in all and per
    1,000 answers, and how it was estimated; or why it was not measured."""
    if not energy:
        return ""
    if not energy.get("measured"):
        return f"not measured: {energy.get('reason')}"
    text = (
        f"{energy['kwh']:.3g} kWh, {energy['g_co2e']:.3g} g CO2e for {energy.get('count')} answers "
        f"in {energy['seconds']:.0f} s"
    )
    per = energy.get("per_1000_answers")
    if per:
        text += f"; per 1,000 answers {per['kwh']:.3g} kWh, {per['g_co2e']:.3g} g CO2e"
    return text + f" ({energy.get('method')})"


# --- plots ---------------------------------------------------------------------------------------


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def recall_curve(records: Sequence[dict[str, Any]], max_k: int) -> list[tuple[int, float]]:
    """Mean recall@k for k = 1..max_k over questions with gold documents."""
    rows = [r for r in records if r.get("gold_docs") and not r.get("error")]
    if not rows:
        return []
    ks = list(range(1, max_k + 1))
    totals = [0.0] * len(ks)
    for r in rows:
        scores = retrieval_scores(r.get("sources", []), r["gold_docs"], ks)
        for i, k in enumerate(ks):
            totals[i] += scores[f"recall@{k}"]
    return [(k, t / len(rows)) for k, t in zip(ks, totals)]


def plots(records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, str]:
    """Base64 PNGs: F1 distribution, latency histogram, recall@k curve (Agg, no display needed)."""
    from matplotlib.figure import Figure

    ok = [r for r in records if not r.get("error")]
    out: dict[str, str] = {}
    f1 = [r["scores"]["f1"] for r in ok if r["scores"].get("f1") is not None]
    if f1:
        fig = Figure(figsize=(5, 3))
        ax = fig.add_subplot()
        ax.hist(f1, bins=[i / 10 for i in range(11)], color="#4c72b0", edgecolor="white")
        ax.set_xlabel("F1")
        ax.set_ylabel("questions")
        ax.set_title("F1 per question")
        out["f1"] = _png(fig)
    total = [r.get("timings_ms", {}).get("total") or r.get("timings_ms", {}).get("wall") for r in ok]
    total = [t / 1000 for t in total if t]
    if total:
        fig = Figure(figsize=(5, 3))
        ax = fig.add_subplot()
        ax.hist(total, bins=30, color="#dd8452", edgecolor="white")
        ax.set_xlabel("seconds per question (total)")
        ax.set_ylabel("questions")
        ax.set_title("Latency")
        out["latency"] = _png(fig)
    longest = max((len(set(r.get("sources", []))) for r in ok), default=0)
    curve = recall_curve(ok, max(max(ks, default=1), min(longest, 20)))
    if curve:
        fig = Figure(figsize=(5, 3))
        ax = fig.add_subplot()
        ax.plot([k for k, _ in curve], [v for _, v in curve], marker="o", color="#55a868")
        ax.set_ylim(0, 1.02)
        ax.set_xticks([k for k, _ in curve])
        ax.set_xlabel("k (retrieved documents)")
        ax.set_ylabel("recall@k")
        ax.set_title("Retrieval recall@k")
        ax.grid(alpha=0.3)
        out["recall"] = _png(fig)
    return out


# --- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}
th,td{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;border-radius:3px;padding:0 4px;margin:1px;font-size:12px;background:#fde2e1;color:#9b1c1c}
.filters button{margin:2px;padding:3px 8px;cursor:pointer} .filters button.on{background:#333;color:#fff}
.plots img{margin-right:12px;border:1px solid #eee} .muted{color:#777} details{max-width:60em}
.bad{color:#9b1c1c} .good{color:#1b7a3a}
"""

_JS = """
let current='all';
function show(kind){current=kind;
  document.querySelectorAll('.filters button').forEach(b=>b.classList.toggle('on',b.dataset.kind===kind));
  apply();}
function apply(){const q=document.getElementById('search').value.toLowerCase();let n=0;
  document.querySelectorAll('#questions tbody tr').forEach(tr=>{
    const f=tr.dataset.failures.split(' ');
    const okKind=current==='all'||(current==='ok'?tr.dataset.failures==='':f.includes(current));
    const okText=!q||tr.textContent.toLowerCase().includes(q);
    tr.style.display=okKind&&okText?'':'none'; if(okKind&&okText)n++;});
  document.getElementById('shown').textContent=n;}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}"


def render_html(summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    """The report page: summary tables, plots, and every question, filterable by failure type."""
    images = plots(records, summary.get("ks", [1, 3, 5]))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>RAG evaluation</title>",
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>",
        f"<h1>RAG evaluation: {_e(Path(summary.get('qa_file', '')).name)}</h1>",
        f"<p class='muted'>{summary['answered']} of {summary['questions']} questions answered"
        f"{', <b class=bad>' + str(summary['errors']) + ' failed</b>' if summary['errors'] else ''}; "
        f"model {_e(summary.get('model'))}; {_e(summary.get('mode'))} {_e(summary.get('url') or summary.get('index_dir'))}; "
        f"judge {_e(summary.get('judge', {}).get('name'))}; finished {_e(summary.get('finished_at'))}</p>",
        "<h2>Summary</h2><table><tr><th>metric</th><th>%</th><th>95% CI</th><th>n</th><th>meaning</th></tr>",
    ]
    for name, m in summary["metrics"].items():
        meaning = METRIC_HELP.get(name) or (
            "share of gold documents among the top k retrieved"
            if name.startswith("recall@")
            else "rank-discounted gain of gold documents in the top k"
            if name.startswith("ndcg@")
            else ""
        )
        parts.append(
            f"<tr><td>{_e(name)}</td><td class=num>{_num(m['mean'])}</td>"
            f"<td class=num>{_num(m['ci_low'])} – {_num(m['ci_high'])}</td><td class=num>{m['n']}</td>"
            f"<td class=muted>{_e(meaning)}</td></tr>"
        )
    parts.append("</table>")
    if len(summary.get("by_language", {})) > 1:
        names = list(summary["metrics"])
        parts.append(
            "<h3>By language</h3><table><tr><th>lang</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"
        )
        for lang, m in summary["by_language"].items():
            parts.append(
                f"<tr><td>{_e(lang)}</td>"
                + "".join(f"<td class=num>{_num(m[n]['mean']) if n in m else '-'}</td>" for n in names)
                + "</tr>"
            )
        parts.append("</table>")
    if summary.get("by_type"):
        names = [*TYPE_METRICS, "supporting_fraction"]
        parts.append(
            "<h3>By question type</h3><table><tr><th>type</th><th>questions</th><th>answered</th>"
            + "".join(f"<th>{_e(n)}</th>" for n in names)
            + "<th>mean hops</th><th>latency p50 (total ms)</th></tr>"
        )
        for kind, t in summary["by_type"].items():
            m = t["metrics"]
            hops = f"{t['hops']['mean']:.2f}" if t.get("hops") else "-"
            p50 = f"{t['latency_ms']['p50']:.0f}" if t.get("latency_ms") else "-"
            parts.append(
                f"<tr><td>{_e(kind)}</td><td class=num>{t['questions']}</td><td class=num>{t['answered']}</td>"
                + "".join(f"<td class=num>{_num(m[n]['mean']) if n in m else '-'}</td>" for n in names)
                + f"<td class=num>{hops}</td><td class=num>{p50}</td></tr>"
            )
        parts.append("</table>")
    if summary["latency_ms"]:
        parts.append("<h3>Latency (ms)</h3><table><tr><th>stage</th><th>p50</th><th>p95</th><th>mean</th></tr>")
        for stage, v in summary["latency_ms"].items():
            parts.append(
                f"<tr><td>{_e(stage)}</td><td class=num>{v['p50']:.0f}</td><td class=num>{v['p95']:.0f}</td>"
                f"<td class=num>{v['mean']:.0f}</td></tr>"
            )
        parts.append("</table>")
    t = summary["throughput"]
    parts.append("<p>" + "; ".join(f"{_e(k.replace('_', ' '))}: {v:.2f}" for k, v in t.items() if v) + "</p>")
    if summary.get("energy"):
        parts.append(f"<h3>Energy</h3><p>{_e(energy_text(summary['energy']))}</p>")
    if images:
        parts.append(
            "<h2>Plots</h2><div class=plots>"
            + "".join(f"<img alt='{_e(k)}' src='data:image/png;base64,{v}'>" for k, v in images.items())
            + "</div>"
        )

    checks = summary.get("checks") or {}
    if checks:
        parts.append(
            "<h2>Answer checks</h2><table><tr><th>check</th><th>ran</th><th>replaced</th><th>refused</th>"
            "<th>right after a change</th></tr>"
            + "".join(
                f"<tr><td>{_e(name)}</td><td>{c['ran']}</td><td>{c['replace']}</td><td>{c['refuse']}</td>"
                f"<td>{c['right_after']}</td></tr>"
                for name, c in checks.items()
            )
            + "</table>"
        )

    counts = summary["failures"]
    buttons = [f"<button data-kind=all class=on onclick=\"show('all')\">all ({len(records)})</button>"]
    buttons += [
        f"<button data-kind={k} onclick=\"show('{k}')\">{_e(label)} ({counts.get(k, 0)})</button>"
        for k, label in FAILURE_TYPES.items()
    ]
    errors = sum(1 for r in records if r.get("error"))
    if errors:
        buttons.append(f"<button data-kind=error onclick=\"show('error')\">error ({errors})</button>")
    buttons.append("<button data-kind=ok onclick=\"show('ok')\">no failure</button>")
    parts.append(
        "<h2>Questions</h2><div class=filters>"
        + "".join(buttons)
        + " <input id=search placeholder='search text' oninput='apply()'> "
        f"<span class=muted><span id=shown>{len(records)}</span> shown</span></div>"
    )
    parts.append(
        "<table id=questions><thead><tr><th>id</th><th>question</th><th>gold</th><th>answer</th>"
        "<th>acc</th><th>F1</th><th>recall</th><th>faith</th><th>failures</th><th>retrieved</th></tr></thead><tbody>"
    )
    k_main = max(summary.get("ks", [5]))
    for r in records:
        s = r.get("scores", {})
        tags = list(r.get("failures", [])) + (["error"] if r.get("error") else [])
        gold = " | ".join([*r.get("answers", []), *("all of: " + " + ".join(g) for g in r.get("answers_all_of", []))])
        gold = gold or "(unanswerable)"
        answer = _e(r.get("error") or r.get("prediction", ""))
        if r.get("refused"):
            answer = "<i>[refused]</i> " + answer
        details = ""
        if r.get("sentences"):
            rows = "".join(
                f"<li class={'good' if v.get('supported') else 'bad' if v.get('supported') is False else 'muted'}>"
                f"{_e(v['text'])} <span class=muted>({v.get('score', 0):.2f}"
                f"{'; missing ' + _e(', '.join(v['missing'])) if v.get('missing') else ''}"
                f"{'; new ' + _e(' '.join(v['novel'])) if v.get('novel') else ''})</span></li>"
                for v in r["sentences"]
            )
            details = f"<details><summary>sentences</summary><ul>{rows}</ul></details>"
        gold_docs = set(r.get("gold_docs", []))
        sources = []
        for src in dict.fromkeys(r.get("sources", [])):
            hit = any(src == g or src.endswith("/" + g) for g in gold_docs)
            sources.append(f"<span class={'good' if hit else 'muted'}>{_e(src)}</span>")
        about = [x for x in (r.get("type"), f"{r['hops']} hops" if r.get("hops") else None) if x]
        about_html = f"<br><span class=muted>{_e(', '.join(about))}</span>" if about else ""
        parts.append(
            f"<tr data-failures='{' '.join(tags)}'><td>{_e(r['id'])}{about_html}</td><td>{_e(r.get('question'))}</td>"
            f"<td>{_e(gold)}</td><td>{answer}{details}</td>"
            f"<td class=num>{_num(s.get('answer_accuracy'))}</td><td class=num>{_num(s.get('f1'))}</td>"
            f"<td class=num>{_num(s.get(f'recall@{k_main}'))}</td><td class=num>{_num(s.get('faithfulness'))}</td>"
            f"<td>{''.join(f'<span class=tag>{_e(FAILURE_TYPES.get(t, t))}</span>' for t in tags)}</td>"
            f"<td>{'<br>'.join(sources)}</td></tr>"
        )
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts)


def write_report(out: Path, summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> Path:
    path = out / REPORT
    path.write_text(render_html(summary, records), encoding="utf-8")
    return path


# --- comparing two runs -------------------------------------------------------------------------


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
]
