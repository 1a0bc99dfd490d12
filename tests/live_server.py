"""A real ``python -m api`` server for tests: start one, talk to it, and the session's shared one
(over a small folder of English and Chinese documents, with an API key) that the API and
chat-page tests use through the ``api_server`` fixture (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docfactory import make_md, make_pdf, make_txt

REPO = Path(__file__).resolve().parents[1]

API_KEY = "test-key-3f9a"
READ_ONLY_KEY = "read-only-key-61c2"
MAX_UPLOAD_MB = 1
ALLOWED_ORIGIN = "http://chat.example.org"

LONDON = "What is the nightly hotel limit in London?"
ROUTER = "How long do I hold the reset button on the Zephyr R7 router?"
PANDA_ZH = "熊猫基地早上几点开门？"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    """A ``python -m api`` process on 127.0.0.1, and how to talk to it."""

    url: str
    process: subprocess.Popen
    log_path: Path
    docs_root: Path
    index_dir: Path
    key: str | None = API_KEY
    timings: dict[str, float] = field(default_factory=dict)

    def client(self, key: str | None = "default", timeout: float = 300.0) -> httpx.Client:
        key = self.key if key == "default" else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(
    index_dir: Path,
    docs_root: Path | None,
    log_path: Path,
    env: dict[str, str] | None = None,
    wait_for: str = "ready",
    timeout: float = 300.0,
) -> LiveServer:
    """Start ``python -m api`` and wait until ``/health`` reports ``wait_for``.

    Without ``docs_root`` the server picks its default (``<index_dir>/../documents`` for a new index).
    """
    port = free_port()
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api",
            "--index-dir",
            str(index_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--docs-root", str(docs_root)] if docs_root else []),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
    )
    log.close()
    server = LiveServer(
        f"http://127.0.0.1:{port}",
        process,
        log_path,
        docs_root or index_dir.parent / "documents",
        index_dir,
        key=environment.get("RAG_API_KEYS") or None,
    )
    started = time.perf_counter()
    status = None
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            pytest.fail(f"python -m api exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            status = httpx.get(server.url + "/health", timeout=5).json().get("status")
        except (httpx.HTTPError, ValueError):
            status = None
        if status == wait_for:
            server.timings["start_s"] = round(time.perf_counter() - started, 1)
            return server
        time.sleep(0.5)
    server.stop()
    pytest.fail(f"/health did not report {wait_for!r} within {timeout:.0f} s (last: {status!r}):\n{server.log_tail()}")


def write_corpus(root: Path) -> None:
    """Three small documents with facts no model knows by heart: English, Chinese, and a PDF."""
    make_md(
        root / "travel-policy.md",
        "Travel policy of Quillfeather Ltd",
        [
            "This policy covers business trips of all Quillfeather employees.",
        ],
        sections=[
            (
                "Hotels",
                [
                    "The nightly hotel limit is 240 pounds in London and 210 euros in Paris. "
                    "In all other cities the nightly hotel limit is 150 euros."
                ],
            ),
            ("Flights", ["Economy class is booked for flights shorter than seven hours."]),
        ],
    )
    make_txt(
        root / "router-faq.txt",
        "Zephyr R7 router: frequently asked questions\n\n"
        "How do I reset the Zephyr R7 router? Hold the RESET button on the back for 12 seconds "
        "until the light turns purple. The router then restarts with factory settings.\n\n"
        "What is the admin address? Open http://10.7.0.1 in a browser.\n",
    )
    make_md(
        root / "熊猫基地.md",
        "熊猫基地参观须知",
        [
            "星河熊猫基地每天早上七点半开门，下午五点停止入园。",
            "门票价格为五十八元，身高一米二以下的儿童免票。",
        ],
    )
    make_pdf(
        root / "safety-manual.pdf",
        [
            "Workshop safety manual\n\nWear safety glasses at every machine.",
            "Fire safety\n\nFire extinguishers in the workshop are inspected every six months.",
        ],
    )


_SERVERS: dict[str, LiveServer] = {}


def shared_server(tmp_path_factory: pytest.TempPathFactory, config: pytest.Config) -> LiveServer:
    """The session's server, started on first use (shared by test modules that import this)."""
    if "main" not in _SERVERS:
        base = tmp_path_factory.mktemp("api")
        docs, index_dir = base / "docs", base / "index"
        write_corpus(docs)
        started = time.perf_counter()
        ingest = subprocess.run(
            [sys.executable, "-m", "ingest", str(docs), "--index-dir", str(index_dir), "--quiet", "--json"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        assert ingest.returncode == 0, ingest.stderr[-2000:]
        assert json.loads(ingest.stdout)["documents_total"] == 4, ingest.stdout
        ingest_s = round(time.perf_counter() - started, 1)
        server = start_server(
            index_dir,
            docs,
            base / "server.log",
            env={
                "RAG_API_KEYS": API_KEY,
                "RAG_READ_ONLY_KEYS": READ_ONLY_KEY,
                "RAG_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
                "RAG_CORS_ORIGINS": ALLOWED_ORIGIN,
                # Short answers keep the suite fast; every answer here fits in a sentence or two.
                "RAG_MAX_NEW_TOKENS": "60",
            },
        )
        server.timings["ingest_s"] = ingest_s
        config.add_cleanup(server.stop)
        _SERVERS["main"] = server
    return _SERVERS["main"]


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of a Server-Sent Events response."""
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            payload = "\n".join(data)
            yield event, (payload if payload == "[DONE]" else json.loads(payload))
            event, data = "message", []


def sources(answer: dict[str, Any]) -> list[str]:
    return [c["source"] for c in answer["citations"]]


def assert_one_sentence(message: str) -> None:
    assert isinstance(message, str) and message, message
    assert "\n" not in message and "Traceback" not in message, message
    assert message.rstrip().endswith((".", ")", "。")), message
