"""Scoring one answer: the line of results.jsonl that records a question, its answer, what was
retrieved and every score (or the error that stopped it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from eval.dataset import QAItem
from eval.faithfulness import LexicalJudge
from eval.metrics import (
    CITATION_RE,
    long_form_scores,
    point_coverage,
    retrieval_scores,
    score_answer,
    supporting_scores,
)
from rag.documents import Answer


def cited_passages(answer: Answer) -> dict[int, str]:
    """Citation number -> the text of the passage it points at."""
    by_id = {p.chunk.id: p.chunk.text for p in answer.passages}
    out: dict[int, str] = {}
    for c in answer.citations:
        if c.chunk_id in by_id:
            out[c.number] = by_id[c.chunk_id]
        elif 0 < c.number <= len(answer.passages):
            out[c.number] = answer.passages[c.number - 1].chunk.text
        elif c.snippet:
            out[c.number] = c.snippet
    # Markers without a citation entry: the prompt numbers passages in order.
    for m in CITATION_RE.finditer(answer.answer):
        for n in (int(x) for x in m.group(1).replace("，", ",").replace("、", ",").replace(";", ",").split(",")):
            if n not in out and 0 < n <= len(answer.passages):
                out[n] = answer.passages[n - 1].chunk.text
    return out


def _plain(value: Any) -> Any:
    """``value`` as JSON: objects by their ``to_dict()`` (or as dataclasses), anything else as text."""
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def reasoning_hops(answer: Answer) -> list[dict[str, Any]]:
    """The answer's reasoning hops as plain dicts; none where no reasoning stage ran (or the
    pipeline has none: ``Answer.reasoning`` is newer than some)."""
    hops = [_plain(hop) for hop in getattr(answer, "reasoning", None) or []]
    return [hop for hop in hops if isinstance(hop, dict)]


def hop_sources(hops: Sequence[dict[str, Any]]) -> list[str]:
    """The documents of the passages each hop read, in hop order."""
    return [
        p["source"]
        for hop in hops
        for p in hop.get("passages") or []
        if isinstance(p, dict) and isinstance(p.get("source"), str) and p["source"]
    ]


def failures_of(item: QAItem, refused: bool, scores: dict[str, Any]) -> list[str]:
    out = []
    if item.answerable and refused:
        out.append("wrong_refusal")
    if item.answerable and not refused and scores.get("answer_accuracy") == 0:
        out.append("wrong_answer")
    if not item.answerable and not refused:
        out.append("missed_refusal")
    if item.gold_docs and scores.get("mrr") == 0:
        out.append("retrieval_miss")
    if scores.get("faithfulness") is not None and scores["faithfulness"] < 1:
        out.append("unfaithful")
    return out


def _answer_scores(item: QAItem, answer: Answer, refused: bool) -> dict[str, Any]:
    """The scores of the answer text against the gold answers: EM/F1, accuracy, refusals, and the
    long-form scores where the question has a long reference."""
    a = score_answer(answer.answer, refused, item.answers, item.answers_all_of, item.answerable, item.lang)
    scores: dict[str, Any] = {
        "answer_accuracy": a.answer_accuracy,
        "exact_match": a.exact_match,
        "f1": a.f1,
        "correct_refusal": a.correct_refusal,
        "wrong_refusal": a.wrong_refusal,
    }
    if item.answerable and not refused:
        # For long-form reference answers (all alternatives as references).
        scores.update(
            long_form_scores(answer.answer, item.answers or [" ".join(g) for g in item.answers_all_of], item.lang)
        )
    if item.answerable and item.extra.get("answer_points"):
        # The parts of a long reference answer the prediction states (a refusal states none).
        points = [str(p) for p in item.extra["answer_points"]]
        scores["point_coverage"] = 0.0 if refused else point_coverage(answer.answer, points, item.lang)
    return scores


def _retrieval_scores(
    item: QAItem, sources: list[str], reasoning: list[dict[str, Any]], ks: Sequence[int]
) -> dict[str, Any]:
    """Recall/MRR/nDCG of the retrieved documents and the supporting scores of every document the
    answer used; None each where the question names no gold documents."""
    scores: dict[str, Any] = {}
    retrieval = retrieval_scores(sources, item.gold_docs, ks) if item.gold_docs else None
    for name in [*(f"recall@{k}" for k in ks), "mrr", *(f"ndcg@{k}" for k in ks)]:
        scores[name] = retrieval[name] if retrieval else None
    # The evidence the answer used: its passages and those of each reasoning hop.
    support = supporting_scores([*sources, *hop_sources(reasoning)], item.gold_docs) if item.gold_docs else {}
    scores["supporting_recall"] = support.get("supporting_recall")
    scores["supporting_fraction"] = support.get("supporting_fraction")
    return scores


def score_record(
    item: QAItem,
    answer: Answer,
    judge: LexicalJudge,
    ks: Sequence[int],
    wall_ms: float,
    llm_result: Any = None,
) -> dict[str, Any]:
    """One line of results.jsonl: the question, the answer, what was retrieved, every score."""
    refused = not answer.answerable
    scores = _answer_scores(item, answer, refused)
    sources = [p.chunk.source for p in answer.passages]
    reasoning = reasoning_hops(answer)
    scores.update(_retrieval_scores(item, sources, reasoning, ks))
    sentences: list[dict[str, Any]] = []
    scores["faithfulness"] = scores["citation_precision"] = None
    if not refused and answer.answer.strip():
        verdict = judge.judge(
            answer.answer, [p.chunk.text for p in answer.passages], cited_passages(answer), question=item.question
        )
        scores["faithfulness"] = verdict.score
        scores["citation_precision"] = verdict.citation_precision
        sentences = [
            {
                "text": v.text,
                "supported": v.supported,
                "score": v.score,
                "passage": v.passage,
                "citations": v.citations,
                "missing": v.missing,
                "novel": v.novel,
            }
            for v in verdict.sentences
        ]
    record: dict[str, Any] = {
        **item.to_dict(),
        "prediction": answer.answer,
        "refused": refused,
        "query": answer.query,
        "model": answer.model,
        "sources": sources,
        "passages": [
            {
                "rank": p.rank,
                "source": p.chunk.source,
                "chunk_id": p.chunk.id,
                "page": p.chunk.page,
                "section": p.chunk.section,
                "score": p.score,
            }
            for p in answer.passages
        ],
        "citations": [{"number": c.number, "source": c.source, "chunk_id": c.chunk_id} for c in answer.citations],
        "reasoning": reasoning,
        "hops": len(reasoning),
        "scores": scores,
        "sentences": sentences,
        "timings_ms": {**answer.timings_ms, "wall": round(wall_ms, 1)},
        "usage": dict(answer.usage),
        **answer.reader_fields(),
        "error": None,
    }
    if answer.evidence is not None:
        # The sentence the short answer was read from, scored as if it were the answer: what
        # answering with the sentence would have given (README, "Answer modes").
        e = score_answer(answer.evidence.text, False, item.answers, item.answers_all_of, item.answerable, item.lang)
        scores["evidence_accuracy"], scores["evidence_f1"] = e.answer_accuracy, e.f1
    if llm_result is not None:
        scores["faithfulness_llm"] = llm_result.score
        record["llm_claims"] = llm_result.claims
    record["failures"] = failures_of(item, refused, scores)
    return record


def error_record(item: QAItem, message: str, wall_ms: float) -> dict[str, Any]:
    return {
        **item.to_dict(),
        "prediction": "",
        "refused": False,
        "sources": [],
        "scores": {},
        "failures": [],
        "timings_ms": {"wall": round(wall_ms, 1)},
        "usage": {},
        "error": message,
    }
