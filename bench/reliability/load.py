"""Many clients at once: every one gets an answer or a fast 503/429, never a one-minute wait or a 5xx.

A real ``python -m api`` (default settings: the default generator, ``max_pending_answers``) over
the bundled example documents; ``clients`` threads each ask streamed questions from
``examples/qa.jsonl`` for ``seconds``, with a 60 s client timeout, honouring ``Retry-After``
(capped at 10 s) when refused, as a well-behaved client does. Beside them, ``/health`` is polled
every 0.5 s. Every request is a case: it passes with a complete answer (a ``done`` event) within
60 s, or with a 503/429 that carries ``Retry-After``; ``/health`` must answer every poll. The
figures: time to first token of admitted answers (p50/p95), refusal latency (p95, bar 100 ms) and
``/health`` latency (p95, bar 50 ms), which are cases of the full run and notes of the short one
(a shared CI machine is no place for latency bars).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from bench.reliability import Outcome
from bench.serve_bench import ServerProcess, free_port, sse_events

REPO = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT_S = 60.0
BAR_REFUSAL_P95_MS = 100.0
BAR_HEALTH_P95_MS = 50.0


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _questions() -> list[str]:
    lines = (REPO / "examples" / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def _ask(client: httpx.Client, question: str) -> dict:
    """One streamed question: status, time to first token, to done, Retry-After."""
    started = time.perf_counter()
    out: dict = {"status": None, "ttft_ms": None, "done": False, "retry_after": None, "error": ""}
    try:
        with client.stream("POST", "/ask", json={"question": question, "stream": True}) as response:
            out["status"] = response.status_code
            if response.status_code != 200:
                response.read()
                out["retry_after"] = response.headers.get("retry-after")
                out["error"] = response.text[:200]
            else:
                for kind, _data in sse_events(response.iter_lines()):
                    if kind == "token" and out["ttft_ms"] is None:
                        out["ttft_ms"] = (time.perf_counter() - started) * 1000
                    if kind == "done":
                        out["done"] = True
                        break
                    if kind == "error":
                        out["error"] = _data[:200]
                        break
    except httpx.TimeoutException:
        out["status"], out["error"] = "timeout", f"no answer within {CLIENT_TIMEOUT_S:.0f} s"
    except httpx.HTTPError as exc:
        out["status"], out["error"] = "connection", f"{exc.__class__.__name__}: {exc}"
    out["ms"] = (time.perf_counter() - started) * 1000
    return out


def run(work: Path, quick: bool, clients: int = 16, seconds: float | None = None) -> Outcome:
    seconds = seconds or (20.0 if quick else 180.0)
    outcome = Outcome(f"{clients} clients for {seconds:.0f} s")
    started = time.perf_counter()
    work = Path(work)
    index_dir = work / "index"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ingest = subprocess.run(
        [sys.executable, "-m", "ingest", str(REPO / "examples" / "docs"), "--index-dir", str(index_dir), "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if ingest.returncode != 0:
        outcome.record(False, "ingest of examples/docs", ingest.stderr.strip()[-300:])
        return outcome
    server = ServerProcess(index_dir, free_port(), work / "server.log")
    server.launch()
    try:
        server.wait_ready(600)
        questions = _questions()
        results: list[dict] = []
        health_ms: list[float] = []
        lock = threading.Lock()
        deadline = time.perf_counter() + seconds

        def client_loop(number: int) -> None:
            with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
                i = number
                while time.perf_counter() < deadline:
                    result = _ask(client, questions[i % len(questions)])
                    i += clients
                    with lock:
                        results.append(result)
                    if result["status"] in (429, 503):
                        time.sleep(min(10.0, float(result["retry_after"] or 1)))

        def health_loop() -> None:
            with httpx.Client(base_url=server.base_url, timeout=10, trust_env=False) as client:
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    try:
                        ok = client.get("/health").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    health_ms.append((time.perf_counter() - t0) * 1000 if ok else 10_000.0)
                    time.sleep(0.5)

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
        threads.append(threading.Thread(target=health_loop))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + CLIENT_TIMEOUT_S * 2)

        answered, refusals, ttft = 0, [], []
        for n, r in enumerate(results):
            case = f"request {n + 1}"
            if r["status"] == 200 and r["done"]:
                answered += 1
                if r["ttft_ms"] is not None:
                    ttft.append(r["ttft_ms"])
                outcome.record(True, case)
            elif r["status"] in (429, 503):
                refusals.append(r["ms"])
                outcome.record(r["retry_after"] is not None, case, "refused without Retry-After")
            else:
                outcome.record(False, case, f"{r['status']}: {r['error']}")
        refusal_p95, health_p95 = _p(refusals, 95), _p(health_ms, 95)
        outcome.record(
            bool(health_ms) and max(health_ms) < 10_000,
            "/health answered every poll",
            "a /health poll failed or took 10 s",
        )
        if not quick:
            # Latency bars are for the full run on a quiet machine; the short run (CI) only notes them.
            outcome.record(
                refusal_p95 is None or refusal_p95 <= BAR_REFUSAL_P95_MS,
                "refusals p95 <= 100 ms",
                f"p95 {refusal_p95:.0f} ms" if refusal_p95 else "",
            )
            outcome.record(
                health_p95 is not None and health_p95 <= BAR_HEALTH_P95_MS,
                "/health p95 <= 50 ms",
                f"p95 {health_p95:.0f} ms" if health_p95 is not None else "no /health answer",
            )
        fmt = lambda v: "-" if v is None else f"{v:.0f} ms"  # noqa: E731
        outcome.notes.append(
            f"{len(results)} requests: {answered} answered, {len(refusals)} refused (503/429), "
            f"{len(results) - answered - len(refusals)} other"
        )
        outcome.notes.append(f"admitted answers: time to first token p50 {fmt(_p(ttft, 50))}, p95 {fmt(_p(ttft, 95))}")
        outcome.notes.append(
            f"refusals: p50 {fmt(_p(refusals, 50))}, p95 {fmt(refusal_p95)}; "
            f"/health: p50 {fmt(_p(health_ms, 50))}, p95 {fmt(health_p95)} over {len(health_ms)} polls"
        )
    finally:
        server.stop()
    outcome.seconds = time.perf_counter() - started
    return outcome


if __name__ == "__main__":
    from bench.reliability.report import print_outcomes

    print_outcomes([run(Path("/tmp/rag-reliability/load"), "--quick" in sys.argv)])
