"""The HTTP API's doors and its documents end to end: health, API keys, CORS and hosts, unknown
paths, listing, uploading and deleting documents, metrics, and the console without an index.

The session's live ``python -m api`` server (``tests/live_server.py``, the ``api_server`` fixture)
over a small folder of English and Chinese documents, with an API key, shared with the other
API test modules and the chat-page test. Tests that change documents put them back as they were.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO
from tests.live_server import (
    ALLOWED_ORIGIN,
    LONDON,
    MAX_UPLOAD_MB,
    READ_ONLY_KEY,
    assert_one_sentence,
    read_events,
    sources,
)

# --- health, auth, CORS ---------------------------------------------------------------------


def test_health_is_open_and_reports_the_index(api_server):
    response = httpx.get(api_server.url + "/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["index"]["documents"] == 4
    assert body["index"]["chunks"] >= 4
    assert body["answer_mode"] == "read"


@pytest.mark.parametrize("key, code", [(None, "missing_api_key"), ("wrong-key", "invalid_api_key")])
def test_endpoints_need_the_api_key(api_server, key, code):
    with api_server.client(key=key) as c:
        for method, path, body in [
            ("POST", "/ask", {"question": LONDON}),
            ("GET", "/documents", None),
            ("GET", "/metrics", None),
            ("GET", "/v1/models", None),
            ("DELETE", "/documents/0123456789abcdef", None),
        ]:
            response = c.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.text)
            assert (
                response.json()["code"] == code
                if not path.startswith("/v1/")
                else response.json()["error"]["code"] == code
            )
            assert response.headers["www-authenticate"].startswith("Bearer")
        message = c.get("/documents").json()["error"]
        assert_one_sentence(message)
        assert "Authorization: Bearer" in message or "not valid" in message


def test_the_right_key_opens_and_the_page_and_health_stay_open(api_server, client):
    assert client.get("/documents").status_code == 200
    assert client.get("/v1/models").status_code == 200
    with api_server.client(key=None) as anonymous:
        assert anonymous.get("/health").status_code == 200
        page = anonymous.get("/")
        assert page.status_code == 200 and "<textarea" in page.text
        assert anonymous.get("/static/app.js").status_code == 200
        assert anonymous.get("/static/style.css").status_code == 200


def test_with_a_key_cross_origin_changes_and_foreign_hosts_are_still_refused(api_server, client):
    doc_id = client.get("/documents").json()["documents"][0]["doc_id"]
    cross = client.delete(f"/documents/{doc_id}", headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json()["code"] == "cross_origin"
    planted = client.post(
        "/documents",
        headers={"Origin": "http://evil.example"},
        files={"files": ("planted.md", b"# Planted\n\nPWNED\n")},
    )
    assert planted.status_code == 403
    rebound = client.get("/documents", headers={"Host": "rebind.evil.example"})
    assert rebound.status_code == 400 and rebound.json()["code"] == "host_not_allowed"
    trusted = client.post("/ask", headers={"Origin": ALLOWED_ORIGIN}, json={"question": LONDON, "answer_mode": "quote"})
    assert trusted.status_code == 200  # an origin in cors_origins may ask
    paths = [d["path"] for d in client.get("/documents").json()["documents"]]
    assert doc_id in [d["doc_id"] for d in client.get("/documents").json()["documents"]]
    assert "uploads/planted.md" not in paths


def test_a_read_only_key_may_ask_and_list_but_not_change_documents(api_server):
    with api_server.client(key=READ_ONLY_KEY) as reader:
        listing = reader.get("/documents")
        assert listing.status_code == 200
        doc_id = listing.json()["documents"][0]["doc_id"]
        for response in (
            reader.delete(f"/documents/{doc_id}"),
            reader.post("/documents", files={"files": ("note.md", b"# Note\n\nA note.\n")}),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["code"] == "read_only_key"
            assert "api_keys" in response.json()["error"]
        answer = reader.post("/ask", json={"question": LONDON, "answer_mode": "quote"})
        assert answer.status_code == 200 and "240 pounds" in answer.json()["answer"]
    assert doc_id in [d["doc_id"] for d in api_server.client().get("/documents").json()["documents"]]


def test_cors_preflight_allows_only_the_configured_origin(api_server):
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            api_server.url + "/ask",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
            timeout=10,
        )

    allowed = preflight(ALLOWED_ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in preflight("http://evil.example.com").headers


def test_unknown_paths_and_methods_get_one_sentence(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "/nowhere" in missing.json()["error"]
    wrong_method = client.put("/ask", json={})
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert_one_sentence(wrong_method.json()["error"])
    both = client.put("/documents")  # GET and POST live on two routes: Allow names both
    assert both.status_code == 405 and both.headers["allow"] == "GET, POST"
    slash = client.delete("/documents/")  # a 404 that says so, not a redirect to follow
    assert slash.status_code == 404 and "location" not in slash.headers


# --- documents ----------------------------------------------------------------------------------

ZORBLAX = "# Zorblax 9000 care guide\n\nThe Zorblax 9000 espresso machine must be descaled every 40 days.\n"


def test_documents_lists_the_manifest(client):
    body = client.get("/documents").json()
    paths = sorted(d["path"] for d in body["documents"])
    assert [p for p in paths if not p.startswith("uploads/")] == sorted(
        ["travel-policy.md", "router-faq.txt", "熊猫基地.md", "safety-manual.pdf"]
    )
    first = body["documents"][0]
    assert {"doc_id", "path", "size", "chunks", "ingested_at", "uploaded"} <= set(first)
    assert body["docs_root"]


@pytest.mark.slow
def test_upload_errors(client):
    unsupported = client.post("/documents", files={"files": ("tool.exe", b"MZ\x90\x00", "application/octet-stream")})
    assert unsupported.status_code == 415
    assert_one_sentence(unsupported.json()["error"])
    too_big = client.post("/documents", files={"files": ("big.txt", b"a" * (MAX_UPLOAD_MB * 1048576 + 200_000))})
    assert too_big.status_code == 413
    assert f"{MAX_UPLOAD_MB} MB" in too_big.json()["error"]
    not_multipart = client.post("/documents", json={"files": []})
    assert not_multipart.status_code == 415
    boundary = "rag-test-boundary"
    no_files = client.post(
        "/documents",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=(
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--{boundary}--\r\n'
        ).encode(),
    )
    assert no_files.status_code == 422 and no_files.json()["code"] == "unknown_field"
    assert "'note' is not accepted" in no_files.json()["error"]
    empty = client.post(
        "/documents",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=f"--{boundary}--\r\n".encode(),
    )
    assert empty.status_code == 422 and "No file" in empty.json()["error"], empty.text
    unreadable = client.post("/documents", files={"files": ("broken.pdf", b"%PDF-1.4 this is not a pdf")})
    assert unreadable.status_code == 422, unreadable.text
    assert "broken.pdf" in unreadable.json()["error"]
    assert not any(d["path"] == "uploads/broken.pdf" for d in client.get("/documents").json()["documents"])
    unknown = client.delete("/documents/0123456789abcdef")
    assert unknown.status_code == 404 and "GET /documents" in unknown.json()["error"]


@pytest.mark.slow
def test_upload_then_ask_then_delete(api_server, client):
    upload = client.post("/documents", files=[("files", ("zorblax.md", ZORBLAX.encode(), "text/markdown"))])
    assert upload.status_code == 201, upload.text
    added = upload.json()["documents"]
    assert [d["path"] for d in added] == ["uploads/zorblax.md"] and added[0]["uploaded"] is True
    doc_id = added[0]["doc_id"]
    stored = api_server.docs_root / "uploads" / "zorblax.md"
    try:
        assert stored.read_text() == ZORBLAX
        assert doc_id in [d["doc_id"] for d in client.get("/documents").json()["documents"]]

        answer = client.post(
            "/ask", json={"question": "How often must the Zorblax 9000 espresso machine be descaled?"}
        ).json()
        assert answer["passages"][0]["source"] == "uploads/zorblax.md"
        assert "uploads/zorblax.md" in sources(answer), answer

        deleted = client.delete(f"/documents/{doc_id}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"]["path"] == "uploads/zorblax.md"
        assert not stored.exists()
        assert doc_id not in [d["doc_id"] for d in client.get("/documents").json()["documents"]]
        # Retrieval no longer sees it: read the first event of a stream and hang up.
        with client.stream("POST", "/ask", json={"question": "Zorblax 9000 descaling", "stream": True}) as response:
            event, data = next(read_events(response))
        assert event == "retrieval"
        assert "uploads/zorblax.md" not in [p["source"] for p in data["passages"]]
        assert client.get("/health").json()["index"]["documents"] == 4
    finally:
        if stored.exists():
            client.delete(f"/documents/{doc_id}")


# --- metrics --------------------------------------------------------------------------------------


def _metric(text: str, line_start: str) -> float:
    """The value of the sample whose line starts with ``line_start`` (0 when there is none yet)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start + " ")]
    return values[0] if values else 0.0


def test_metrics_count_requests_and_errors(client):
    # The server is shared by the session: count what these two requests add, by error code.
    rejected = 'rag_http_requests_total{endpoint="/ask",method="POST",status="422"}'
    blank = 'rag_errors_total{code="empty_question",endpoint="/ask"}'
    invalid = 'rag_errors_total{code="invalid_request",endpoint="/ask"}'
    before = client.get("/metrics").text
    assert client.post("/ask", json={"question": "   "}).json()["code"] == "empty_question"
    assert client.post("/ask", json={"question": ""}).json()["code"] == "invalid_request"
    text = client.get("/metrics").text
    assert _metric(text, rejected) == _metric(before, rejected) + 2
    assert _metric(text, blank) == _metric(before, blank) + 1
    assert _metric(text, invalid) == _metric(before, invalid) + 1
    assert 'rag_http_request_duration_seconds_bucket{endpoint="/ask",le="0.5"}' in text
    assert "rag_ready 1.0" in text


# --- the console -------------------------------------------------------------------------------------


def test_console_ask_without_an_index_says_how_to_build_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "api", "--index-dir", str(tmp_path / "none"), "--ask", "Hello?"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "python -m ingest" in result.stderr and "Traceback" not in result.stderr
