"""Answer, refusal and retrieval metrics, with bootstrap confidence intervals.

Answer text is normalised per language, following the official scorers' definitions:

* English (SQuAD v1.1): lowercase, drop punctuation, drop the articles a/an/the, collapse
  white space; tokens are the words left. F1 is the bag-of-tokens overlap. Punctuation here is
  every Unicode punctuation or symbol character, a superset of SQuAD's ASCII set, so curly
  quotes and full-width marks in generated answers are dropped too.
* Chinese (CMRC 2018): lowercase; every Chinese character is a token of its own, runs of
  Latin letters and digits are tokens, punctuation (Chinese and Western) is dropped. F1 is
  computed from the longest common *contiguous* run of tokens, as the CMRC scorer does.

EM and F1 take the best score over the gold alternatives. A question without answers is
unanswerable: a refusal scores 1, any answer 0 (the SQuAD 2.0 convention).
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.text import has_cjk

# [1], [1, 2], [1][2], 【1】: the citation markers the pipeline writes into answers.
CITATION_RE = re.compile(r"\s*[\[【]\s*(\d+(?:\s*[,，、;]\s*\d+)*)\s*[\]】]")
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = frozenset(string.punctuation)


def strip_citations(text: str) -> str:
    """The answer without its ``[n]`` citation markers (they are not part of the answer)."""
    return CITATION_RE.sub("", text).strip()


def _is_punct(ch: str) -> bool:
    # Unicode punctuation and symbols: covers ASCII, full-width and Chinese marks (，。《》「」…).
    return ch in _ASCII_PUNCT or unicodedata.category(ch)[0] in "PS"


# --- normalisation and tokens -----------------------------------------------------------


def normalize_en(text: str) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def _split_cjk(token: str) -> list[str]:
    """Chinese characters one by one; the non-Chinese runs between them stay whole."""
    out: list[str] = []
    run = ""
    for ch in token:
        if has_cjk(ch):
            if run:
                out.append(run)
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out.append(run)
    return out


def tokens_en(text: str) -> list[str]:
    """SQuAD tokens; Chinese characters inside English text still count one by one."""
    out: list[str] = []
    for word in normalize_en(text).split():
        out.extend(_split_cjk(word) if has_cjk(word) else [word])
    return out


def tokens_zh(text: str) -> list[str]:
    """CMRC 2018 mixed segmentation: Chinese characters, English words and numbers; no punctuation."""
    out: list[str] = []
    run = ""
    for ch in text.lower():
        if has_cjk(ch) or ch.isspace() or _is_punct(ch):
            if run:
                out.append(run)
                run = ""
            if has_cjk(ch):
                out.append(ch)
        else:
            run += ch
    if run:
        out.append(run)
    return out


def match_tokens(text: str, lang: str) -> list[str]:
    """Tokens for "does the answer contain the gold": punctuation splits words in both
    languages (so "192.168.50.1" is found inside "http://192.168.50.1"); English drops articles."""
    toks = tokens_zh(text)
    if lang == "en":
        toks = [t for t in toks if t not in ("a", "an", "the")]
    return toks


def answer_tokens(text: str, lang: str) -> list[str]:
    return tokens_zh(text) if lang == "zh" else tokens_en(text)


# --- EM / F1 / accuracy ------------------------------------------------------------------


def exact_match(prediction: str, gold: str, lang: str) -> float:
    return float(answer_tokens(prediction, lang) == answer_tokens(gold, lang))


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest contiguous run of tokens shared by ``a`` and ``b``."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


def f1_score(prediction: str, gold: str, lang: str) -> float:
    pred = answer_tokens(prediction, lang)
    ref = answer_tokens(gold, lang)
    if not pred or not ref:
        return float(pred == ref)
    if lang == "zh":
        common = _longest_common_run(pred, ref)
    else:
        common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred)
    recall = common / len(ref)
    return 2 * precision * recall / (precision + recall)


def gold_alternatives(answers: Sequence[str], answers_all_of: Sequence[Sequence[str]] = ()) -> list[str]:
    """What EM/F1 compare against: each alternative, and each all-of group joined by spaces."""
    return [*answers, *(" ".join(group) for group in answers_all_of)]


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0:
        return False
    return any(list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1))


def contains_answer(
    prediction: str, answers: Sequence[str], answers_all_of: Sequence[Sequence[str]], lang: str
) -> bool:
    """True when the prediction contains one normalised alternative, or every item of a group."""
    pred = match_tokens(prediction, lang)
    if any(_contains(pred, match_tokens(a, lang)) for a in answers):
        return True
    return any(all(_contains(pred, match_tokens(x, lang)) for x in group) for group in answers_all_of)


@dataclass
class AnswerScores:
    exact_match: float
    f1: float
    answer_accuracy: float
    correct_refusal: float | None  # only for unanswerable questions
    wrong_refusal: float | None  # only for answerable questions


def score_answer(
    prediction: str,
    refused: bool,
    answers: Sequence[str],
    answers_all_of: Sequence[Sequence[str]] = (),
    answerable: bool = True,
    lang: str = "en",
) -> AnswerScores:
    """EM, F1 and accuracy of one answer; refusals score against ``answerable``."""
    if not answerable:
        hit = float(refused)
        return AnswerScores(hit, hit, hit, hit, None)
    if refused:
        return AnswerScores(0.0, 0.0, 0.0, None, 1.0)
    text = strip_citations(prediction)
    golds = gold_alternatives(answers, answers_all_of)
    em = max((exact_match(text, g, lang) for g in golds), default=0.0)
    f1 = max((f1_score(text, g, lang) for g in golds), default=0.0)
    acc = float(contains_answer(text, answers, answers_all_of, lang))
    return AnswerScores(em, f1, acc, None, 0.0)


# --- long-form answers ----------------------------------------------------------------------


class _RougeTokens:
    """rouge-score's own tokenizer keeps only [a-z0-9] and so drops Chinese; this one uses
    the same tokens as EM/F1 (Chinese characters, English words)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def tokenize(self, text: str) -> list[str]:
        return answer_tokens(text, self.lang)


