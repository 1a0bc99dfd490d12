"""The HTML report of a run: summary tables, plots and every question, filterable by failure type."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.metrics import retrieval_scores
from eval.results import REPORT
from eval.summary import FAILURE_TYPES, METRIC_HELP, TYPE_METRICS, energy_text

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


def _metric_meaning(name: str) -> str:
    """What a summary metric means, for the table's last column."""
    return METRIC_HELP.get(name) or (
        "share of gold documents among the top k retrieved"
        if name.startswith("recall@")
        else "rank-discounted gain of gold documents in the top k"
        if name.startswith("ndcg@")
        else ""
    )


def _head_parts(summary: dict[str, Any]) -> list[str]:
    """The page's head, title and the line that says what was evaluated and how."""
    where = _e(summary.get("url") or summary.get("index_dir"))
    return [
        "<!doctype html><html><head><meta charset='utf-8'><title>RAG evaluation</title>",
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>",
        f"<h1>RAG evaluation: {_e(Path(summary.get('qa_file', '')).name)}</h1>",
        f"<p class='muted'>{summary['answered']} of {summary['questions']} questions answered"
        f"{', <b class=bad>' + str(summary['errors']) + ' failed</b>' if summary['errors'] else ''}; "
        f"model {_e(summary.get('model'))}; {_e(summary.get('mode'))} {where}; "
        f"judge {_e(summary.get('judge', {}).get('name'))}; finished {_e(summary.get('finished_at'))}</p>",
    ]


def _metrics_parts(summary: dict[str, Any]) -> list[str]:
    """The summary table: every metric's mean, 95% CI, count and meaning."""
    parts = ["<h2>Summary</h2><table><tr><th>metric</th><th>%</th><th>95% CI</th><th>n</th><th>meaning</th></tr>"]
    for name, m in summary["metrics"].items():
        parts.append(
            f"<tr><td>{_e(name)}</td><td class=num>{_num(m['mean'])}</td>"
            f"<td class=num>{_num(m['ci_low'])} – {_num(m['ci_high'])}</td><td class=num>{m['n']}</td>"
            f"<td class=muted>{_e(_metric_meaning(name))}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _language_parts(summary: dict[str, Any]) -> list[str]:
    """The per-language table, where the run has more than one language."""
    if len(summary.get("by_language", {})) <= 1:
        return []
    names = list(summary["metrics"])
    parts = ["<h3>By language</h3><table><tr><th>lang</th>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"]
    for lang, m in summary["by_language"].items():
        parts.append(
            f"<tr><td>{_e(lang)}</td>"
            + "".join(f"<td class=num>{_num(m[n]['mean']) if n in m else '-'}</td>" for n in names)
            + "</tr>"
        )
    parts.append("</table>")
    return parts


def _type_parts(summary: dict[str, Any]) -> list[str]:
    """The per-question-type table, where the questions have types."""
    if not summary.get("by_type"):
        return []
    names = [*TYPE_METRICS, "supporting_fraction"]
    parts = [
        "<h3>By question type</h3><table><tr><th>type</th><th>questions</th><th>answered</th>"
        + "".join(f"<th>{_e(n)}</th>" for n in names)
        + "<th>mean hops</th><th>latency p50 (total ms)</th></tr>"
    ]
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
    return parts


def _cost_parts(summary: dict[str, Any]) -> list[str]:
    """Latency per stage, throughput and energy."""
    parts = []
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
    return parts


def _plots_and_checks_parts(summary: dict[str, Any], images: dict[str, str]) -> list[str]:
    """The plots, and the table of answer checks where any ran."""
    parts = []
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
    return parts


def _filter_parts(summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> list[str]:
    """The buttons and search box that filter the question table, and the table's head."""
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
    return [
        "<h2>Questions</h2><div class=filters>"
        + "".join(buttons)
        + " <input id=search placeholder='search text' oninput='apply()'> "
        f"<span class=muted><span id=shown>{len(records)}</span> shown</span></div>",
        "<table id=questions><thead><tr><th>id</th><th>question</th><th>gold</th><th>answer</th>"
        "<th>acc</th><th>F1</th><th>recall</th><th>faith</th><th>failures</th><th>retrieved</th></tr></thead><tbody>",
    ]


def _sentences_html(record: dict[str, Any]) -> str:
    """The judge's verdict on each answer sentence, folded away; empty where none was judged."""
    if not record.get("sentences"):
        return ""
    rows = "".join(
        f"<li class={'good' if v.get('supported') else 'bad' if v.get('supported') is False else 'muted'}>"
        f"{_e(v['text'])} <span class=muted>({v.get('score', 0):.2f}"
        f"{'; missing ' + _e(', '.join(v['missing'])) if v.get('missing') else ''}"
        f"{'; new ' + _e(' '.join(v['novel'])) if v.get('novel') else ''})</span></li>"
        for v in record["sentences"]
    )
    return f"<details><summary>sentences</summary><ul>{rows}</ul></details>"


def _question_row(r: dict[str, Any], k_main: int) -> str:
    """One question's row: its gold, the answer, its scores, failures and the documents retrieved."""
    s = r.get("scores", {})
    tags = list(r.get("failures", [])) + (["error"] if r.get("error") else [])
    gold = " | ".join([*r.get("answers", []), *("all of: " + " + ".join(g) for g in r.get("answers_all_of", []))])
    gold = gold or "(unanswerable)"
    answer = _e(r.get("error") or r.get("prediction", ""))
    if r.get("refused"):
        answer = "<i>[refused]</i> " + answer
    details = _sentences_html(r)
    gold_docs = set(r.get("gold_docs", []))
    sources = []
    for src in dict.fromkeys(r.get("sources", [])):
        hit = any(src == g or src.endswith("/" + g) for g in gold_docs)
        sources.append(f"<span class={'good' if hit else 'muted'}>{_e(src)}</span>")
    about = [x for x in (r.get("type"), f"{r['hops']} hops" if r.get("hops") else None) if x]
    about_html = f"<br><span class=muted>{_e(', '.join(about))}</span>" if about else ""
    return (
        f"<tr data-failures='{' '.join(tags)}'><td>{_e(r['id'])}{about_html}</td><td>{_e(r.get('question'))}</td>"
        f"<td>{_e(gold)}</td><td>{answer}{details}</td>"
        f"<td class=num>{_num(s.get('answer_accuracy'))}</td><td class=num>{_num(s.get('f1'))}</td>"
        f"<td class=num>{_num(s.get(f'recall@{k_main}'))}</td><td class=num>{_num(s.get('faithfulness'))}</td>"
        f"<td>{''.join(f'<span class=tag>{_e(FAILURE_TYPES.get(t, t))}</span>' for t in tags)}</td>"
        f"<td>{'<br>'.join(sources)}</td></tr>"
    )


def render_html(summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    """The report page: summary tables, plots, and every question, filterable by failure type."""
    images = plots(records, summary.get("ks", [1, 3, 5]))
    k_main = max(summary.get("ks", [5]))
    parts = [
        *_head_parts(summary),
        *_metrics_parts(summary),
        *_language_parts(summary),
        *_type_parts(summary),
        *_cost_parts(summary),
        *_plots_and_checks_parts(summary, images),
        *_filter_parts(summary, records),
        *(_question_row(r, k_main) for r in records),
        "</tbody></table></body></html>",
    ]
    return "\n".join(parts)


def write_report(out: Path, summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> Path:
    path = out / REPORT
    path.write_text(render_html(summary, records), encoding="utf-8")
    return path
