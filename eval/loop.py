"""The evaluation loop: ask every question (several in flight when asked to), score each answer
as it arrives and append it to results.jsonl, so a stopped run can be resumed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.answerers import Answerer
from eval.dataset import QAItem
from eval.faithfulness import LexicalJudge, LLMJudge
from eval.results import RESULTS, latest_by_id, read_results, write_results_line
from eval.scoring import error_record, score_record
from rag.documents import Answer
from rag.errors import RagError

DEFAULT_KS = (1, 3, 5)
FAIL_FAST = 3  # stop when the first this-many questions all fail: the setup is broken

HIDDEN = "hidden_docs"


def hide_gold(items: Sequence[QAItem]) -> list[QAItem]:
    """The same questions with their gold documents left out of the search: unanswerable
    questions about what the corpus mentions but no longer says (the right answer is a refusal)."""
    from dataclasses import replace

    return [
        replace(
            item,
            id=f"{item.id}#hidden",
            answerable=False,
            answers=[],
            answers_all_of=[],
            gold_docs=[],
            extra={**item.extra, HIDDEN: list(item.gold_docs)},
        )
        for item in items
        if item.gold_docs
    ]


@dataclass
class Asked:
    """What asking one question gave: the answer (None when it failed) or the error, the LLM
    judge's verdict where one ran, the wall time and extra fields for the record."""

    answer: Answer | None
    llm_verdict: Any
    error: str | None
    wall_ms: float
    extra: dict[str, Any]


def _ask(
    answerer: Answerer, item: QAItem, top_k: int | None, llm_judge: LLMJudge | None, perplexity: bool = False
) -> Asked:
    start = time.perf_counter()
    try:
        hidden = item.extra.get(HIDDEN)
        answer = answerer.answer(item.question, top_k=top_k, filters={"exclude": hidden} if hidden else None)
    except Exception as exc:  # noqa: BLE001 - one failing question is recorded, the run goes on
        message = str(exc) if isinstance(exc, RagError) else f"{exc.__class__.__name__}: {exc}"
        return Asked(None, None, message, (time.perf_counter() - start) * 1000, {})
    wall = (time.perf_counter() - start) * 1000
    extra: dict[str, Any] = {}
    if perplexity and hasattr(answerer, "perplexity"):
        try:
            extra["reference_perplexity"] = answerer.perplexity(item, answer)
        except Exception as exc:  # noqa: BLE001 - a metric must not lose the answer
            print(f"warning: perplexity failed on {item.id}: {exc}", file=sys.stderr)
    llm = None
    if llm_judge is not None and answer.answerable and answer.answer.strip():
        try:
            llm = llm_judge.judge(answer.answer, [p.chunk.text for p in answer.passages])
        except Exception as exc:  # noqa: BLE001 - the optional judge must not lose the answer
            llm = None
            print(f"warning: LLM judge failed on {item.id}: {exc}", file=sys.stderr)
    return Asked(answer, llm, None, wall, extra)


def finished_ids(path: Path) -> set[str]:
    """The ids of the questions a results file holds an answer for (not only an error)."""
    return {i for i, r in latest_by_id(read_results(path)).items() if not r.get("error")}


@dataclass
class _Tally:
    """What the loop has counted so far: questions answered and failed, the first failure, and the
    running answer accuracy the progress bar shows."""

    answered: int = 0
    failed: int = 0
    first_error: str | None = None
    acc_sum: float = 0.0
    acc_n: float = 0.0

    def postfix(self) -> dict[str, Any]:
        """The progress bar's running figures."""
        return {"acc": f"{self.acc_sum / self.acc_n:.2f}" if self.acc_n else "-", "errors": self.failed}


def _scored(item: QAItem, asked: Asked, judge: LexicalJudge, ks: Sequence[int], tally: _Tally) -> dict[str, Any]:
    """The results line of one asked question (scored, or its error), counted in ``tally``."""
    if asked.answer is None:
        tally.failed += 1
        tally.first_error = tally.first_error or asked.error
        return error_record(item, asked.error or "unknown error", asked.wall_ms)
    record = score_record(item, asked.answer, judge, ks, asked.wall_ms, asked.llm_verdict)
    record.update(asked.extra)
    tally.answered += 1
    acc = record["scores"].get("answer_accuracy")
    if acc is not None:
        tally.acc_sum += acc
        tally.acc_n += 1
    return record


def _progress_bar(total: int, progress: bool) -> Any:
    """A tqdm bar on stderr (switched off when not wanted or nothing is left to ask)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc="questions",
        unit="q",
        file=sys.stderr,
        disable=not progress or not total,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 15,
    )


def evaluate(
    items: Sequence[QAItem],
    answerer: Answerer,
    out: Path,
    ks: Sequence[int] = DEFAULT_KS,
    top_k: int | None = None,
    concurrency: int = 1,
    resume: bool = False,
    judge: LexicalJudge | None = None,
    llm_judge: LLMJudge | None = None,
    progress: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    perplexity: bool = False,
) -> tuple[list[dict[str, Any]], int, float]:
    """Answer and score ``items``, appending to ``out/results.jsonl``.

    Returns the records of all ``items`` (including ones finished by an earlier run when
    ``resume``), the number answered in this call, and this call's wall-clock seconds.
    """
    judge = judge or LexicalJudge()
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS
    done = finished_ids(path) if resume else set()
    todo = [item for item in items if item.id not in done]
    started = time.perf_counter()
    tally = _Tally()
    bar = _progress_bar(len(todo), progress)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    pending: dict[Future, QAItem] = {}
    queue = iter(todo)

    def fill() -> None:
        while len(pending) < max(1, concurrency) * 2:
            item = next(queue, None)
            if item is None:
                return
            pending[pool.submit(_ask, answerer, item, top_k, llm_judge, perplexity)] = item

    clean = False
    try:
        with open(path, "a" if resume else "w", encoding="utf-8") as handle:
            fill()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                # In the order asked (``wait`` returns a set): with one question in flight the
                # results file is then in question order, run after run.
                for future in [f for f in pending if f in finished]:
                    item = pending.pop(future)
                    record = _scored(item, future.result(), judge, ks, tally)
                    write_results_line(handle, record)
                    if on_record:
                        on_record(record)
                    bar.update(1)
                    bar.set_postfix(**tally.postfix(), refresh=False)
                    if tally.answered == 0 and tally.failed >= FAIL_FAST:
                        raise RagError(
                            f"The first {tally.failed} questions all failed ({tally.first_error}); "
                            "fix the setup and retry."
                        )
                fill()
        clean = True
    finally:
        bar.close()
        # After Ctrl-C or a fatal error, do not wait for questions still being answered.
        pool.shutdown(wait=clean, cancel_futures=True)
    seconds = time.perf_counter() - started
    latest = latest_by_id(read_results(path))
    records = [latest[item.id] for item in items if item.id in latest]
    return records, tally.answered, seconds
