"""The server when things are missing or break: no index yet, then a generator that fails.

A second ``python -m api`` starts over an empty index folder, with the OpenAI-compatible
generator pointed at a port nobody listens on (so only the embedder loads, and every generation
fails). It must say how to build an index, build one from an upload without a restart, turn a
generator failure into a 502 with one sentence, and keep serving.
"""

from __future__ import annotations

import time

import pytest

from tests.live_server import LiveServer, assert_one_sentence, free_port, read_events, start_server

pytestmark = pytest.mark.slow

GUIDE = "# Kettle guide\n\nThe Brewmaster kettle switches itself off after 90 seconds of boiling.\n"


@pytest.fixture(scope="module")
def broken_server(tmp_path_factory) -> LiveServer:
    base = tmp_path_factory.mktemp("api-broken")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    server = start_server(
        base / "index",
        None,
        base / "server.log",
        wait_for="no_index",
        env={
            "RAG_GENERATOR": "openai",
            "RAG_OPENAI_BASE_URL": dead,
            "RAG_OPENAI_MODEL": "nobody",
            "RAG_OPENAI_TIMEOUT": "5",
            "RAG_API_KEYS": "",
        },
    )
    yield server
    server.stop()


def test_without_an_index_the_server_says_how_to_build_one(broken_server):
    with broken_server.client(key=None) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "no_index"
        ask = client.post("/ask", json={"question": "How long does the kettle boil?"})
        assert ask.status_code == 503
        error = ask.json()["error"]
        assert_one_sentence(error)
        assert "python -m ingest" in error and "--index-dir" in error
        assert client.get("/documents").json()["documents"] == []


def test_an_upload_builds_the_index_and_a_failing_generator_gives_502(broken_server):
    with broken_server.client(key=None) as client:
        upload = client.post("/documents", files={"files": ("kettle.md", GUIDE.encode())})
        assert upload.status_code == 201, upload.text
        # With no docs_root set or recorded, a new index's documents live beside the index folder;
        # a server without keys names it without its absolute path.
        assert upload.json()["docs_root"] == "documents"
        assert (broken_server.docs_root / "uploads" / "kettle.md").is_file()

        deadline = time.time() + 120
        while client.get("/health").status_code != 200 and time.time() < deadline:
            time.sleep(0.5)
        assert client.get("/health").json()["index"]["documents"] == 1

        question = {"question": "When does the Brewmaster kettle switch itself off?"}
        failed = client.post("/ask", json=question)
        assert failed.status_code == 502, failed.text
        assert failed.json()["code"] == "generation_failed"
        assert_one_sentence(failed.json()["error"])

        with client.stream("POST", "/ask", json={**question, "stream": True}) as response:
            assert response.status_code == 200
            events = list(read_events(response))
        assert events[0][0] == "retrieval" and events[0][1]["passages"][0]["source"] == "uploads/kettle.md"
        assert events[-1][0] == "error" and events[-1][1]["code"] == "generation_failed"

        chat = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": question["question"]}]}
        )
        assert chat.status_code == 502 and chat.json()["error"]["type"] == "api_error"

        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"stream": True, "messages": [{"role": "user", "content": question["question"]}]},
        ) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
        assert '"error"' in lines[-2] and lines[-1] == "data: [DONE]"

        # Still up and ready, and the failures are counted.
        assert client.get("/health").status_code == 200
        metrics = client.get("/metrics").text
        assert 'rag_errors_total{code="generation_failed",endpoint="/ask"} 2.0' in metrics


def test_deleting_the_last_document_is_refused(broken_server):
    with broken_server.client(key=None) as client:
        [document] = client.get("/documents").json()["documents"]
        refused = client.delete(f"/documents/{document['doc_id']}")
        assert refused.status_code == 409
        assert "last document" in refused.json()["error"]
        assert (broken_server.docs_root / document["path"]).is_file()