def long_form_scores(prediction: str, answers: Sequence[str], lang: str) -> dict[str, float | None]:
    """Sentence BLEU (sacreBLEU; its ``zh`` tokenizer for Chinese) against every alternative
    as references, and ROUGE-L F (rouge-score), best over the alternatives; in 0..1. ``None``
    when there is nothing to compare or the packages are missing."""
    text = strip_citations(prediction).strip()
    golds = [g for g in answers if g.strip()]
    if not text or not golds:
        return {"bleu": None, "rouge_l": None}
    try:
        import sacrebleu
        from rouge_score import rouge_scorer
    except ImportError:
        return {"bleu": None, "rouge_l": None}
    bleu = sacrebleu.sentence_bleu(text, golds, tokenize="zh" if lang == "zh" else "13a").score / 100
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_RougeTokens(lang))
    rouge = max(scorer.score(g, text)["rougeL"].fmeasure for g in golds)
    return {"bleu": round(bleu, 4), "rouge_l": round(rouge, 4)}


def point_coverage(prediction: str, points: Sequence[str], lang: str) -> float | None:
    """How much of a long answer's parts the prediction states: the mean, over the reference's
    ``answer_points``, of ROUGE-L recall (rouge-score; the share of a point's tokens in its
    longest common subsequence with the prediction), 0..1. ``None`` without points."""
    points = [p for p in points if p and p.strip()]
    if not points:
        return None
    text = strip_citations(prediction).strip()
    if not text:
        return 0.0
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_RougeTokens(lang))
    return round(sum(scorer.score(point, text)["rougeL"].recall for point in points) / len(points), 4)


# --- retrieval ---------------------------------------------------------------------------


def same_document(source: str, gold: str) -> bool:
    """A retrieved source matches a gold doc by relative path, or when one path ends with the other
    (the folder was ingested from a parent directory, or the QA file names only the file)."""
    s = source.replace("\\", "/").strip("/")
    g = gold.replace("\\", "/").strip("/")
    return s == g or s.endswith("/" + g) or g.endswith("/" + s)


def ranked_documents(sources: Iterable[str]) -> list[str]:
    """Passage sources reduced to documents, in order of their best passage."""
    seen: dict[str, None] = {}
    for s in sources:
        seen.setdefault(s, None)
    return list(seen)


