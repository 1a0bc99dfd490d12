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
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import rag  # noqa: F401  (switches off third-party telemetry before anything else loads)
from eval.dataset import QAItem, load_qa, select
from eval.faithfulness import LexicalJudge, LLMJudge
from eval.metrics import (
    CITATION_RE,
    long_form_scores,
    point_coverage,
    retrieval_scores,
    score_answer,
    supporting_scores,
)
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
    write_results_line,
    write_summary,
)
from rag.config import ANSWER_MODES, Settings
from rag.documents import Answer, Chunk, Citation, SearchHit, Span
from rag.energy import EnergyMeter
from rag.errors import RagError

DEFAULT_KS = (1, 3, 5)
FAIL_FAST = 3  # stop when the first this-many questions all fail: the setup is broken


class Answerer(Protocol):
    """Where answers come from: the in-process pipeline or a server."""

    description: str

    def warm_up(self) -> None: ...

    def answer(self, question: str, top_k: int | None = None, filters: dict | None = None) -> Answer: ...

    def close(self) -> None: ...


class PipelineAnswerer:
    """The answer pipeline, in this process."""

    def __init__(self, settings: Settings) -> None:
        from rag.answering import AnswerPipeline

        self.settings = settings
        self.pipeline = AnswerPipeline.from_settings(settings)
        self.description = f"in-process over {settings.index_dir}"

    def warm_up(self) -> None:
        self.pipeline.warm_up()

    def answer(self, question: str, top_k: int | None = None, filters: dict | None = None) -> Answer:
        return self.pipeline.answer(question, top_k=top_k, filters=filters)

    @property
    def generator(self) -> Any:
        return getattr(self.pipeline, "generator", None)

    def perplexity(self, item: QAItem, answer: Answer) -> float | None:
        """The generator's perplexity of the item's first gold answer, read from the best
        sentences of the passages this answer was given (the same for every generator)."""
        from rag.answering.quote import ranked_sentences
        from rag.answering.reader import reference_perplexity

        golds = item.answers or [" ".join(g) for g in item.answers_all_of]
        if not item.answerable or not golds or not answer.passages:
            return None
        evidence = ranked_sentences(
            answer.query or item.question, answer.passages, max(1, self.settings.reader_sentences)
        )
        return reference_perplexity(
            self.pipeline.generator, item.question, answer.passages, evidence, answer.language or item.lang, golds[0]
        )

    def close(self) -> None:
        pass


class HttpAnswerer:
    """A running server, asked through ``POST {url}/ask``."""

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = 600.0, answer_mode: str | None = None
    ) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.answer_mode = answer_mode
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.description = f"server at {self.url}"

    def warm_up(self, wait_s: float = 600.0) -> None:
        """Wait until the server's /health says it is ready, so the first answers are not timed with its start."""
        import httpx

        deadline = time.monotonic() + wait_s
        while True:
            try:
                response = self.client.get("/health", timeout=10)
            except httpx.HTTPError as exc:
                raise RagError(
                    f"Cannot reach the server at {self.url} ({exc.__class__.__name__}); "
                    "start it with `python -m api` or fix --url."
                ) from None
            if response.status_code != 503:
                return  # ready, or a server without this readiness protocol
            try:
                body = response.json()
            except ValueError:
                body = {}
            status = body.get("status", "unavailable")
            if status != "loading" or time.monotonic() > deadline:
                reason = body.get("error") or f"status '{status}'"
                raise RagError(f"The server at {self.url} is not ready ({reason}).")
            time.sleep(1.0)

    def answer(self, question: str, top_k: int | None = None, filters: dict | None = None) -> Answer:
        payload: dict[str, Any] = {"question": question}
        if top_k is not None:
            payload["top_k"] = top_k
        if filters:
            payload["filters"] = filters
        if self.answer_mode:
            payload["answer_mode"] = self.answer_mode
        response = self.client.post("/ask", json=payload)
        if response.status_code != 200:
            try:
                body = response.json()
                detail = body.get("detail") or body.get("error") or body
            except ValueError:
                detail = response.text[:200]
            raise RuntimeError(f"HTTP {response.status_code}: {detail}")
        return answer_from_dict(response.json())

    def close(self) -> None:
        self.client.close()


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """Rebuild an :class:`Answer` from ``Answer.to_dict()`` (what ``/ask`` returns)."""
    passages = []
    for i, p in enumerate(data.get("passages") or [], start=1):
        chunk = Chunk(
            id=str(p.get("id", "")),
            text=p.get("text", ""),
            source=p.get("source", ""),
            page=p.get("page"),
            section=p.get("section"),
            kind=p.get("kind", "text"),
            start=p.get("start", 0),
            end=p.get("end", 0),
        )
        passages.append(
            SearchHit(chunk, float(p.get("score", 0.0)), dict(p.get("scores") or {}), int(p.get("rank", i)))
        )
    citations = [
        Citation(
            number=int(c.get("number", 0)),
            chunk_id=str(c.get("chunk_id", "")),
            source=c.get("source", ""),
            page=c.get("page"),
            section=c.get("section"),
            snippet=c.get("snippet", ""),
            scores=dict(c.get("scores") or {}),
        )
        for c in data.get("citations") or []
    ]

    def span(value: Any) -> Span | None:
        if not isinstance(value, dict):
            return None
        return Span(
            int(value.get("passage", 0)),
            int(value.get("start", 0)),
            int(value.get("end", 0)),
            str(value.get("text", "")),
        )

    answer = Answer(
        answer=data.get("answer", ""),
        answerable=bool(data.get("answerable", True)),
        citations=citations,
        passages=passages,
        query=data.get("query", ""),
        language=data.get("language", ""),
        model=data.get("model", ""),
        timings_ms=dict(data.get("timings_ms") or {}),
        usage=dict(data.get("usage") or {}),
        answer_span=span(data.get("answer_span")),
        evidence=span(data.get("evidence")),
        confidence=data.get("confidence"),
        relevance=data.get("relevance"),
        no_answer=data.get("no_answer"),
        checks=list(data.get("checks") or []),
    )
    if data.get("reasoning"):
        # The hops of a multi-hop answer, kept as the server sent them (dicts).
        answer.reasoning = [dict(h) for h in data["reasoning"] if isinstance(h, dict)]
    return answer


