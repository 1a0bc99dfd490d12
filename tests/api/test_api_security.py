"""The server as a hostile web page, a careless client and a crowd would meet it.

A ``python -m api`` with NO keys (the default) over a folder of the user's own files, the
smallest real generator (SmolLM2-135M) and room for one answer at a time:

* cross-origin uploads and deletes, and a foreign ``Host`` (DNS rebinding), are refused, and the
  user's files stay as they were; the chat page's own (same-origin) requests still work;
* a delete takes a user's document out of the index but never deletes the user's file, and a
  later ``python -m ingest`` of the folder keeps it out until ``--include-removed``;
* answers show no absolute paths;
* invalid Unicode, control characters, oversized bodies (with or without a length) and huge
  headers get a 4xx, and the connection they came on still answers;
* past ``max_pending_answers``, a question is refused at once with 503 and ``Retry-After``.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import REPO
from tests.docfactory import make_md, make_txt
from tests.live_server import LiveServer, assert_one_sentence, start_server

pytestmark = pytest.mark.slow

EVIL = "http://evil.example"
KETTLE = "When does the Brewmaster kettle switch itself off?"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory) -> LiveServer:
    base = tmp_path_factory.mktemp("api-open")
    docs, index_dir = base / "docs", base / "index"
    make_md(
        docs / "kettle.md", "Kettle guide", ["The Brewmaster kettle switches itself off after 90 seconds of boiling."]
    )
    make_txt(docs / "lamp.txt", "The Lumen desk lamp has three brightness levels and a USB port.\n")
    make_txt(docs / "notes.txt", "The team lunch is on Fridays at noon in the garden room.\n")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ingest = subprocess.run(
        [sys.executable, "-m", "ingest", str(docs), "--index-dir", str(index_dir), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    server = start_server(
        index_dir,
        docs,
        base / "server.log",
        env={
            "RAG_API_KEYS": "",
            "RAG_READ_ONLY_KEYS": "",
            "RAG_GENERATOR_MODEL": "SmolLM2-135M-Instruct",
            "RAG_MAX_NEW_TOKENS": "48",
            "RAG_MAX_PENDING_ANSWERS": "1",
            "RAG_MAX_BODY_KB": "64",
        },
    )
    yield server
    server.stop()


def documents(server: LiveServer) -> dict[str, str]:
    with server.client(key=None) as client:
        response = client.get("/documents")
    assert response.status_code == 200, response.text
    return {d["path"]: d["doc_id"] for d in response.json()["documents"]}


def test_the_server_says_at_start_that_anyone_here_may_change_the_index(open_server):
    log = open_server.log_path.read_text(errors="replace")
    assert "No API keys are set: anyone on this machine can ask questions and add or delete documents" in log


def test_without_keys_the_server_refuses_to_listen_beyond_loopback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "api", "--index-dir", str(tmp_path / "index"), "--host", "0.0.0.0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "RAG_API_KEYS": ""},
    )
    assert run.returncode == 2
    message = run.stderr.strip().splitlines()[-1]
    assert message.startswith("error: Refusing to listen on 0.0.0.0 without API keys") and "--allow-no-keys" in message


def test_cross_origin_changes_are_refused_and_nothing_changes(open_server):
    before = documents(open_server)
    kettle = open_server.docs_root / "kettle.md"
    with open_server.client(key=None) as client:
        refusals = [
            client.delete(f"/documents/{before['kettle.md']}", headers={"Origin": EVIL}),
            client.delete(f"/documents/{before['kettle.md']}", headers={"Origin": "null"}),
            client.delete(f"/documents/{before['kettle.md']}", headers={"Sec-Fetch-Site": "cross-site"}),
            # A "simple" request a page may send without a preflight: multipart, and text/plain.
            client.post(
                "/documents", headers={"Origin": EVIL}, files={"files": ("planted.md", b"# Planted\n\nPWNED\n")}
            ),
            client.post(
                "/ask", headers={"Origin": EVIL, "Content-Type": "text/plain"}, content=json.dumps({"question": KETTLE})
            ),
        ]
    for response in refusals:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "cross_origin"
        assert_one_sentence(response.json()["error"])
    assert documents(open_server) == before
    assert kettle.is_file() and not (open_server.docs_root / "uploads" / "planted.md").exists()


def test_a_foreign_host_header_is_refused_on_every_endpoint(open_server):
    with open_server.client(key=None) as client:
        for method, path in [("GET", "/health"), ("GET", "/documents"), ("POST", "/ask"), ("GET", "/")]:
            response = client.request(
                method,
                path,
                headers={"Host": "rebind.evil.example"},
                json={"question": KETTLE} if method == "POST" else None,
            )
            assert response.status_code == 400, (path, response.text)
            assert response.json()["code"] == "host_not_allowed"
        for host in (f"localhost:{urlsplit(open_server.url).port}", f"127.0.0.1:{urlsplit(open_server.url).port}"):
            assert client.get("/health", headers={"Host": host}).status_code == 200


def test_same_origin_requests_of_the_chat_page_still_work(open_server):
    with open_server.client(key=None) as client:
        upload = client.post(
            "/documents",
            headers={"Origin": open_server.url, "Sec-Fetch-Site": "same-origin"},
            files={"files": ("fern.md", b"# Fern\n\nThe office fern is watered every Tuesday.\n")},
        )
        assert upload.status_code == 201, upload.text
        added = upload.json()["documents"][0]
        assert added["path"] == "uploads/fern.md" and added["uploaded"]
        deleted = client.delete(f"/documents/{added['doc_id']}", headers={"Origin": open_server.url})
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["file_deleted"] is True
    assert not (open_server.docs_root / "uploads" / "fern.md").exists()  # the service's own copy goes
    assert "uploads/fern.md" not in documents(open_server)


def test_deleting_a_users_document_keeps_the_file_and_later_ingests_leave_it_out(open_server):
    lamp = open_server.docs_root / "lamp.txt"
    content = lamp.read_bytes()
    with open_server.client(key=None) as client:
        deleted = client.delete(f"/documents/{documents(open_server)['lamp.txt']}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["file_deleted"] is False
        assert "lamp.txt" in client.get("/documents").json()["removed"]
    assert lamp.read_bytes() == content  # the user's file is untouched
    assert "lamp.txt" not in documents(open_server)

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest",
            str(open_server.docs_root),
            "--index-dir",
            str(open_server.index_dir),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    skipped = {item["path"]: item["reason"] for item in json.loads(again.stdout)["skipped"]}
    assert "removed from the index through the API" in skipped["lamp.txt"]
    assert "lamp.txt" not in documents(open_server)

    back = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest",
            str(open_server.docs_root),
            "--index-dir",
            str(open_server.index_dir),
            "--include-removed",
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert back.returncode == 0, back.stderr[-2000:]
    assert "lamp.txt" in documents(open_server)


def test_answers_without_keys_show_no_absolute_paths(open_server):
    secret = str(open_server.index_dir.parent)
    with open_server.client(key=None) as client:
        bodies = [client.get("/health").text, client.get("/documents").text]
        upload = client.post("/documents", files={"files": ("path-check.md", b"# Path check\n\nNothing here.\n")})
        bodies.append(upload.text)
        bodies.append(client.delete(f"/documents/{upload.json()['documents'][0]['doc_id']}").text)
    for body in bodies:
        assert secret not in body, body
    listing = json.loads(bodies[1])
    assert listing["docs_root"] == "docs" and listing["uploads_dir"] == str(Path("docs") / "uploads")


def raw_exchange(server: LiveServer, requests: list[tuple[str, str, bytes, dict[str, str]]]) -> list[tuple[int, dict]]:
    """Send ``requests`` one after another on ONE keep-alive connection; (status, JSON body) each."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    out = []
    try:
        for method, path, body, headers in requests:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            out.append((response.status, json.loads(response.read() or b"{}")))
    finally:
        connection.close()
    return out


