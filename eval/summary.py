"""The summary of a run: per-metric means with bootstrap 95% CIs (overall, by language and by
question type), failure counts, latency, throughput and answer checks; and the end-of-run console
table that prints it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from eval.metrics import mean_with_ci, percentile

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
    "answer_accuracy": "answer contains a gold alternative (or every item of an all-of group); "
    "refusal right on unanswerable",
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