# --- scoring one answer ------------------------------------------------------------------------


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
    sources = [p.chunk.source for p in answer.passages]
    retrieval = retrieval_scores(sources, item.gold_docs, ks) if item.gold_docs else None
    for name in [*(f"recall@{k}" for k in ks), "mrr", *(f"ndcg@{k}" for k in ks)]:
        scores[name] = retrieval[name] if retrieval else None
    # The evidence the answer used: its passages and those of each reasoning hop.
    reasoning = reasoning_hops(answer)
    support = supporting_scores([*sources, *hop_sources(reasoning)], item.gold_docs) if item.gold_docs else {}
    scores["supporting_recall"] = support.get("supporting_recall")
    scores["supporting_fraction"] = support.get("supporting_fraction")
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


# --- the loop ----------------------------------------------------------------------------------

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


def _ask(
    answerer: Answerer, item: QAItem, top_k: int | None, llm_judge: LLMJudge | None, perplexity: bool = False
) -> tuple[Answer | None, Any, str | None, float, dict[str, Any]]:
    start = time.perf_counter()
    try:
        hidden = item.extra.get(HIDDEN)
        answer = answerer.answer(item.question, top_k=top_k, filters={"exclude": hidden} if hidden else None)
    except Exception as exc:  # noqa: BLE001 - one failing question is recorded, the run goes on
        message = str(exc) if isinstance(exc, RagError) else f"{exc.__class__.__name__}: {exc}"
        return None, None, message, (time.perf_counter() - start) * 1000, {}
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
    return answer, llm, None, wall, extra


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
    from tqdm import tqdm

    judge = judge or LexicalJudge()
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS
    done: set[str] = set()
    if resume:
        done = {i for i, r in latest_by_id(read_results(path)).items() if not r.get("error")}
    todo = [item for item in items if item.id not in done]
    started = time.perf_counter()
    answered = failed = 0
    first_error: str | None = None
    bar = tqdm(
        total=len(todo),
        desc="questions",
        unit="q",
        file=sys.stderr,
        disable=not progress or not todo,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 15,
    )
    acc_sum = acc_n = 0.0
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
                    answer, llm, error, wall, extra = future.result()
                    if answer is None:
                        record = error_record(item, error or "unknown error", wall)
                        failed += 1
                        first_error = first_error or error
                    else:
                        record = score_record(item, answer, judge, ks, wall, llm)
                        record.update(extra)
                        answered += 1
                        acc = record["scores"].get("answer_accuracy")
                        if acc is not None:
                            acc_sum += acc
                            acc_n += 1
                    write_results_line(handle, record)
                    if on_record:
                        on_record(record)
                    bar.update(1)
                    bar.set_postfix(acc=f"{acc_sum / acc_n:.2f}" if acc_n else "-", errors=failed, refresh=False)
                    if answered == 0 and failed >= FAIL_FAST:
                        raise RagError(
                            f"The first {failed} questions all failed ({first_error}); fix the setup and retry."
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
    return records, answered, seconds


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


def _run(args: argparse.Namespace) -> int:
    settings = Settings.load(
        args.config,
        overrides={"index_dir": args.index_dir, "answer_mode": args.answer_mode, "energy_country": args.energy_country},
    )
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
    out = Path(args.out) if args.out else Path("eval") / "out" / Path(args.qa_file).stem
    if (out / RESULTS).exists() and not args.resume:
        print(f"note: overwriting {out / RESULTS} (use --resume to continue it instead)", file=sys.stderr)

    if args.docs:
        _ingest(args.docs, settings, args.quiet)
    judge = LexicalJudge()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    finished = (
        {i for i, r in latest_by_id(read_results(out / RESULTS)).items() if not r.get("error")}
        if args.resume
        else set()
    )
    answerer: Answerer | None = None
    if all(item.id in finished for item in items):
        # Nothing left to answer: rebuild the summary and report without loading any model.
        print(f"All {len(items)} questions are already answered in {out / RESULTS}.", file=sys.stderr)
        latest = latest_by_id(read_results(out / RESULTS))
        records, answered, seconds = [latest[item.id] for item in items], 0, 0.0
        previous = _previous_summary(out)
        # Keep the timing of the run that did the answering.
        started_at = previous.get("started_at", started_at)
        answered, seconds = previous.get("answered_this_run", 0), previous.get("run_seconds", 0.0)
        energy = previous.get("energy")
    else:
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
    meta = {
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
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_seconds": seconds,
        "answered_this_run": answered,
        "energy": energy,
    }
    summary = summarize(records, args.k, meta, seed=args.seed)
    summary_path = write_summary(out, summary)
    report_path = write_report(out, summary, records)
    print(console_table(summary))
    print(f"\nwrote {out / RESULTS}, {summary_path}, {report_path}")
    return 0 if summary["answered"] else 1


if __name__ == "__main__":
    sys.exit(main())
