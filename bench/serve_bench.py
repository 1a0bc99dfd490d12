"""``python -m bench.serve_bench``: start-up time, latency, throughput and memory of the answering
service, measured from outside against a real ``python -m api`` server process.

1. Start-up: the server is launched twice (``python -m api --index-dir DIR --host 127.0.0.1
   --port P``, ``HF_HUB_OFFLINE=1``) and timed from launch until ``GET /health`` answers 200
   with ``status: ready``. The first start may convert the GGUF generator and cache the result
   under ``model_cache_dir``; the second is the warm start. The second server stays up.
2. Load: a few warm-up questions one at a time, then for each concurrency level ``c``, ``c``
   client threads send ``POST /ask`` with ``stream: true`` until ``--requests`` distinct
   questions have been asked. Per request: time to the first ``token`` event (TTFT, from
   sending the request), wall time, the server's ``timings_ms`` and ``usage`` from the ``done``
   event, and the generation rate.
3. Memory and CPU of the server process and its children (the generator runs in one), from
   ``/proc/<pid>/status`` (VmRSS sampled during load, VmHWM) and ``/proc/<pid>/stat`` (utime +
   stime), summed.

It prints a table with the bars (warm start <= 5 s; per level, retrieval p95 <= 50 ms and
TTFT p50 <= 1 s) and writes everything, with machine information and load averages, to
``--out`` as JSON, rewritten after every step. The servers are always stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import httpx  # noqa: E402

import rag  # noqa: E402,F401  (telemetry off before anything heavy loads)
from bench.ingest_bench import _energy_cell, _log, machine_info, percentiles  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.energy import EnergyMeter  # noqa: E402
from rag.index import DB_NAME  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CMRC_QA = REPO.parent / "shared" / "data" / "cmrc2018" / "qa.jsonl"
HOST = "127.0.0.1"

# The bars.
BAR_WARM_START_S = 5.0
BAR_RETRIEVE_P95_MS = 50.0
BAR_TTFT_P50_MS = 1000.0

HEALTH_POLL_S = 0.1  # start-up times are measured to about this resolution
RSS_SAMPLE_S = 0.2


class BenchError(Exception):
    """An expected failure of the benchmark's set-up, reported as one sentence."""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- the server process ----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server and the generator's process), from
    ``/proc/<pid>/task/*/children``."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS) in MB and the thread count, from ``/proc/<pid>/status``, summed
    over the process and its children (so VmHWM is the sum of each one's peak)."""
    out: dict[str, float] = {}
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(out.get(key, 0.0) + int(value.split()[0]) / 1024, 1)  # kB
            elif key == "Threads":
                out[key] = out.get(key, 0) + int(value)
    return out


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process and its children have used so far
    (``/proc/<pid>/stat`` utime + stime)."""
    total = None
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name start at field 3 (state); utime and
        # stime are fields 14 and 15.
        rest = stat.rsplit(")", 1)[1].split()
        total = (total or 0.0) + (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    return total


class ServerProcess:
    """One ``python -m api`` subprocess listening on 127.0.0.1, its output going to a log file."""

    def __init__(
        self, index_dir: Path, port: int, log_path: Path, env: dict[str, str] | None = None, args: Iterable[str] = ()
    ) -> None:
        self.index_dir = index_dir
        self.port = port
        self.log_path = log_path
        self.env = dict(env or {})  # on top of this process's environment
        self.args = list(args)  # more ``python -m api`` arguments
        self.base_url = f"http://{HOST}:{port}"
        self.process: subprocess.Popen | None = None
        self.launched_at = 0.0
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, HF_HUB_OFFLINE="1", **self.env)
        command = [
            sys.executable,
            "-m",
            "api",
            "--index-dir",
            str(self.index_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
            *self.args,
        ]
        self.launched_at = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float) -> tuple[float, dict[str, Any]]:
        """Seconds from launch until ``/health`` said ready, and its last answer."""
        assert self.process is not None
        deadline = self.launched_at + timeout
        with httpx.Client(base_url=self.base_url, timeout=5.0, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    raise BenchError(
                        f"The server exited with code {self.process.returncode} before it was ready; "
                        f"see {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    response = client.get("/health")
                    body = response.json()
                except (httpx.HTTPError, ValueError):
                    body = None  # not listening yet
                now = time.perf_counter()
                if body is not None:
                    if response.status_code == 200 and body.get("status") == "ready":
                        return now - self.launched_at, body
                    if body.get("status") in ("no_index", "error"):
                        raise BenchError(f"The server is not ready ({body.get('status')}): {body.get('error')}")
                if now > deadline:
                    raise BenchError(
                        f"The server was not ready {timeout:.0f} s after launch (raise --start-timeout); "
                        f"see {self.log_path}."
                    )
                time.sleep(HEALTH_POLL_S)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class RssSampler:
    """The largest VmRSS of one process, sampled every ``RSS_SAMPLE_S`` seconds in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max_rss_mb = 0.0
        self.max_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status = proc_status(self.pid)
            self.max_rss_mb = max(self.max_rss_mb, status.get("VmRSS", 0.0))
            self.max_threads = max(self.max_threads, int(status.get("Threads", 0)))
            self._stop.wait(RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- one streamed request --------------------------------------------------------------------


@dataclass
class RequestResult:
    """What one ``POST /ask`` with ``stream: true`` took, seen from the client and the server.

    Times ending in ``_ms`` are client-side, from the moment the request was sent.
    """

    question_id: str
    sent_at_s: float = 0.0  # since the level started
    error_kind: str | None = None
    error: str | None = None
    retrieval_event_ms: float | None = None
    ttft_ms: float | None = None  # first ``token`` event
    last_token_ms: float | None = None
    done_ms: float | None = None
    wall_ms: float = 0.0
    token_events: int = 0
    answerable: bool | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)  # the server's, from ``done``
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def completion_tokens(self) -> int:
        return int(self.usage.get("completion_tokens", 0))

    @property
    def model_ran(self) -> bool:
        """Whether the generator wrote this answer (a refusal after weak retrieval skips it)."""
        return self.completion_tokens > 0

    def generate_tokens_per_s(self) -> float | None:
        """Completion tokens over the server's ``generate`` time (prompt reading included)."""
        generate_ms = self.timings_ms.get("generate", 0.0)
        return self.completion_tokens / (generate_ms / 1000) if self.model_ran and generate_ms > 0 else None

    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first over the time from the first to the last ``token`` event.

        Approximate (a token event may carry more than one token), but free of the time spent
        waiting for the generator, which ``timings_ms.generate`` includes under concurrency.
        """
        if self.completion_tokens < 2 or self.ttft_ms is None or self.last_token_ms is None:
            return None
        span_s = (self.last_token_ms - self.ttft_ms) / 1000
        return (self.completion_tokens - 1) / span_s if span_s > 0 else None


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(event type, data)`` for each Server-Sent Event in a stream of lines."""
    kind, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
    if data:
        yield kind, "\n".join(data)


def ask_streaming(client: httpx.Client, question_id: str, question: str, timeout: float) -> RequestResult:
    """Send one streamed question and read its events until ``done``, an error or ``timeout`` s."""
    result = RequestResult(question_id)
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    def fail(kind: str, message: str) -> None:
        result.error_kind, result.error = kind, message[:300]

    try:
        with client.stream("POST", "/ask", json={"question": question, "stream": True}) as response:
            if response.status_code != 200:
                response.read()
                fail(f"http_{response.status_code}", response.text)
            else:
                for kind, data in sse_events(response.iter_lines()):
                    now = elapsed_ms()
                    if kind == "retrieval":
                        result.retrieval_event_ms = now
                    elif kind == "token":
                        result.token_events += 1
                        result.ttft_ms = now if result.ttft_ms is None else result.ttft_ms
                        result.last_token_ms = now
                    elif kind == "done":
                        answer = json.loads(data).get("answer") or {}
                        result.done_ms = now
                        result.answerable = answer.get("answerable")
                        result.timings_ms = dict(answer.get("timings_ms") or {})
                        result.usage = dict(answer.get("usage") or {})
                        break
                    elif kind == "error":
                        body = json.loads(data)
                        fail(f"sse_{body.get('code', 'error')}", str(body.get("error")))
                        break
                    if now > timeout * 1000:
                        fail("timeout", f"no done event after {timeout:.0f} s")
                        break  # closing the stream stops the generation on the server
                else:
                    fail("incomplete", "the stream ended without a done event")
    except httpx.TimeoutException as exc:
        fail("timeout", f"{exc.__class__.__name__} after {elapsed_ms() / 1000:.1f} s")
    except (httpx.HTTPError, ValueError) as exc:
        fail(
            "connection" if isinstance(exc, httpx.TransportError) else "bad_response",
            f"{exc.__class__.__name__}: {exc}",
        )
    result.wall_ms = elapsed_ms()
    return result


# -- questions -------------------------------------------------------------------------------


def load_questions(path: Path) -> list[tuple[str, str]]:
    """``(id, question)`` for every line of a QA file with a non-empty ``question``."""
    if not path.is_file():
        raise BenchError(f"The questions file {path} does not exist; pass one with --questions FILE.jsonl.")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and isinstance(item.get("question"), str) and item["question"].strip():
            out.append((str(item.get("id", f"line-{number}")), item["question"].strip()))
    if not out:
        raise BenchError(f"The questions file {path} has no line with a 'question' field.")
    return out


def pick_questions(
    questions: list[tuple[str, str]], warmup: int, measured: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], bool]:
    """Warm-up and measured questions, disjoint, in a seeded random order.

    Every concurrency level asks the same measured questions, so the levels differ only in
    concurrency. The file is cycled (the third value says so) when it is too short.
    """
    order = list(questions)
    random.Random(seed).shuffle(order)
    wanted = warmup + measured
    repeated = wanted > len(order)
    while len(order) < wanted:
        order += order[: wanted - len(order)]
    return order[:warmup], order[warmup:wanted], repeated


# -- the steps -------------------------------------------------------------------------------


def ensure_index(index_dir: Path, docs: Path | None) -> dict[str, Any] | None:
    """Build the index with ``python -m ingest`` when it is missing and ``--docs`` is given."""
    if (index_dir / DB_NAME).is_file():
        return None
    if docs is None:
        raise BenchError(
            f"No index in {index_dir}; build one with: python -m ingest DOCS --index-dir {index_dir} "
            "(or pass --docs DOCS)."
        )
    _log(f"[ingest] {docs} -> {index_dir}")
    started = time.perf_counter()
    load_before = _load()
    done = subprocess.run([sys.executable, "-m", "ingest", str(docs), "--index-dir", str(index_dir)], cwd=REPO)
    if done.returncode != 0:
        raise BenchError(f"python -m ingest {docs} failed with exit code {done.returncode}.")
    return {
        "docs": str(docs),
        "wall_s": round(time.perf_counter() - started, 2),
        "load_before": load_before,
        "load_after": _load(),
    }


def converted_models(settings: Settings) -> list[str]:
    """Complete converted (transformers) and exported (ONNX) generator copies in the model
    cache, as ``folder/name``."""
    found = []
    for folder, mark in (("generators", "conversion.json"), ("generators-onnx", "export.json")):
        root = Path(settings.model_cache_dir) / folder
        found += sorted(f"{folder}/{p.name}" for p in root.glob("*") if (p / mark).is_file())
    return found


def start_server(number: int, args: argparse.Namespace, settings: Settings) -> tuple[ServerProcess, dict[str, Any]]:
    """Launch a server and wait until it is ready; the record holds the start-up figures."""
    port = args.port or free_port()
    log_path = Path(args.out).with_name(f"{Path(args.out).stem}-server{number}.log")
    record: dict[str, Any] = {
        "port": port,
        "log": str(log_path),
        "load_before": _load(),
        "converted_models_before": converted_models(settings),
    }
    server = ServerProcess(Path(args.index_dir), port, log_path)
    _log(f"[start {number}] python -m api on port {port} (load average {record['load_before'][0]})")
    server.launch()
    try:
        seconds, health = server.wait_ready(args.start_timeout)
    except BaseException:
        server.stop()
        raise
    status = proc_status(server.pid)
    record.update(
        {
            "pid": server.pid,
            "launch_to_ready_s": round(seconds, 2),
            "server_load_seconds": health.get("load_seconds"),  # the server's own warm-up thread
            "server_cpu_s": round(proc_cpu_seconds(server.pid) or 0.0, 2),
            "rss_mb": status.get("VmRSS"),
            "hwm_mb": status.get("VmHWM"),
            "threads": status.get("Threads"),
            "model": health.get("model"),
            "index": health.get("index"),
            "load_after": _load(),
            "converted_models_after": converted_models(settings),
        }
    )
    _log(
        f"[start {number}] ready in {seconds:.2f} s (server warm-up {health.get('load_seconds')} s, "
        f"{record['server_cpu_s']} s CPU, RSS {record['rss_mb']} MB)"
    )
    return server, record


def run_requests(
    server: ServerProcess, questions: list[tuple[str, str]], concurrency: int, args: argparse.Namespace, budget_s: float
) -> tuple[list[RequestResult], float, int]:
    """Ask every question through ``concurrency`` threads; no new request starts after ``budget_s``.

    Returns the results, the wall time from the first request sent to the last one finished,
    and how many questions were not sent for want of time.
    """
    todo: queue.Queue[tuple[str, str]] = queue.Queue()
    for item in questions:
        todo.put(item)
    results: list[RequestResult] = []
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    timeout = httpx.Timeout(args.timeout, connect=10.0)
    started = time.perf_counter()

    def client_loop(client: httpx.Client) -> None:
        while time.perf_counter() - started < budget_s:
            try:
                question_id, question = todo.get_nowait()
            except queue.Empty:
                return
            sent_at = time.perf_counter() - started
            result = ask_streaming(client, question_id, question, args.timeout)
            result.sent_at_s = round(sent_at, 3)
            results.append(result)

    with httpx.Client(base_url=server.base_url, timeout=timeout, limits=limits, trust_env=False) as client:
        threads = [threading.Thread(target=client_loop, args=(client,), name=f"client-{i}") for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return sorted(results, key=lambda r: r.sent_at_s), time.perf_counter() - started, todo.qsize()


def measure_level(
    server: ServerProcess, questions: list[tuple[str, str]], concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One concurrency level: the requests, and the server's CPU and memory while they ran."""
    _log(f"[c={concurrency}] {len(questions)} requests (load average {_load()[0]})")
    load_before = _load()
    # Energy over the level's wall time (rag/energy.py). Scope "process" counts this process and
    # its children: the server it launched and the server's generator process (and the
    # clients' own CPU, "bench CPU s"); "machine" counts everything on the machine.
    meter = EnergyMeter(args.energy_country, args.energy_scope).start()
    cpu_before = proc_cpu_seconds(server.pid) or 0.0
    own_before = os.times()
    try:
        with RssSampler(server.pid) as sampler:
            results, wall_s, not_sent = run_requests(server, questions, concurrency, args, args.max_level_s)
    finally:
        energy = meter.stop()
    own_after = os.times()
    status = proc_status(server.pid)
    summary = summarise(results, wall_s)
    summary.update(
        {
            "concurrency": concurrency,
            "not_sent": not_sent,
            "load_before": load_before,
            "load_after": _load(),
            "server_cpu_s": round((proc_cpu_seconds(server.pid) or 0.0) - cpu_before, 2),
            "bench_cpu_s": round((own_after.user - own_before.user) + (own_after.system - own_before.system), 2),
            "server_rss_max_mb": sampler.max_rss_mb,
            "server_rss_after_mb": status.get("VmRSS"),
            "server_hwm_mb": status.get("VmHWM"),
            "server_threads_max": sampler.max_threads,
            "energy": energy.to_dict(summary["ok"], "answers"),
            "requests_detail": [asdict(r) for r in results],
        }
    )
    if not_sent:
        _log(f"[c={concurrency}] {not_sent} requests not sent: the level ran out of its {args.max_level_s:.0f} s")
    _log(f"[c={concurrency}] {energy.summary_line(summary['ok'], 'answers')}")
    _log(
        f"[c={concurrency}] {summary['ok']} ok, {summary['errors']} errors in {wall_s:.1f} s; "
        f"TTFT p50 {_get(summary, 'ttft', 'p50_ms')} ms, "
        f"retrieve p95 {_get(summary, 'server', 'retrieve', 'p95_ms')} ms"
    )
    return summary


def summarise(results: list[RequestResult], wall_s: float) -> dict[str, Any]:
    """Percentiles and means over one level's requests (only the successful ones are timed)."""
    ok = [r for r in results if r.ok]
    ran = [r for r in ok if r.model_ran]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error_kind] = errors.get(r.error_kind, 0) + 1
    stages = sorted({key for r in ok for key in r.timings_ms}, key=_stage_order)
    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "error_kinds": errors,
        "error_examples": [f"{r.question_id}: {r.error_kind}: {r.error}" for r in results if not r.ok][:5],
        "refused": sum(1 for r in ok if r.answerable is False),
        "model_ran": len(ran),
        "wall_s": round(wall_s, 2),
        "throughput_rps": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
        "ttft": _percentiles([r.ttft_ms for r in ok]),
        "ttft_model_ran": _percentiles([r.ttft_ms for r in ran]),
        "client_total": _percentiles([r.wall_ms for r in ok]),
        "retrieval_event": _percentiles([r.retrieval_event_ms for r in ok]),
        "server": {stage: _percentiles([r.timings_ms.get(stage) for r in ok]) for stage in stages},
        # A refusal after weak retrieval skips the model (generate 0 ms); these leave them out.
        "server_model_ran": {stage: _percentiles([r.timings_ms.get(stage) for r in ran]) for stage in stages},
        "server_stages_nonzero": {stage: sum(1 for r in ok if r.timings_ms.get(stage, 0) > 0) for stage in stages},
        "completion_tokens_mean": _mean([r.completion_tokens for r in ran]),
        "prompt_tokens_mean": _mean([r.usage.get("prompt_tokens") for r in ran]),
        "generate_tokens_per_s_mean": _mean([r.generate_tokens_per_s() for r in ran]),
        "decode_tokens_per_s_mean": _mean([r.decode_tokens_per_s() for r in ran]),
    }


def _stage_order(stage: str) -> tuple[int, str]:
    known = ("rewrite", "retrieve", "rerank", "read", "first_token", "generate", "total")
    return (known.index(stage) if stage in known else len(known), stage)


def _percentiles(values: Iterable[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    return percentiles(present) if present else None


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 2) if present else None


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or data.get(key) is None:
            return None
        data = data[key]
    return data


def warm_up(server: ServerProcess, questions: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    """The warm-up questions, one at a time; not counted in the levels."""
    _log(f"[warm-up] {len(questions)} requests")
    results, wall_s, _ = run_requests(server, questions, 1, args, budget_s=float("inf"))
    return {
        "requests": len(results),
        "ok": sum(r.ok for r in results),
        "wall_s": round(wall_s, 2),
        "errors": [f"{r.question_id}: {r.error_kind}: {r.error}" for r in results if not r.ok],
    }


# -- bars ------------------------------------------------------------------------------------


def bars(state: dict[str, Any]) -> dict[str, Any]:
    """Each bar's value, limit and verdict. TTFT is judged on the requests the model answered:
    a refusal after weak retrieval streams its sentence at once and would flatter it."""
    out: dict[str, Any] = {}
    starts = state.get("starts", [])
    if len(starts) >= 2:
        out["warm_start_s <= 5"] = _verdict(starts[1]["launch_to_ready_s"], BAR_WARM_START_S)
    for level in state.get("levels", {}).values():
        c = level["concurrency"]
        retrieve_p95 = _get(level, "server", "retrieve", "p95_ms")
        if retrieve_p95 is not None:
            out[f"retrieve_p95_ms <= 50 (c={c})"] = _verdict(retrieve_p95, BAR_RETRIEVE_P95_MS)
        ttft = level.get("ttft_model_ran")
        if ttft is not None:
            out[f"ttft_p50_ms <= 1000 (c={c})"] = _verdict(ttft["p50_ms"], BAR_TTFT_P50_MS)
        elif level.get("ttft") is not None:
            out[f"ttft_p50_ms <= 1000 (c={c})"] = _verdict(level["ttft"]["p50_ms"], BAR_TTFT_P50_MS) | {
                "note": "no request reached the model; this is the TTFT of refusals"
            }
    return out


def _verdict(value: float, bar: float) -> dict[str, Any]:
    return {"value": value, "bar": bar, "pass": value <= bar}


# -- output ----------------------------------------------------------------------------------


def write_state(state: dict[str, Any], out: Path) -> None:
    """Write what is measured so far, so a run that dies late still leaves its figures."""
    state["bars"] = bars(state)
    state["load_average_now"] = _load()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(out)


def format_table(state: dict[str, Any]) -> str:
    """The figures as text: the starts, then one column per concurrency level, then the bars."""
    lines = []
    for number, start in enumerate(state.get("starts", []), start=1):
        cache = "model cache present" if start["converted_models_before"] else "model cache empty"
        lines.append(
            f"start {number} ({'warm' if number == 2 else 'first'}, {cache}): "
            f"{start['launch_to_ready_s']:.2f} s launch to ready (server warm-up "
            f"{start['server_load_seconds']} s, {start['server_cpu_s']} s CPU, RSS {start['rss_mb']} MB)"
        )
    levels = list(state.get("levels", {}).values())
    verdicts = state.get("bars", {})

    def mark(key: str) -> str:
        verdict = verdicts.get(key)
        return "" if verdict is None else (" PASS" if verdict["pass"] else " FAIL") + ("*" if "note" in verdict else "")

    def p50_p95(section: dict[str, Any] | None) -> str:
        return "-" if not section else f"{section['p50_ms']:.0f} / {section['p95_ms']:.0f}"

    def fmt(value: Any, spec: str = ".1f") -> str:
        return "-" if value is None else format(value, spec)

    rows: list[tuple[str, Any]] = [
        ("requests ok / errors / not sent", lambda v: f"{v['ok']} / {v['errors']} / {v['not_sent']}"),
        ("  refused / model ran", lambda v: f"{v['refused']} / {v['model_ran']}"),
        ("throughput requests/s", lambda v: fmt(v["throughput_rps"], ".3f")),
        (
            "TTFT p50 / p95 ms, model ran (bar p50 <= 1000)",
            lambda v: p50_p95(v["ttft_model_ran"] or v["ttft"]) + mark(f"ttft_p50_ms <= 1000 (c={v['concurrency']})"),
        ),
        ("TTFT p50 / p95 ms, all", lambda v: p50_p95(v["ttft"])),
        ("request wall p50 / p95 ms", lambda v: p50_p95(v["client_total"])),
    ]
    stages = sorted({s for v in levels for s in v.get("server", {})}, key=_stage_order)
    for stage in stages:
        label = f"server {stage} p50 / p95 ms" + (" (bar p95 <= 50)" if stage == "retrieve" else "")
        rows.append(
            (
                label,
                lambda v, s=stage: (
                    p50_p95(v["server"].get(s))
                    + (mark(f"retrieve_p95_ms <= 50 (c={v['concurrency']})") if s == "retrieve" else "")
                    + ("" if v["server_stages_nonzero"].get(s) else " (all 0)")
                ),
            )
        )
    for stage in ("generate", "total"):
        if stage in stages:
            rows.append(
                (f"server {stage} p50 / p95 ms, model ran", lambda v, s=stage: p50_p95(v["server_model_ran"].get(s)))
            )
    rows += [
        ("completion tokens mean", lambda v: fmt(v["completion_tokens_mean"])),
        (
            "tokens/s: over generate / decode",
            lambda v: f"{fmt(v['generate_tokens_per_s_mean'])} / {fmt(v['decode_tokens_per_s_mean'])}",
        ),
        ("server CPU s / bench CPU s", lambda v: f"{v['server_cpu_s']:.1f} / {v['bench_cpu_s']:.1f}"),
        (
            "server RSS MB: max during / after",
            lambda v: f"{fmt(v['server_rss_max_mb'], '.0f')} / {fmt(v['server_rss_after_mb'], '.0f')}",
        ),
        ("energy kWh / g CO2e per 1,000 answers", lambda v: _energy_cell(v.get("energy") or {}, "answers")),
        ("load average before / after", lambda v: f"{v['load_before'][0]:.2f} / {v['load_after'][0]:.2f}"),
    ]
    if levels:
        names = [f"c={v['concurrency']}" for v in levels]
        cells = [[getter(v) for v in levels] for _, getter in rows]
        width = max(len(label) for label, _ in rows)
        col = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
        header = " " * width + " | " + " | ".join(n.ljust(col[i]) for i, n in enumerate(names))
        lines += ["", header, "-" * len(header)]
        for (label, _), row in zip(rows, cells):
            lines.append(label.ljust(width) + " | " + " | ".join(c.ljust(col[i]) for i, c in enumerate(row)))
    lines.append("")
    for key, verdict in verdicts.items():
        lines.append(
            f"bar {key}: {verdict['value']} -> {'PASS' if verdict['pass'] else 'FAIL'}"
            + (f" ({verdict['note']})" if "note" in verdict else "")
        )
    method = next((v["energy"]["method"] for v in levels if (v.get("energy") or {}).get("measured")), None)
    if method:
        lines.append(f"energy over each level's wall time: {method}")
    machine = state.get("machine", {})
    lines.append(
        f"machine: {machine.get('cpu_model')}, {machine.get('usable_cores')} cores; "
        f"load average at start {machine.get('load_average_at_start')}, now {state.get('load_average_now')}; "
        f"server peak RSS (VmHWM) {state.get('server_hwm_mb')} MB"
    )
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------


def _concurrency_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--concurrency takes numbers separated by commas, like 1,4, not {text!r}"
        ) from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("--concurrency levels must be at least 1")
    return levels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index-dir", required=True, help="the index to serve (built by python -m ingest)")
    parser.add_argument("--docs", help="if the index does not exist, ingest this folder into it first")
    parser.add_argument(
        "--questions",
        default=str(CMRC_QA),
        help="QA file, one JSON object a line with a 'question' (default ../shared/data/cmrc2018/qa.jsonl)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="measured requests per concurrency level (default 40; 4 with --quick)",
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency_levels,
        default=[1, 4],
        help="client threads per level, comma-separated (default 1,4)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="warm-up requests before measuring (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--port", type=int, default=None, help="port for the servers (default: a free port on 127.0.0.1)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take (default 120)")
    parser.add_argument(
        "--start-timeout", type=float, default=600.0, help="seconds a server may take to become ready (default 600)"
    )
    parser.add_argument(
        "--max-level-s",
        type=float,
        default=None,
        help="no new request starts this many seconds into a level (default 900; 120 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=2018, help="seed of the question order")
    parser.add_argument(
        "--energy-country",
        default=None,
        metavar="ISO3",
        help="grid for the CO2e figures: a 3-letter country code or WORLD (default: the energy_country setting, WORLD)",
    )
    parser.add_argument(
        "--energy-scope",
        choices=("process", "machine"),
        default="process",
        help="energy of this process and its children, the server among them (default), "
        "or of the whole machine, other users' work included",
    )
    parser.add_argument("--quick", action="store_true", help="a few requests: a smoke test")
    parser.add_argument(
        "--out",
        default=str(REPO / "bench" / "results" / "serve_bench.json"),
        help="JSON results file; the servers' logs go beside it",
    )
    return parser


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks, which stop the servers


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.requests = args.requests or (4 if args.quick else 40)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.max_level_s = args.max_level_s or (120.0 if args.quick else 900.0)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    command = [Path(sys.executable).name, "-m", "bench.serve_bench", *(argv if argv is not None else sys.argv[1:])]
    try:
        return run(args, Path(args.out), " ".join(command))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the servers are stopped and the figures so far are in " + args.out, file=sys.stderr)
        return 130


def run(args: argparse.Namespace, out: Path, command: str) -> int:
    settings = Settings.load(overrides={"index_dir": args.index_dir, "energy_country": args.energy_country})
    args.energy_country = settings.energy_country
    index_dir = Path(settings.index_dir)
    warmup_questions, measured, repeated = pick_questions(
        load_questions(Path(args.questions)), args.warmup, args.requests, args.seed
    )
    bound_s = (
        2 * args.start_timeout
        + (args.warmup + len(args.concurrency)) * args.timeout
        + len(args.concurrency) * args.max_level_s
    )
    state: dict[str, Any] = {
        "command": command,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "options": {
            "index_dir": str(index_dir),
            "questions": str(args.questions),
            "requests": args.requests,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "timeout_s": args.timeout,
            "start_timeout_s": args.start_timeout,
            "max_level_s": args.max_level_s,
            "seed": args.seed,
            "questions_repeated": repeated,
            "worst_case_run_s": bound_s,
        },
        "settings": {
            k: str(v)
            for k, v in settings.to_dict().items()
            if k
            in (
                "generator",
                "generator_model",
                "embed_model",
                "rerank",
                "top_k",
                "retrieve_k",
                "max_new_tokens",
                "min_relevance",
                "device",
                "model_cache_dir",
            )
        },
        "machine": machine_info(),
    }
    _log(
        f"at most {len(args.concurrency) * args.requests + args.warmup} requests; "
        f"the run ends within {bound_s / 60:.0f} minutes at worst"
    )
    started = time.perf_counter()
    servers: list[ServerProcess] = []
    try:
        state["ingest"] = ensure_index(index_dir, Path(args.docs) if args.docs else None)
        state["starts"] = []
        for number in (1, 2):
            server, record = start_server(number, args, settings)
            servers.append(server)
            state["starts"].append(record)
            write_state(state, out)
            if number == 1:
                server.stop()
        server = servers[-1]
        state["warmup"] = warm_up(server, warmup_questions, args)
        state["levels"] = {}
        for concurrency in args.concurrency:
            state["levels"][f"c={concurrency}"] = measure_level(server, measured, concurrency, args)
            state["server_hwm_mb"] = proc_status(server.pid).get("VmHWM")
            write_state(state, out)
        state["server_after_load"] = proc_status(server.pid) | {"cpu_s_total": proc_cpu_seconds(server.pid)}
    finally:
        for server in servers:
            server.stop()
        state["total_s"] = round(time.perf_counter() - started, 1)
        write_state(state, out)
    print(format_table(state))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
