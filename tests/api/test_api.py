"""The HTTP API end to end: a real ``python -m api`` server over a real index, real models.

One server is started per test session (``tests/live_server.py``, the ``api_server`` fixture)
over a small folder of English and Chinese documents, with an API key, and reused by every test
here and by the chat-page test. Tests that change documents put them back as they were.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.live_server import (
    ALLOWED_ORIGIN,
    API_KEY,
    LONDON,
    MAX_UPLOAD_MB,
    PANDA_ZH,
    READ_ONLY_KEY,
    ROUTER,
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


def test_openai_client_with_a_wrong_key_gets_an_authentication_error(api_server):
    openai = pytest.importorskip("openai")
    wrong = openai.OpenAI(base_url=api_server.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert "API key is not valid" in str(caught.value)


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


# --- bad requests -----------------------------------------------------------------------------

BAD_ASKS = {
    "empty question": ({"question": ""}, "empty"),
    "blank question": ({"question": "   \n "}, "empty"),
    "question too long": ({"question": "x" * 2001}, "2000"),
    "top_k zero": ({"question": LONDON, "top_k": 0}, "between 1 and 50"),
    "top_k too big": ({"question": LONDON, "top_k": 51}, "between 1 and 50"),
    "top_k not a number": ({"question": LONDON, "top_k": "many"}, "whole number"),
    "question missing": ({"top_k": 3}, "'question' is required"),
    "question not a string": ({"question": 42}, "must be a string"),
    "unknown filter": ({"question": LONDON, "filters": {"author": "me"}}, "filters.author"),
    "bad history role": ({"question": LONDON, "history": [{"role": "system", "content": "x"}]}, "'user'"),
    "body not an object": ([LONDON], "JSON object"),
    "unknown answer mode": ({"question": LONDON, "answer_mode": "summary"}, "'generate' or 'quote'"),
}


@pytest.mark.parametrize("body, fragment", BAD_ASKS.values(), ids=BAD_ASKS.keys())
def test_bad_questions_get_422_with_one_sentence(client, body, fragment):
    response = client.post("/ask", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert_one_sentence(error)
    assert fragment in error


def test_malformed_json_gets_422_with_one_sentence(client):
    response = client.post("/ask", content=b'{"question": "What is', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert_one_sentence(body["error"])
    assert "not valid JSON" in body["error"]
    assert body["details"][0]["type"] == "json_invalid"


def test_bad_chat_completions_get_openai_shaped_422(client):
    for body, fragment in [
        ({"model": "rag-service", "messages": []}, "messages"),
        ({"messages": [{"role": "assistant", "content": "Hello"}]}, "last message"),
        ({"messages": [{"role": "user", "content": " "}]}, "empty"),
    ]:
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert_one_sentence(error["message"])
        assert fragment in error["message"]


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


# --- answering --------------------------------------------------------------------------------


@pytest.mark.slow
def test_ask_answers_with_a_citation_of_the_right_file(api_server, client):
    started = time.perf_counter()
    response = client.post("/ask", json={"question": LONDON})
    api_server.timings["ask_s"] = round(time.perf_counter() - started, 2)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answerable"] is True, answer["answer"]
    # The default answer is the short fact (London's limit, not Paris's in the same sentence),
    # cited, with where it stands in the passage and the sentence it was read from.
    assert answer["answer"] == "240 pounds [1]", answer
    span, evidence = answer["answer_span"], answer["evidence"]
    passage = answer["passages"][span["passage"] - 1]["text"]
    assert passage[span["start"] : span["end"]] == span["text"] == "240 pounds"
    assert evidence["text"] == "The nightly hotel limit is 240 pounds in London and 210 euros in Paris."
    assert passage[evidence["start"] : evidence["end"]] == evidence["text"]
    assert 0 < answer["confidence"] <= 1 and [c["check"] for c in answer["checks"]][0] == "confident"
    assert "travel-policy.md" in sources(answer), answer
    assert answer["passages"][0]["source"] == "travel-policy.md"
    assert answer["language"] == "en" and answer["query"] == LONDON
    for stage in ("retrieve", "read", "total"):
        assert stage in answer["timings_ms"], answer["timings_ms"]
    metrics = client.get("/metrics").text
    for stage in ("retrieve", "read", "total"):
        assert f'rag_answer_stage_seconds_count{{stage="{stage}"}}' in metrics, stage
    print(f"\n/ask took {api_server.timings['ask_s']} s; server timings {answer['timings_ms']}")


@pytest.mark.slow
def test_ask_answers_each_part_of_a_two_part_question_with_its_hops(client):
    question = "What are the nightly hotel limits in London and Paris respectively?"
    answer = client.post("/ask", json={"question": question}).json()
    assert answer["answer"] == "London: 240 pounds [1]; Paris: 210 euros [1]", answer["answer"]
    hops = answer["reasoning"]
    assert [h["kind"] for h in hops] == ["aggregation", "aggregation"]
    assert [h["finding"] for h in hops] == ["240 pounds", "210 euros"]
    assert all(answer["passages"][h["citation"] - 1]["source"] == "travel-policy.md" for h in hops)
    assert answer["checks"][0]["check"] == "reasoning"
    # Streamed: each hop as it ends, then the answer.
    with client.stream("POST", "/ask", json={"question": question, "stream": True}) as response:
        events = list(read_events(response))
    kinds = [event for event, _ in events]
    assert kinds[:2] == ["hop", "hop"] and kinds[-1] == "done", kinds
    assert events[-1][1]["answer"]["answer"] == answer["answer"]
    # A single-hop question takes no hop.
    assert client.post("/ask", json={"question": LONDON}).json()["reasoning"] == []


@pytest.mark.slow
def test_reasoning_works_with_an_openai_compatible_generator(api_server):
    """The hops read through a generator that is a second instance of this service, over its
    /v1 endpoint (a model server without log-probabilities: the reader aligns what it writes)."""
    from rag.answering.pipeline import AnswerPipeline
    from rag.config import Settings

    settings = Settings.load(
        env={},
        overrides={
            "index_dir": api_server.index_dir,
            "device": "cpu",
            "generator": "openai",
            "openai_base_url": api_server.url + "/v1",
            "openai_model": "rag",
            "openai_api_key": API_KEY,
            "openai_timeout": 300,
        },
    )
    pipeline = AnswerPipeline(settings)
    answer = pipeline.answer("What are the nightly hotel limits in London and Paris respectively?")
    # Each hop was read through the other server (its model name), and each part cites the policy.
    # That "model" answers a reader's prompt with a whole clause of the passage (it is a RAG
    # service, not a language model), so the findings are longer than a real model's would be.
    assert answer.model == "rag" and len(answer.reasoning) == 2, answer
    london, paris = answer.answer.split("; ")
    assert london.startswith("London: ") and "240 pounds" in london and london.endswith("[1]"), answer.answer
    assert paris.startswith("Paris: ") and "210 euros" in paris and paris.endswith("[1]"), answer.answer
    assert all(answer.passages[h.citation - 1].chunk.source == "travel-policy.md" for h in answer.reasoning)


@pytest.mark.slow
def test_ask_in_generate_mode_writes_the_answer(client):
    response = client.post("/ask", json={"question": LONDON, "answer_mode": "generate"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answerable"] is True and "travel-policy.md" in sources(answer), answer
    assert answer["timings_ms"]["generate"] > 0 and answer["usage"]["completion_tokens"] > 0
    assert answer["answer_span"] is None and [c["check"] for c in answer["checks"]][:3] == [
        "repeats",
        "markers",
        "model_refused",
    ]


@pytest.mark.slow
def test_short_answers_and_refusals_through_the_server(client):
    """What a person would check, in both languages: the fact asked for, and no answer where
    the documents have none."""
    router = client.post("/ask", json={"question": ROUTER}).json()
    assert router["answer_span"] and "12 seconds" in router["answer_span"]["text"], router["answer"]
    assert router["citations"][0]["source"] == "router-faq.txt"
    panda = client.post("/ask", json={"question": PANDA_ZH}).json()
    assert "七点半" in panda["answer"] and "五点" not in panda["answer"], panda["answer"]
    assert panda["citations"][0]["source"] == "熊猫基地.md"
    ticket = client.post("/ask", json={"question": "熊猫基地的门票多少钱？"}).json()
    assert "五十八元" in ticket["answer"], ticket["answer"]
    for question in ("Which planet has the most moons in the solar system?", "长城有多长？"):
        refused = client.post("/ask", json={"question": question}).json()
        assert refused["answerable"] is False and refused["citations"] == [], refused["answer"]


def test_ask_in_quote_mode_answers_with_the_document_sentence(client):
    response = client.post("/ask", json={"question": LONDON, "answer_mode": "quote"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["answer"] == "The nightly hotel limit is 240 pounds in London and 210 euros in Paris [1]."
    assert answer["model"] == "quote" and answer["usage"]["completion_tokens"] == 0
    assert [c["source"] for c in answer["citations"]] == ["travel-policy.md"]


@pytest.mark.slow
def test_ask_streams_tokens_then_the_final_answer_and_health_answers_meanwhile(api_server, client):
    events: list[tuple[str, dict[str, Any]]] = []
    health_during: list[float] = []
    with client.stream(
        "POST", "/ask", json={"question": ROUTER, "stream": True, "answer_mode": "generate"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for event, data in read_events(response):
            events.append((event, data))
            if event == "token" and not health_during:
                started = time.perf_counter()
                assert httpx.get(api_server.url + "/health", timeout=10).status_code == 200
                health_during.append(time.perf_counter() - started)
    kinds = [e for e, _ in events]
    assert kinds[0] == "retrieval" and kinds[-1] == "done", kinds
    assert kinds.count("token") >= 2, kinds
    assert events[0][1]["passages"][0]["source"] == "router-faq.txt"
    answer = events[-1][1]["answer"]
    assert "router-faq.txt" in sources(answer), answer
    timings = answer["timings_ms"]
    assert 0 < timings["retrieve"] < timings["first_token"] < timings["total"], timings
    assert health_during and health_during[0] < 2.0, health_during
    # The server's own time to first token is a stage in /metrics.
    assert 'rag_answer_stage_seconds_count{stage="first_token"}' in client.get("/metrics").text


@pytest.mark.slow
def test_chinese_question_retrieves_the_chinese_document(client):
    with client.stream("POST", "/ask", json={"question": PANDA_ZH, "stream": True, "top_k": 2}) as response:
        events = list(read_events(response))
    assert events[0][0] == "retrieval"
    assert events[0][1]["passages"][0]["source"] == "熊猫基地.md"
    done = events[-1]
    assert done[0] == "done", events[-3:]
    assert done[1]["answer"]["language"] == "zh"
    assert set(sources(done[1]["answer"])) <= {"熊猫基地.md"}
    assert "七点半" in done[1]["answer"]["answer"], done[1]["answer"]["answer"]
    assert "".join(data["text"] for event, data in events if event == "token") == done[1]["answer"]["answer"]


@pytest.mark.slow
def test_follow_up_is_rewritten_into_a_standalone_query(client):
    history = [
        {"role": "user", "content": LONDON},
        {"role": "assistant", "content": "The nightly hotel limit in London is 240 pounds [1]."},
    ]
    response = client.post("/ask", json={"question": "And in Paris?", "history": history})
    assert response.status_code == 200, response.text
    answer = response.json()
    query = answer["query"].lower()
    assert answer["query"] != "And in Paris?"
    assert "paris" in query and ("hotel" in query or "limit" in query), answer["query"]
    assert answer["passages"][0]["source"] == "travel-policy.md"


@pytest.mark.slow
def test_unrelated_question_is_refused_without_citations(client):
    response = client.post("/ask", json={"question": "Which planet has the most moons in the solar system?"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["answerable"] is False, answer["answer"]
    assert answer["citations"] == []


def _concurrent_asks(client: httpx.Client, questions: list[str]) -> list[httpx.Response]:
    results: list[httpx.Response | None] = [None] * len(questions)

    def run(i: int, q: str) -> None:
        results[i] = client.post("/ask", json={"question": q, "top_k": 2})

    threads = [threading.Thread(target=run, args=(i, q)) for i, q in enumerate(questions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None]


@pytest.mark.slow
def test_concurrent_questions_are_all_answered(client):
    responses = _concurrent_asks(client, [ROUTER, "How often are the fire extinguishers inspected?"])
    assert [r.status_code for r in responses] == [200, 200]
    first, second = (r.json() for r in responses)
    assert first["passages"][0]["source"] == "router-faq.txt"
    assert second["passages"][0]["source"] == "safety-manual.pdf"
    assert second["passages"][0]["page"] in (1, 2)  # PDF passages say which page they start on


# --- the OpenAI protocol ----------------------------------------------------------------------


@pytest.fixture
def openai_client(api_server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=api_server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=300)


def test_openai_models_lists_the_service(openai_client):
    assert [m.id for m in openai_client.models.list()] == ["rag-service"]


def test_openai_chat_completion_can_quote(openai_client):
    completion = openai_client.chat.completions.create(
        model="rag-service", messages=[{"role": "user", "content": LONDON}], extra_body={"answer_mode": "quote"}
    )
    content = completion.choices[0].message.content
    assert content.startswith("The nightly hotel limit is 240 pounds in London and 210 euros in Paris [1]."), content


@pytest.mark.slow
def test_openai_chat_completion_answers_with_citations(openai_client):
    completion = openai_client.chat.completions.create(
        model="rag-service", messages=[{"role": "user", "content": ROUTER}]
    )
    content = completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    # The message opens with the short answer; its sentence is quoted under the source.
    assert content.split("\n")[0].startswith("12 seconds"), content
    assert "> Hold the RESET button on the back for 12 seconds" in content, content
    assert "Sources:" in content and "router-faq.txt" in content, content
    extra = completion.model_extra
    assert "router-faq.txt" in [c["source"] for c in extra["citations"]]
    assert extra["rag"]["answerable"] is True
    assert completion.usage.completion_tokens > 0


@pytest.mark.slow
def test_openai_streaming_uses_history_and_ends_with_citations(openai_client):
    stream = openai_client.chat.completions.create(
        model="rag-service",
        stream=True,
        stream_options={"include_usage": True},
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": LONDON},
            {"role": "assistant", "content": "It is 240 pounds [1].\n\nSources:\n[1] travel-policy.md"},
            {"role": "user", "content": "And in Paris?"},
        ],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    extra = finals[0].model_extra
    assert "paris" in extra["rag"]["query"].lower(), extra["rag"]
    assert text.strip(), chunks
    if extra["rag"]["answerable"]:
        assert [c["source"] for c in extra["citations"]] == ["travel-policy.md"] * len(extra["citations"])
        assert "Sources:" in text
    usage = [c for c in chunks if not c.choices and c.usage]
    assert usage and usage[0].usage.total_tokens > 0


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


def test_metrics_count_requests_and_errors(client):
    client.post("/ask", json={"question": ""})
    text = client.get("/metrics").text
    assert 'rag_http_requests_total{endpoint="/ask",method="POST",status="422"}' in text
    assert 'rag_errors_total{code="empty_question",endpoint="/ask"}' in text
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
