"""Schemathesis against a real server: every answer is documented, no input makes a 5xx.

A ``python -m api`` (no keys, the smallest real generator) over two small documents is fuzzed
from its own OpenAPI description with every schemathesis check but one, bounded by examples
per operation and a seed, so a run is repeatable and takes well under a minute. The server must
still be healthy afterwards.

Left out: ``positive_data_acceptance`` ("a schema-valid request was rejected"), because some of
the rules the server enforces are not expressible in JSON Schema, or depend on settings: a
question of only spaces, one over ``max_question_chars``, a chat whose last message is not the
user's, a multipart body with no file, text holding control characters or lone surrogates.
Those get 422 with a sentence saying what to fix (tests in test_api and test_api_security).
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO
from tests.docfactory import make_md, make_txt
from tests.test_api import start_server

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path):
    pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency (pip install -e '.[dev]')")
    docs = tmp_path / "docs"
    make_md(docs / "kettle.md", "Kettle guide", ["The Brewmaster kettle switches itself off after 90 seconds of boiling."])
    make_txt(docs / "lamp.txt", "The Lumen desk lamp has three brightness levels.\n")
    ingest = subprocess.run([sys.executable, "-m", "ingest", str(docs), "--index-dir", str(tmp_path / "index"),
                             "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    server = start_server(tmp_path / "index", docs, tmp_path / "server.log", env={
        "RAG_API_KEYS": "", "RAG_GENERATOR_MODEL": "SmolLM2-135M-Instruct", "RAG_MAX_NEW_TOKENS": "24",
    })
    try:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json",
             "--checks", "all", "--exclude-checks", "positive_data_acceptance",
             "--max-examples", str(MAX_EXAMPLES), "--seed", "0", "--workers", "1", "--no-shrink",
             "--request-timeout", "120"],
            cwd=tmp_path, capture_output=True, text=True, timeout=900)
        summary = run.stdout[-4000:]
        assert run.returncode == 0, f"{summary}\n--- server log ---\n{server.log_tail()}"
        assert "passed" in summary and "Server error" not in summary, summary
        assert httpx.get(server.url + "/health", timeout=30).status_code == 200
    finally:
        server.stop()
