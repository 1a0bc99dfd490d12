"""The OpenAI-compatible ``/v1`` endpoint end to end, through the ``openai`` client: models, chat
completions (quoted, cited, streamed with history), a wrong key and bad requests.

The session's live ``python -m api`` server (``tests/live_server.py``, the ``api_server`` fixture)
over a small folder of English and Chinese documents, with an API key, shared with the other
API test modules and the chat-page test. Tests that change documents put them back as they were.
"""

from __future__ import annotations

import pytest

from tests.live_server import API_KEY, LONDON, ROUTER, assert_one_sentence


def test_openai_client_with_a_wrong_key_gets_an_authentication_error(api_server):
    openai = pytest.importorskip("openai")
    wrong = openai.OpenAI(base_url=api_server.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert "API key is not valid" in str(caught.value)


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
