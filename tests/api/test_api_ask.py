"""``POST /ask`` end to end: bad questions, answers with citations in each answer mode, two-part
questions, streaming, follow-ups, refusals and concurrent questions, over real models.

The session's live ``python -m api`` server (``tests/live_server.py``, the ``api_server`` fixture)
over a small folder of English and Chinese documents, with an API key, shared with the other
API test modules and the chat-page test. Tests that change documents put them back as they were.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.live_server import API_KEY, LONDON, PANDA_ZH, ROUTER, assert_one_sentence, read_events, sources

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
    assert 0 < answer["confidence"] <= 1 and [c["check"] for c in answer["checks"]][:2] == ["table_cell", "confident"]
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
