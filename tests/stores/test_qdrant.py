"""The store contract on ``qdrant`` (local mode, the real qdrant-client), and the end-to-end ask
test with the vectors in Qdrant: a real ``python -m ingest`` and a real ``python -m api`` server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rag.stores.qdrant import close_local_clients
from tests.conftest import REPO
from tests.stores.contract import VectorStoreContract

pytest.importorskip("qdrant_client")


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    close_local_clients()


class TestQdrant(VectorStoreContract):
    """Qdrant changes its collection in place (``versioned = False``): the generation tests do not
    apply; tests/stores/test_ingest_backends.py checks how an ingest repairs it after a crash."""

    backend = "qdrant"

    @pytest.fixture(autouse=True, params=["in-place"])
    def segment_policy(self, request) -> str:
        return request.param


@pytest.mark.slow
def test_ask_through_the_api_with_the_vectors_in_qdrant(tmp_path):
    from tests.live_server import API_KEY, LONDON, PANDA_ZH, start_server, write_corpus

    docs, index_dir = tmp_path / "docs", tmp_path / "index"
    write_corpus(docs)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAG_VECTOR_STORE": "qdrant"}
    ingest = subprocess.run(
        [sys.executable, "-m", "ingest", str(docs), "--index-dir", str(index_dir), "--quiet", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    assert json.loads(ingest.stdout)["documents_total"] == 4
    assert (index_dir / "qdrant").is_dir() and not list(index_dir.glob("dense-*"))
    server = start_server(
        index_dir,
        docs,
        tmp_path / "server.log",
        env={"RAG_API_KEYS": API_KEY, "RAG_VECTOR_STORE": "qdrant", "RAG_MAX_NEW_TOKENS": "60"},
    )
    try:
        with server.client() as client:
            health = client.get("/health").json()
            assert health["index"]["dense_kind"] == "qdrant", health
            answer = client.post("/ask", json={"question": LONDON}).json()
            assert answer["answerable"] is True and answer["answer"] == "240 pounds [1]", answer
            assert answer["passages"][0]["source"] == "travel-policy.md"
            # Dense retrieval alone, through Qdrant, finds the passage too.
            zh = client.post("/ask", json={"question": PANDA_ZH}).json()
            assert zh["answerable"] is True and "熊猫基地.md" in [c["source"] for c in zh["citations"]], zh
            # An upload is ingested in the server's process, through its own Qdrant client, and a
            # delete takes it out again.
            text = "The Zorblax 9000 espresso machine must be descaled every 45 days.\n"
            upload = client.post("/documents", files=[("files", ("zorblax.txt", text.encode(), "text/plain"))])
            assert upload.status_code == 201, upload.text
            doc_id = upload.json()["documents"][0]["doc_id"]
            question = "How often must the Zorblax 9000 espresso machine be descaled?"
            found = client.post("/ask", json={"question": question}).json()
            assert found["passages"][0]["source"] == "uploads/zorblax.txt", found
            assert client.delete(f"/documents/{doc_id}").status_code == 200
            after = client.post("/ask", json={"question": question}).json()
            assert "uploads/zorblax.txt" not in [p["source"] for p in after["passages"]], after
    finally:
        server.stop()