def test_bad_text_gets_422_and_the_connection_keeps_serving(open_server):
    json_type = {"Content-Type": "application/json"}
    chat = b'{"messages": [{"role": "user", "content": "\\ud800 kettle"}]}'
    answers = raw_exchange(
        open_server,
        [
            ("POST", "/ask", b'{"question": "\\ud800abc"}', json_type),
            ("POST", "/v1/chat/completions", chat, json_type),
            ("POST", "/ask", b'{"question": "kettle\\u0000off"}', json_type),
            ("POST", "/ask", b'{"question": "\xff\xfe not utf-8"}', json_type),
            ("GET", "/health", b"", {}),
        ],
    )
    statuses = [status for status, _ in answers]
    assert statuses == [422, 422, 422, 400, 200], answers
    assert "lone surrogate" in answers[0][1]["error"] and "lone surrogate" in answers[1][1]["error"]["message"]
    assert "control character" in answers[2][1]["error"]
    assert answers[3][1]["error"] == "The request body could not be read; send JSON encoded as UTF-8."


def test_oversized_bodies_and_headers_get_4xx(open_server):
    big = json.dumps({"question": "x" * 100_000}).encode()
    with open_server.client(key=None) as client:
        declared = client.post("/ask", content=big, headers={"Content-Type": "application/json"})
        chunked = client.post(
            "/ask", content=iter([big[:50_000], big[50_000:]]), headers={"Content-Type": "application/json"}
        )
        many = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}] * 1000})
        long_system = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "system", "content": "s" * 30_000}, {"role": "user", "content": KETTLE}]},
        )
    assert declared.status_code == 413 and declared.json()["code"] == "body_too_large"
    assert chunked.status_code == 413 and chunked.json()["code"] == "body_too_large"
    assert many.status_code == 422 and "at most" in many.json()["error"]["message"]
    assert long_system.status_code == 422 and long_system.json()["error"]["code"] == "messages_too_long"
    parts = urlsplit(open_server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", "/health", headers={"X-Padding": "p" * 200_000})
        assert 400 <= connection.getresponse().status < 500
    finally:
        connection.close()
    assert httpx.get(open_server.url + "/health", timeout=30).status_code == 200


def test_past_the_answer_queue_a_question_is_refused_at_once_with_retry_after(open_server):
    results: list[tuple[int, dict[str, str], str]] = []

    def ask() -> None:
        with httpx.Client(base_url=open_server.url, timeout=120) as client:
            response = client.post("/ask", json={"question": KETTLE})
        results.append((response.status_code, dict(response.headers), response.text))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    statuses = sorted(status for status, *_ in results)
    assert len(results) == 5 and 200 in statuses and 503 in statuses, results
    for status, headers, text in results:
        assert status in (200, 503), text
        if status == 503:
            assert json.loads(text)["code"] == "overloaded" and int(headers["retry-after"]) >= 1
        else:
            assert "90" in json.loads(text)["answer"]