def retrieval_scores(sources: Sequence[str], gold_docs: Sequence[str], ks: Sequence[int]) -> dict[str, float]:
    """recall@k, nDCG@k (binary relevance) and MRR over the ranked distinct documents."""
    docs = ranked_documents(sources)
    golds = list(dict.fromkeys(gold_docs))
    relevant = [any(same_document(d, g) for g in golds) for d in docs]
    # Which gold doc each retrieved doc satisfies, so two paths for one gold count once.
    found_at: dict[str, int] = {}
    for rank, d in enumerate(docs, start=1):
        for g in golds:
            if g not in found_at and same_document(d, g):
                found_at[g] = rank
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = sum(1 for r in found_at.values() if r <= k) / len(golds) if golds else 0.0
        dcg = sum(1.0 / math.log2(i + 1) for i, rel in enumerate(relevant[:k], start=1) if rel)
        ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(golds), k) + 1))
        out[f"ndcg@{k}"] = dcg / ideal if ideal else 0.0
    first = next((i for i, rel in enumerate(relevant, start=1) if rel), None)
    out["mrr"] = 1.0 / first if first else 0.0
    return out


def supporting_scores(sources: Iterable[str], gold_docs: Sequence[str]) -> dict[str, float]:
    """Did the answer's evidence hold its gold documents? ``supporting_recall`` is 1 only when it
    held every one (a multi-hop question needs them all), ``supporting_fraction`` the share held."""
    docs = ranked_documents(sources)
    golds = list(dict.fromkeys(gold_docs))
    if not golds:
        return {"supporting_recall": 0.0, "supporting_fraction": 0.0}
    found = sum(1 for g in golds if any(same_document(d, g) for d in docs))
    return {"supporting_recall": float(found == len(golds)), "supporting_fraction": found / len(golds)}


# --- confidence intervals and significance ----------------------------------------------


def bootstrap_ci(
    values: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, so a run's report is reproducible)."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return (math.nan, math.nan)
    if data.size == 1:
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    means = _resampled_means(data, resamples, rng)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


def _resampled_means(data: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    # Chunked so 1000 resamples of a 100k-question set stay within a few MB.
    block = max(1, 2_000_000 // max(data.size, 1))
    out = []
    for start in range(0, resamples, block):
        n = min(block, resamples - start)
        idx = rng.integers(0, data.size, size=(n, data.size))
        out.append(data[idx].mean(axis=1))
    return np.concatenate(out)


@dataclass
class PairedComparison:
    """Run B minus run A over the same questions."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided paired-bootstrap p-value for "no difference"

    @property
    def significant(self) -> bool:
        return self.n > 1 and self.p_value < 0.05


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> PairedComparison:
    """Paired bootstrap over question-level scores: resample questions, keep pairs together.

    The p-value is twice the share of resampled mean differences on the far side of zero
    (capped at 1): how often chance alone would flip the sign of the observed difference.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError("paired bootstrap needs the same number of scores in both runs")
    n = int(x.size)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    d = y - x
    diff = float(d.mean())
    if n == 1 or np.all(d == d[0]):
        p = 1.0 if diff == 0 else 0.0 if n > 1 else 1.0
        return PairedComparison(n, float(x.mean()), float(y.mean()), diff, diff, diff, p)
    rng = np.random.default_rng(seed)
    means = _resampled_means(d, resamples, rng)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    p = 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0)))
    return PairedComparison(n, float(x.mean()), float(y.mean()), diff, float(low), float(high), min(1.0, p))


def percentile(values: Sequence[float], q: float) -> float:
    data = [v for v in values if v is not None]
    return float(np.percentile(data, q)) if data else math.nan


def mean_with_ci(values: Sequence[float | None], seed: int = 0, resamples: int = 1000) -> dict[str, float | int]:
    """{mean, ci_low, ci_high, n} over the values that apply (``None`` = not applicable)."""
    data = [float(v) for v in values if v is not None]
    if not data:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    low, high = bootstrap_ci(data, resamples=resamples, seed=seed)
    return {"mean": float(np.mean(data)), "ci_low": low, "ci_high": high, "n": len(data)}


__all__ = [
    "CITATION_RE",
    "strip_citations",
    "normalize_en",
    "tokens_en",
    "tokens_zh",
    "match_tokens",
    "exact_match",
    "f1_score",
    "contains_answer",
    "gold_alternatives",
    "AnswerScores",
    "score_answer",
    "same_document",
    "ranked_documents",
    "retrieval_scores",
    "supporting_scores",
    "bootstrap_ci",
    "paired_bootstrap",
    "PairedComparison",
    "percentile",
    "mean_with_ci",
]
