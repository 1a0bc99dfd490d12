"""The OpenAI chat-completions protocol, so any OpenAI client or chat UI can ask the documents.

The last user message is the question; earlier user and assistant messages are the history a
follow-up is rewritten with; system messages are ignored (the service has its own grounded
prompt). Sampling parameters are accepted and ignored. The message opens with the answer (in
the default mode, the short answer). Citations come back three ways: a "Sources:" list
appended to the answer text (so plain chat UIs show them; a short answer's evidence sentence is
quoted under its source), and a ``citations`` list plus a ``rag`` object (query, answerable,
timings, the span, the evidence and the checks) on the response, or on the final chunk of a
stream.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.admission import admitted_pipeline
from api.context import ApiContext, get_context
from api.errors import (
    ANSWER_STATUSES,
    COMMON_STATUSES,
    ApiError,
    OpenAIErrorBody,
    api_error_from,
    error_body,
    error_responses,
)
from api.schemas import ChatCompletionRequest, ChatMessage, check_messages_size, check_question
from api.sources import sources_block, strip_sources
from api.streaming import SSE_HEADERS, sse, start_in_thread
from rag.errors import GenerationError

log = logging.getLogger("api")
router = APIRouter(
    prefix="/v1", tags=["openai"], responses=error_responses({**COMMON_STATUSES, **ANSWER_STATUSES}, OpenAIErrorBody)
)

MODEL_ID = "rag-service"


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (last user message) and the history before it."""
    turns = [(m.role, m.text()) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user":
        raise ApiError(422, "The last message must be a user message holding the question.", "no_question")
    history = [{"role": role, "content": strip_sources(text)} for role, text in turns[:-1] if text.strip()]
    return turns[-1][1], history


def rag_fields(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "citations": answer.get("citations", []),
        "rag": {
            key: answer.get(key)
            for key in (
                "answerable",
                "query",
                "language",
                "model",
                "timings_ms",
                "answer_span",
                "evidence",
                "confidence",
                "checks",
                "reasoning",
            )
        },
    }


def usage_of(answer: dict[str, Any]) -> dict[str, int]:
    usage = answer.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(usage.get("cached_tokens", 0))},
    }


@router.get("/models", summary="The one model this service offers (answers grounded in the documents)")
async def models(context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": MODEL_ID,
                "object": "model",
                "created": int(context.service.started_at),
                "owned_by": "rag-service",
                "generator": context.service.model_name(),
            }
        ],
    }


@router.post("/chat/completions", summary="OpenAI-compatible chat completion, answered from the documents")
async def chat_completions(body: ChatCompletionRequest, request: Request, context: ApiContext = Depends(get_context)):
    check_messages_size(body.messages, context.settings)
    question, history = split_messages(body.messages)
    question = check_question(question, context.settings)
    admission = context.admission
    pipeline, slot = await admitted_pipeline(context, request)
    arguments = {
        "top_k": body.top_k,
        "filters": body.filters.to_pipeline() if body.filters else None,
        "history": history or None,
        "answer_mode": body.answer_mode,
    }
    model = body.model or MODEL_ID
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = await start_in_thread(lambda: admission.stream(slot, lambda: pipeline.stream(question, **arguments)))
        return StreamingResponse(
            _chunks(context, events, model, completion_id, include_usage),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    try:
        answer = (await run_in_threadpool(admission.run, slot, pipeline.answer, question, **arguments)).to_dict()
    finally:
        admission.abandon(slot)  # only if the work never started
    context.metrics.observe_answer(answer)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer["answer"]
                    + sources_block(answer["citations"], answer.get("evidence"), answer.get("reasoning") or ()),
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_of(answer),
        **rag_fields(answer),
    }


async def _chunks(
    context: ApiContext, events: AsyncIterator[dict[str, Any]], model: str, completion_id: str, include_usage: bool
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }
        )

    yield chunk({"role": "assistant", "content": ""})
    streamed = ""
    try:
        async for event in events:
            kind = event.get("type")
            if kind == "error":  # the pipeline reports a generation failure as an event
                raise GenerationError(event.get("message") or "The model failed while generating.")
            if kind == "token" and event.get("text"):
                streamed += event["text"]
                yield chunk({"content": event["text"]})
            elif kind == "done":
                answer = event.get("answer") or {}
                context.metrics.observe_answer(answer)
                final = answer.get("answer", "")
                # The checked answer may differ from the raw tokens (a refusal, renumbered markers);
                # what was sent cannot be taken back, but what is missing is sent now.
                rest = final[len(streamed) :] if final.startswith(streamed) else ""
                rest += sources_block(
                    answer.get("citations", []), answer.get("evidence"), answer.get("reasoning") or ()
                )
                if rest:
                    yield chunk({"content": rest})
                yield chunk({}, "stop", **rag_fields(answer))
                if include_usage:
                    yield sse(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage_of(answer),
                        }
                    )
    except Exception as exc:  # noqa: BLE001 - OpenAI clients raise on an "error" chunk
        error = api_error_from(exc)
        if error.status >= 500 and error.status != 503:
            log.error("Streaming a chat completion failed: %s", exc, exc_info=error.code == "internal_error")
        context.metrics.errors.labels("/v1/chat/completions", error.code).inc()
        yield sse(error_body(error, openai_style=True))
    yield sse("[DONE]")
