"""The ingest command for tests: start it as a process, wait for what it does, name what a
search found."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sources(hits):
    """The files of search hits, in their order."""
    return [h.chunk.source for h in hits]


def start_cli(folder: Path, index_dir: Path, extra_env: dict) -> subprocess.Popen:
    """``python -m ingest FOLDER --index-dir INDEX_DIR --quiet`` as a child process, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), **extra_env)
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", str(folder), "--index-dir", str(index_dir), "--quiet"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate, timeout: float = 180.0) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")
