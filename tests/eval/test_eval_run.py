"""``python -m eval.run`` end to end: a real folder ingested, real questions answered by the real
pipeline, in this process and through a real HTTP server, scored the same way."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval.run import main
from tests.conftest import REPO

pytest.importorskip("rag.answering", reason="the answer pipeline (rag/answering.py) is not in the tree yet")

pytestmark = pytest.mark.slow

# Short answers from two passages keep the small CPU model's part of this test to a minute or two.
FAST = {"RAG_MAX_NEW_TOKENS": "48", "RAG_TOP_K": "2"}

QUESTIONS = [
    {
        "id": "en-2",
        "question": "What is the nightly hotel limit in London?",
        "answers": ["250 euros", "250"],
        "gold_docs": ["travel-policy.md"],
        "type": "lookup",
    },
    {"id": "zh-3", "question": "图书馆每周哪天闭馆？", "answers": ["周一", "每周一"], "gold_docs": ["图书馆规定.txt"]},
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The example documents ingested once, and a two-question QA file (English, Chinese)."""
    from rag.config import Settings
    from rag.ingestion import ingest_folder

    root = tmp_path_factory.mktemp("eval-e2e")
    settings = Settings.load(env={}, overrides={"index_dir": root / "index"})
    ingest_folder(REPO / "examples" / "docs", settings)
    qa = root / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in QUESTIONS) + "\n", encoding="utf-8")
    return root, qa


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(workspace):
    root, _ = workspace
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), **FAST)
    env.pop("RAG_API_KEYS", None)
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--index-dir", str(root / "index"), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the API server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _read(out: Path):
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    records = {
        json.loads(line)["id"]: json.loads(line)
        for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    }
    return summary, records


def test_in_process_and_http_runs_agree(workspace, server, capsys, monkeypatch):
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    root, qa = workspace
    local, remote = root / "local", root / "remote"
    assert main([str(qa), "--index-dir", str(root / "index"), "--out", str(local), "--k", "1,3", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "answer_accuracy" in table and "recall@3" in table

    assert main([str(qa), "--url", server, "--out", str(remote), "--k", "1,3", "--quiet", "--concurrency", "2"]) == 0
    summary_l, records_l = _read(local)
    summary_r, records_r = _read(remote)

    for summary, records in ((summary_l, records_l), (summary_r, records_r)):
        assert summary["answered"] == 2 and summary["errors"] == 0
        assert set(records) == {"en-2", "zh-3"}
        # eight documents, hybrid search: the gold document comes first
        assert summary["metrics"]["recall@1"]["mean"] == 1.0
        assert records["en-2"]["prediction"].strip()
        assert records["en-2"]["timings_ms"]["total"] > 0
        assert (Path(summary.get("qa_file")).name) == "qa.jsonl"
        # one typed question, one not: both types broken out; the gold document came first
        assert list(summary["by_type"]) == ["lookup", "untyped"]
        lookup = summary["by_type"]["lookup"]
        assert lookup["answered"] == 1 and lookup["metrics"]["supporting_recall"]["mean"] == 1.0
        assert lookup["metrics"]["answer_accuracy"]["mean"] == records["en-2"]["scores"]["answer_accuracy"]
        assert lookup["latency_ms"]["p50"] == records["en-2"]["timings_ms"]["total"]
        assert records["en-2"]["hops"] == len(records["en-2"]["reasoning"])
    assert summary_r["mode"] == "http" and summary_l["mode"] == "in-process"
    # The energy of the answering: this process and its children in-process, the machine over
    # HTTP (the server is not ours); two answers, so per 1,000 is 500 times the total.
    for summary, scope in ((summary_l, "process"), (summary_r, "machine")):
        energy = summary["energy"]
        assert energy["measured"], energy["reason"]
        assert energy["scope"] == scope and energy["count"] == 2 and energy["kwh"] > 0 and energy["g_co2e"] > 0
        assert energy["per_1000_answers"]["kwh"] == pytest.approx(energy["kwh"] * 500)
        assert "codecarbon" in energy["method"]
    assert "energy: " in table
    # same index, same settings: the same passages in the same order, in-process and over HTTP
    for qid in records_l:
        assert records_l[qid]["sources"] == records_r[qid]["sources"]
        assert records_l[qid]["hops"] == records_r[qid]["hops"]  # reasoning hops come through /ask too
    assert (local / "report.html").stat().st_size > 10_000

    assert main(["--compare", str(local / "summary.json"), str(remote / "summary.json")]) == 0
    assert "2 questions answered by both" in capsys.readouterr().out


def test_resume_and_a_server_that_is_not_there(workspace, capsys):
    root, qa = workspace
    out = root / "local"
    if not (out / "results.jsonl").exists():
        pytest.skip("needs the run of the test before")
    before = (out / "results.jsonl").read_text(encoding="utf-8")
    assert main([str(qa), "--index-dir", str(root / "index"), "--out", str(out), "--resume", "--quiet"]) == 0
    assert (out / "results.jsonl").read_text(encoding="utf-8") == before  # nothing left to answer
    assert main([str(qa), "--url", "http://127.0.0.1:9", "--out", str(root / "nowhere"), "--quiet"]) == 2
    assert "Cannot reach the server" in capsys.readouterr().err


def test_quote_mode_in_process_and_over_http(workspace, server):
    root, qa = workspace
    local, remote = root / "quote-local", root / "quote-remote"
    assert (
        main([str(qa), "--index-dir", str(root / "index"), "--out", str(local), "--answer-mode", "quote", "--quiet"])
        == 0
    )
    assert main([str(qa), "--url", server, "--out", str(remote), "--answer-mode", "quote", "--quiet"]) == 0
    summary_l, records_l = _read(local)
    summary_r, records_r = _read(remote)
    assert summary_l["answer_mode"] == summary_r["answer_mode"] == "quote"
    for qid in records_l:
        assert records_l[qid]["prediction"] == records_r[qid]["prediction"]
    # The passage's own sentences: both right, both faithful, the model never ran.
    assert records_l["zh-3"]["prediction"] == "一、开放时间：周二至周日上午九点至晚上八点开放，每周一闭馆整理[1]。"
    assert summary_l["metrics"]["answer_accuracy"]["mean"] == 1.0
    assert summary_l["metrics"]["faithfulness"]["mean"] == 1.0
    assert records_l["en-2"]["usage"]["completion_tokens"] == 0
