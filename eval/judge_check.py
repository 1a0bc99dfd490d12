"""``python -m eval.judge_check``: how accurate is the offline faithfulness judge?

Builds a labelled sample from QA sets whose gold documents are known (by default the shared
XQuAD-en and CMRC 2018 sets), calibrates the judge's threshold on one half of the questions
and reports its accuracy on the other half. For each sampled question, against the text of
its gold document:

* ``statement+``   "question: gold answer." (supported)
* ``swap-other-``  "question: answer of a question about another document." (unsupported)
* ``swap-same-``   "question: answer of another question about the same document."
  (unsupported; the hard case for any lexical judge: every word occurs somewhere in the text)
* ``extract+``     the document's own sentence holding the gold answer (supported)
* ``extract-swap-`` that sentence with the gold answer replaced by another document's answer
  (unsupported: a copied sentence with one fabricated fact)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from eval.dataset import QAItem, load_qa
from eval.faithfulness import DEFAULT_THRESHOLDS, LexicalJudge
from eval.metrics import match_tokens
from rag.errors import RagError
from rag.text import detect_language, split_sentences

DEFAULT_SETS = ("xquad-en", "cmrc2018")
KINDS = ("statement+", "extract+", "swap-other-", "swap-same-", "extract-swap-")


@dataclass
class Example:
    qid: str
    lang: str
    kind: str
    sentence: str
    passage: str
    question: str
    label: bool  # True: the passage supports the sentence
    score: float = 0.0
    judged_as: str = "en"  # the language the judge detects in the sentence (picks the threshold)


def statement(question: str, answer: str, lang: str) -> str:
    """A one-sentence answer that restates the question, as a grounded answer often does."""
    q = question.strip().rstrip("?？ ")
    return f"{q}：{answer}。" if lang == "zh" else f"{q}: {answer}."


def _mentions(text_tokens: list[str], answer: str, lang: str) -> bool:
    needle = match_tokens(answer, lang)
    n = len(needle)
    return n > 0 and any(text_tokens[i : i + n] == needle for i in range(len(text_tokens) - n + 1))


def _different(a: str, golds: list[str], lang: str) -> bool:
    """``a`` shares no containment with any gold alternative (so swapping it makes a false claim)."""
    ta = " ".join(match_tokens(a, lang))
    for g in golds:
        tg = " ".join(match_tokens(g, lang))
        if not ta or not tg or ta in tg or tg in ta:
            return False
    return True


def build_sample(folder: Path, per_set: int, seed: int) -> list[Example]:
    """Labelled examples from one QA set folder (``qa.jsonl`` + ``docs/``)."""
    qa = load_qa(folder / "qa.jsonl")
    items = [
        i for i in qa.items if i.answers and len(i.gold_docs) == 1 and (folder / "docs" / i.gold_docs[0]).is_file()
    ]
    texts: dict[str, str] = {}
    by_doc: dict[str, list[QAItem]] = defaultdict(list)
    for item in items:
        by_doc[item.gold_docs[0]].append(item)
    rng = random.Random(seed)
    chosen = rng.sample(items, min(per_set, len(items)))
    examples: list[Example] = []
    for item in chosen:
        doc = item.gold_docs[0]
        if doc not in texts:
            texts[doc] = (folder / "docs" / doc).read_text(encoding="utf-8")
        text = texts[doc]
        lang = item.lang
        answer = item.answers[0]
        doc_tokens = match_tokens(text, lang)

        def add(kind: str, sentence: str, label: bool, item=item, lang=lang, text=text) -> None:
            examples.append(Example(item.id, lang, kind, sentence, text, item.question, label))

        add("statement+", statement(item.question, answer, lang), True)

        # Another document's answer that this document never mentions.
        other = None
        for _ in range(50):
            cand = rng.choice(items)
            a = cand.answers[0]
            if cand.gold_docs[0] != doc and _different(a, item.answers, lang) and not _mentions(doc_tokens, a, lang):
                other = a
                break
        if other is not None:
            add("swap-other-", statement(item.question, other, lang), False)

        same = [c.answers[0] for c in by_doc[doc] if c.id != item.id and _different(c.answers[0], item.answers, lang)]
        if same:
            add("swap-same-", statement(item.question, rng.choice(same), lang), False)

        holder = next((s.strip() for s in split_sentences(text) if answer.lower() in s.lower()), None)
        if holder and len(holder) < 600:
            add("extract+", holder, True)
            start = holder.lower().find(answer.lower())
            if other is not None and start >= 0:
                add("extract-swap-", holder[:start] + other + holder[start + len(answer) :], False)
    return examples


Thresholds = dict[str, float]


def _predicted(e: Example, thresholds: Thresholds) -> bool:
    return e.score >= thresholds[e.judged_as]


def _rates(examples: list[Example], thresholds: Thresholds) -> dict[str, float]:
    pos = [e for e in examples if e.label]
    neg = [e for e in examples if not e.label]
    nan = float("nan")
    tpr = sum(_predicted(e, thresholds) for e in pos) / len(pos) if pos else nan
    tnr = sum(not _predicted(e, thresholds) for e in neg) / len(neg) if neg else nan
    acc = sum(_predicted(e, thresholds) == e.label for e in examples) / len(examples) if examples else nan
    return {
        "accuracy": acc,
        "balanced_accuracy": (tpr + tnr) / 2,
        "true_positive_rate": tpr,
        "true_negative_rate": tnr,
        "n": len(examples),
    }


def calibrate(examples: list[Example]) -> Thresholds:
    """Per language, the threshold with the best balanced accuracy (ties: the more lenient)."""
    grid = [round(0.05 * i, 2) for i in range(1, 20)]
    out: Thresholds = dict(DEFAULT_THRESHOLDS)
    for lang in sorted({e.judged_as for e in examples}):
        subset = [e for e in examples if e.judged_as == lang]
        out[lang] = max(grid, key=lambda t: (round(_rates(subset, {lang: t})["balanced_accuracy"], 6), -t))
    return out


def evaluate(examples: list[Example], thresholds: Thresholds) -> dict[str, dict[str, float]]:
    out = {"overall": _rates(examples, thresholds)}
    for lang in sorted({e.lang for e in examples}):
        out[f"lang={lang}"] = _rates([e for e in examples if e.lang == lang], thresholds)
    for kind in KINDS:
        subset = [e for e in examples if e.kind == kind]
        if subset:
            out[f"kind={kind}"] = {"accuracy": _rates(subset, thresholds)["accuracy"], "n": len(subset)}
    return out


def run_check(data_dir: Path, sets: list[str], per_set: int, seed: int) -> dict[str, object]:
    """Build the sample, score it, calibrate on half the questions and test on the other half."""
    examples: list[Example] = []
    for name in sets:
        folder = data_dir / name
        if not (folder / "qa.jsonl").is_file():
            raise RagError(f"{folder}/qa.jsonl does not exist; pass --data pointing at the shared QA sets.")
        examples.extend(build_sample(folder, per_set, seed))
    judge = LexicalJudge()
    for e in examples:
        e.score = judge.support(e.sentence, e.passage, e.question).score
        e.judged_as = detect_language(e.sentence)
    # Split by question so a question's examples never sit on both sides.
    qids = sorted({e.qid for e in examples})
    random.Random(seed + 1).shuffle(qids)
    calib_ids = set(qids[: len(qids) // 2])
    calib = [e for e in examples if e.qid in calib_ids]
    test = [e for e in examples if e.qid not in calib_ids]
    calibrated = calibrate(calib)
    return {
        "sets": sets,
        "questions_per_set": per_set,
        "seed": seed,
        "examples": len(examples),
        "calibrated_thresholds": calibrated,
        "shipped_thresholds": dict(judge.thresholds),
        "held_out_at_shipped": evaluate(test, judge.thresholds),
        "held_out_at_calibrated": evaluate(test, calibrated),
        "calibration_half_at_calibrated": evaluate(calib, calibrated),
        "all_at_shipped": evaluate(examples, judge.thresholds),
    }


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ""


def _print(result: dict[str, object]) -> None:
    print(
        f"Lexical faithfulness judge on {result['examples']} labelled sentences "
        f"({', '.join(result['sets'])}; {result['questions_per_set']} questions each, seed {result['seed']})"
    )
    print(
        f"thresholds shipped: {result['shipped_thresholds']}; "
        f"calibrated on half the questions: {result['calibrated_thresholds']}"
    )
    for title, key in (
        ("held-out half, shipped thresholds", "held_out_at_shipped"),
        ("held-out half, thresholds calibrated on the other half", "held_out_at_calibrated"),
    ):
        print(f"\n{title}:")
        print(f"  {'subset':<22} {'n':>5} {'accuracy':>9} {'balanced':>9} {'TPR':>6} {'TNR':>6}")
        for name, r in result[key].items():
            print(
                f"  {name:<22} {r['n']:>5} {r['accuracy']:>9.3f} {_fmt(r.get('balanced_accuracy')):>9} "
                f"{_fmt(r.get('true_positive_rate')):>6} {_fmt(r.get('true_negative_rate')):>6}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.judge_check", description=__doc__.split("\n")[0])
    default_data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    parser.add_argument(
        "--data", type=Path, default=default_data, help=f"folder holding the QA sets (default {default_data})"
    )
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS), help="comma-separated QA set folders under --data")
    parser.add_argument("--per-set", type=int, default=400, help="questions sampled from each set (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = run_check(args.data, [s for s in args.sets.split(",") if s], args.per_set, args.seed)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
