"""``POST /ask``: a question in, an answer with citations out, whole or as Server-Sent Events.

Streamed answers are a sequence of events, each ``event: <type>`` plus one JSON ``data`` line:

- ``hop``: ``{"type", "hop"}`` for a question answered in several hops (rag/reasoning/), each as
  it ends, before ``retrieval`` (whose passages are then those of all hops); the ``done`` answer's
  ``reasoning`` has the hops numbered as its passages;
- ``retrieval``: ``{"type", "query", "passages"}``, once, before generation (``query`` is the
  standalone query a follow-up was rewritten into);
- ``token``: ``{"type", "text"}``, as the model writes;
- ``done``: ``{"type", "answer"}`` with the full answer (text with checked ``[n]`` markers,
  citations, passages, timings); the text shown should be replaced by ``answer.answer``;
- ``error``: ``{"type", "error", "code", "status"}`` if answering fails after the stream began.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api.admission import admitted_pipeline
from api.context import ApiContext, get_context
from api.errors import ANSWER_STATUSES, api_error_from, error_responses
from api.schemas import AskRequest, check_history_size, check_question
from api.streaming import SSE_HEADERS, sse, start_in_thread
from rag.errors import GenerationError

log = logging.getLogger("api")
router = APIRouter(tags=["ask"])

ASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer (``Answer.to_dict()``), or with ``stream: true`` a ``text/event-stream``.",
        "content": {"text/event-stream": {}},
    },
    **error_responses(ANSWER_STATUSES),
}


def pipeline_arguments(body: AskRequest) -> dict[str, Any]:
    return {
        "top_k": body.top_k,
        "filters": body.filters.to_pipeline() if body.filters else None,
        "history": [turn.model_dump() for turn in body.history] if body.history else None,
        "answer_mode": body.answer_mode,
    }


@router.post("/ask", responses=ASK_RESPONSES, summary="Answer a question from the documents, with citations")
async def ask(body: AskRequest, request: Request, context: ApiContext = Depends(get_context)):
    question = check_question(body.question, context.settings)
    check_history_size(body.history, context.settings)
    arguments = pipeline_arguments(body)
    admission = context.admission
    pipeline, slot = await admitted_pipeline(context, request)
    if body.stream:
        events = await start_in_thread(lambda: admission.stream(slot, lambda: pipeline.stream(question, **arguments)))
        return StreamingResponse(_sse(context, events), media_type="text/event-stream", headers=SSE_HEADERS)
    try:
        answer = await run_in_threadpool(admission.run, slot, pipeline.answer, question, **arguments)
    finally:
        admission.abandon(slot)  # only if the work never started
    data = answer.to_dict()
    context.metrics.observe_answer(data)
    return data


async def _sse(context: ApiContext, events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    try:
        async for event in events:
            kind = event.get("type", "message")
            if kind == "error":  # the pipeline reports a generation failure as an event
                raise GenerationError(event.get("message") or "The model failed while generating.")
            if kind == "done":
                context.metrics.observe_answer(event.get("answer") or {})
            yield sse(event, event=kind)
    except Exception as exc:  # noqa: BLE001 - the status line is sent; the error goes in the stream
        error = api_error_from(exc)
        if error.status >= 500 and error.status != 503:
            log.error("Streaming an answer failed: %s", exc, exc_info=error.code == "internal_error")
        context.metrics.errors.labels("/ask", error.code).inc()
        yield sse({"type": "error", "error": error.message, "code": error.code, "status": error.status}, event="error")
