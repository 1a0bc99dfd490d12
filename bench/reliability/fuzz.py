"""Schemathesis against a real server: no input makes a 5xx, every answer matches the OpenAPI description.

A ``python -m api`` (no keys, the smallest real generator, SmolLM2-135M) over two small documents
is fuzzed from its own ``/openapi.json`` with every schemathesis check but
``positive_data_acceptance``: some rules the server enforces cannot be written in JSON Schema or
depend on settings (a question of only spaces or over ``max_question_chars``, a chat whose last
message is not the user's, a multipart body without a file, control characters or lone
surrogates in text); those get a 422 saying what to fix. Seeded and bounded by examples per
operation, so a run is repeatable. Each schemathesis failure is a failed case; the server must
still be healthy afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.reliability import Outcome
from bench.serve_bench import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = {
    "kettle.md": "# Kettle guide\n\nThe Brewmaster kettle switches itself off after 90 seconds of boiling.\n",
    "灯.txt": "星河台灯有三档亮度，并带有一个USB接口。\n",
}


def run(work: Path, quick: bool, examples: int | None = None, seed: int = 0) -> Outcome:
    examples = examples or (30 if quick else 200)
    outcome = Outcome(f"schemathesis, {examples} examples an operation")
    started = time.perf_counter()
    work = Path(work)
    docs = work / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ingest = subprocess.run(
        [sys.executable, "-m", "ingest", str(docs), "--index-dir", str(work / "index"), "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if ingest.returncode != 0:
        outcome.record(False, "ingest", ingest.stderr.strip()[-300:])
        return outcome
    server = ServerProcess(
        work / "index",
        free_port(),
        work / "server.log",
        args=["--docs-root", str(docs)],
        env={
            "RAG_API_KEYS": "",
            "RAG_READ_ONLY_KEYS": "",
            "RAG_GENERATOR_MODEL": "SmolLM2-135M-Instruct",
            "RAG_MAX_NEW_TOKENS": "24",
        },
    )
    server.launch()
    try:
        server.wait_ready(600)
        fuzzing = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                server.base_url + "/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                str(examples),
                "--seed",
                str(seed),
                "--workers",
                "1",
                "--no-shrink",
                "--request-timeout",
                "120",
                # An upload is ingested before it is answered: seconds on 2 busy cores, not a hang.
                "--max-response-time",
                "60",
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        summary = fuzzing.stdout
        (work / "schemathesis.txt").write_text(summary, encoding="utf-8")
        generated = re.search(r"(\d+) generated", summary)
        failures = [f.strip() for f in re.findall(r"^\s*❌\s*(.+)$", summary, flags=re.MULTILINE)]
        cases = int(generated.group(1)) if generated else 0
        failed = [f for f in failures if not f.startswith(("Coverage", "Fuzzing", "Examples", "Stateful"))]
        for n in range(cases):
            outcome.record(True, f"case {n + 1}")
        for failure in failed:  # "ST201 Schema-violating request accepted: 2"
            count = re.search(r":\s*(\d+)$", failure)
            outcome.passed -= int(count.group(1)) if count else 1
            outcome.failures.append(failure)
        if fuzzing.returncode != 0 and not failed:
            outcome.record(
                False,
                "schemathesis run",
                summary.strip().splitlines()[-1] if summary.strip() else fuzzing.stderr.strip()[-300:],
            )
        healthy = httpx.get(server.base_url + "/health", timeout=30, trust_env=False).status_code == 200
        outcome.record(healthy, "the server is healthy after the run", "" if healthy else "/health is not 200")
        outcome.notes.append(f"{cases} generated cases; the full output is in {work / 'schemathesis.txt'}")
    finally:
        server.stop()
    outcome.seconds = time.perf_counter() - started
    return outcome


if __name__ == "__main__":
    from bench.reliability.report import print_outcomes

    print_outcomes([run(Path("/tmp/rag-reliability/fuzz"), "--quick" in sys.argv)])
