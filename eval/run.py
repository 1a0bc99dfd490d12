"""``python -m eval.run qa.jsonl``: answer every question of a QA set and score the answers.

The answers come from the answer pipeline in this process (over ``--index-dir``, optionally
ingesting ``--docs`` first) or from a running server (``--url``, through ``POST /ask``); both
are scored the same way. Each scored question is appended to ``OUT/results.jsonl`` as it
arrives, so ``--resume`` carries on after a stop; at the end ``OUT/summary.json`` and
``OUT/report.html`` are written and a table is printed.

``python -m eval.run --compare A/summary.json B/summary.json`` compares two finished runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rag  # noqa: F401  (switches off third-party telemetry before anything else loads)

# The answerers, the scoring and the loop live in their own modules; their names stay importable from here.
from eval.answerers import Answerer as Answerer
from eval.answerers import HttpAnswerer as HttpAnswerer
from eval.answerers import PipelineAnswerer as PipelineAnswerer
from eval.answerers import answer_from_dict as answer_from_dict
from eval.dataset import QAItem, QASet, load_qa, select
from eval.faithfulness import LexicalJudge, LLMJudge
from eval.loop import DEFAULT_KS as DEFAULT_KS
from eval.loop import FAIL_FAST as FAIL_FAST
from eval.loop import HIDDEN as HIDDEN
from eval.loop import evaluate as evaluate
from eval.loop import finished_ids
from eval.loop import hide_gold as hide_gold
from eval.report import (
    RESULTS,
    SUMMARY,
    compare_runs,
    console_table,
    format_comparison,
    latest_by_id,
    read_results,
    summarize,
    write_report,
    write_summary,
)
from eval.scoring import cited_passages as cited_passages
from eval.scoring import error_record as error_record
from eval.scoring import failures_of as failures_of
from eval.scoring import hop_sources as hop_sources
from eval.scoring import reasoning_hops as reasoning_hops
from eval.scoring import score_record as score_record
from rag.config import ANSWER_MODES, Settings
from rag.energy import EnergyMeter
from rag.errors import RagError

# --- command line ------------------------------------------------------------------------------


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated whole numbers like 1,3,5, not {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("--k values must be 1 or more")
    return ks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval.run",
        description="Answer every question of a JSONL QA set and score the answers: EM/F1, answer accuracy, "
        "refusals, retrieval recall/MRR/nDCG, supporting recall, faithfulness, latency, also per question type "
        "where the QA file gives one. Writes results.jsonl, summary.json and report.html to --out.",
    )
    parser.add_argument("qa_file", nargs="?", help="QA set, one JSON object a line (schema: README.md, Evaluation)")
    parser.add_argument("--index-dir", help="index to answer from (default ./index, or RAG_INDEX_DIR)")
    parser.add_argument("--config", help="TOML file with settings (see README)")
    parser.add_argument("--docs", metavar="DIR", help="ingest this folder into --index-dir first")
    parser.add_argument("--url", help="evaluate a running server through POST URL/ask instead of in-process")
    parser.add_argument("--api-key", help="key for a server that requires one (default: the first of RAG_API_KEYS)")
    parser.add_argument("--top-k", type=int, help="passages per question (default: the pipeline's top_k)")
    parser.add_argument(
        "--perplexity",
        action="store_true",
        help="also the generator's perplexity of each gold answer, read from the best sentences "
        "(in-process only; compares generators on the same questions)",
    )
    parser.add_argument(
        "--hide-gold",
        action="store_true",
        help="ask each question with its gold documents left out of the search, as an unanswerable "
        "question (the right answer is a refusal)",
    )
    parser.add_argument(
        "--answer-mode",
        choices=ANSWER_MODES,
        help="how answers are written (default: the answer_mode setting; README, Answer modes)",
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N questions (after --sample)")
    parser.add_argument("--sample", type=int, metavar="N", help="evaluate a random sample of N questions")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample and the bootstrap (default 0)")
    parser.add_argument("--concurrency", type=int, default=1, help="questions in flight at once (default 1)")
    parser.add_argument("--out", help="output folder (default eval/out/<qa file name>)")
    parser.add_argument("--resume", action="store_true", help="skip questions already answered in OUT/results.jsonl")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line of the QA file")
    parser.add_argument(
        "--k", type=parse_ks, default=list(DEFAULT_KS), help="cut-offs for retrieval metrics (default 1,3,5)"
    )
    parser.add_argument(
        "--llm-judge",
        action="store_true",
        help="also judge faithfulness with the configured generator (slow), reported as faithfulness_llm",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two runs (their summary.json or folders) with paired-bootstrap significance",
    )
    parser.add_argument(
        "--energy-country",
        metavar="ISO3",
        help="grid for the CO2e of the answering: a 3-letter country code (FRA, USA, CHN...) or WORLD "
        "(default: the energy_country setting, WORLD)",
    )
    parser.add_argument(
        "--energy-scope",
        choices=("process", "machine"),
        help="what the energy estimate counts: this process and its children (default in-process), "
        "or the whole machine (default with --url, where the server is another process)",
    )
    parser.add_argument("--no-energy", action="store_true", help="do not estimate the energy of the answering")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _ingest(folder: str, settings: Settings, quiet: bool) -> None:
    from ingest.__main__ import format_summary
    from ingest.progress import make_progress
    from rag.ingestion import ingest_folder

    progress = make_progress(quiet=quiet)
    try:
        report = ingest_folder(folder, settings, progress=progress)
    finally:
        progress.close()
    if not quiet:
        print(format_summary(report), file=sys.stderr)


def _previous_summary(out: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _llm_judge(settings: Settings, answerer: Answerer) -> LLMJudge:
    generator = getattr(answerer, "generator", None)
    if generator is None:
        from rag.generation import make_generator

        generator = make_generator(settings)
        generator.warm_up()
    return LLMJudge(generator)


ENERGY_COVERS = (
    "answering and scoring the questions of this run (evaluate()), not loading the models; "
    "with --llm-judge or --perplexity, those too"
)


def _energy_meter(args: argparse.Namespace, settings: Settings) -> EnergyMeter:
    """Start the energy estimate of the answering (rag/energy.py); never raises."""
    scope = args.energy_scope or ("machine" if args.url else "process")
    return EnergyMeter(
        settings.energy_country, scope, off="switched off (--no-energy)" if args.no_energy else None
    ).start()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.compare:
            print(format_comparison(compare_runs(Path(args.compare[0]), Path(args.compare[1]), seed=args.seed)))
            return 0
        if not args.qa_file:
            parser.error("give a QA file to evaluate, or --compare A B")
        if args.url and args.docs:
            raise RagError(
                "--docs ingests into a local index, but --url asks a server that answers from its own; "
                "ingest with `python -m ingest DIR --index-dir <the server's index>` and drop --docs."
            )
        if args.concurrency < 1:
            raise RagError("--concurrency must be 1 or more.")
        return _run(args)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished questions are saved in results.jsonl; rerun with --resume to go on.", file=sys.stderr
        )
        return 130


@dataclass
class _Answered:
    """What the answering of a run gave: every selected question's record, how many were answered
    by this run, in how many seconds, when it started, and its energy estimate."""

    records: list[dict[str, Any]]
    answered: int
    seconds: float
    started_at: str
    energy: dict[str, Any] | None


def _selected_items(args: argparse.Namespace) -> tuple[QASet, list[QAItem]]:
    """The QA set (its bad lines warned about) and the questions --sample, --limit and --hide-gold leave."""
    qa = load_qa(args.qa_file, strict=args.strict)
    for problem in qa.problems[:20]:
        print(f"warning: {args.qa_file}, {problem} (skipped)", file=sys.stderr)
    if len(qa.problems) > 20:
        print(f"warning: {len(qa.problems) - 20} more bad lines skipped", file=sys.stderr)
    items = select(qa.items, sample=args.sample, seed=args.seed, limit=args.limit)
    if args.hide_gold:
        items = hide_gold(items)
    if not items:
        raise RagError("No question left to evaluate after --sample/--limit (--hide-gold needs gold_docs).")
    return qa, items


def _rebuilt(out: Path, items: Sequence[QAItem], started_at: str) -> _Answered:
    """Nothing left to answer: the records already written, with the timing and energy of the run
    that did the answering (no model is loaded)."""
    print(f"All {len(items)} questions are already answered in {out / RESULTS}.", file=sys.stderr)
    latest = latest_by_id(read_results(out / RESULTS))
    previous = _previous_summary(out)
    return _Answered(
        records=[latest[item.id] for item in items],
        answered=previous.get("answered_this_run", 0),
        seconds=previous.get("run_seconds", 0.0),
        started_at=previous.get("started_at", started_at),
        energy=previous.get("energy"),
    )


def _answer_all(
    args: argparse.Namespace,
    settings: Settings,
    items: Sequence[QAItem],
    finished: set[str],
    out: Path,
    judge: LexicalJudge,
    started_at: str,
) -> _Answered:
    """Answer and score the questions not ``finished`` yet, from the pipeline or the server, with
    the energy of the answering measured."""
    answerer: Answerer
    if args.url:
        api_key = args.api_key or (settings.api_keys[0] if settings.api_keys else None)
        answerer = HttpAnswerer(args.url, api_key, answer_mode=args.answer_mode)
    else:
        answerer = PipelineAnswerer(settings)
    try:
        answerer.warm_up()
        llm_judge = _llm_judge(settings, answerer) if args.llm_judge else None
        left = len(items) - len(finished & {i.id for i in items})
        print(
            f"Evaluating {left} question{'s' * (left != 1)} from {args.qa_file} against the {answerer.description}",
            file=sys.stderr,
        )
        meter = _energy_meter(args, settings)
        try:
            records, answered, seconds = evaluate(
                items,
                answerer,
                out,
                ks=args.k,
                top_k=args.top_k,
                concurrency=args.concurrency,
                resume=args.resume,
                judge=judge,
                llm_judge=llm_judge,
                progress=not args.quiet,
                perplexity=args.perplexity,
            )
        finally:
            energy_report = meter.stop()
        energy = energy_report.to_dict(answered, "answers") | {"covers": ENERGY_COVERS}
    finally:
        answerer.close()
    return _Answered(records, answered, seconds, started_at, energy)


def _run_meta(
    args: argparse.Namespace, settings: Settings, qa: QASet, judge: LexicalJudge, run: _Answered
) -> dict[str, Any]:
    """What summary.json records about how the run was made, beside its figures."""
    return {
        "qa_file": str(args.qa_file),
        "mode": "http" if args.url else "in-process",
        "url": args.url,
        "index_dir": None if args.url else str(settings.index_dir),
        "settings": None if args.url else settings.to_dict(),
        "sample": args.sample,
        "seed": args.seed,
        "limit": args.limit,
        "top_k": args.top_k,
        "answer_mode": args.answer_mode or (None if args.url else settings.answer_mode),
        "hide_gold": bool(args.hide_gold),
        "concurrency": args.concurrency,
        "judge": {
            "name": judge.name,
            "thresholds": judge.thresholds,
            "window": judge.window,
            "max_novel_run": judge.max_novel_run,
        },
        "llm_judge": bool(args.llm_judge),
        "dataset_problems": [str(p) for p in qa.problems],
        "started_at": run.started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_seconds": run.seconds,
        "answered_this_run": run.answered,
        "energy": run.energy,
    }


def _run(args: argparse.Namespace) -> int:
    settings = Settings.load(
        args.config,
        overrides={"index_dir": args.index_dir, "answer_mode": args.answer_mode, "energy_country": args.energy_country},
    )
    qa, items = _selected_items(args)
    out = Path(args.out) if args.out else Path("eval") / "out" / Path(args.qa_file).stem
    if (out / RESULTS).exists() and not args.resume:
        print(f"note: overwriting {out / RESULTS} (use --resume to continue it instead)", file=sys.stderr)

    if args.docs:
        _ingest(args.docs, settings, args.quiet)
    judge = LexicalJudge()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    finished = finished_ids(out / RESULTS) if args.resume else set()
    if all(item.id in finished for item in items):
        run = _rebuilt(out, items, started_at)
    else:
        run = _answer_all(args, settings, items, finished, out, judge, started_at)
    summary = summarize(run.records, args.k, _run_meta(args, settings, qa, judge, run), seed=args.seed)
    summary_path = write_summary(out, summary)
    report_path = write_report(out, summary, run.records)
    print(console_table(summary))
    print(f"\nwrote {out / RESULTS}, {summary_path}, {report_path}")
    return 0 if summary["answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
