"""``/health`` (readiness, always open) and ``/metrics`` (Prometheus text format).

Neither waits for the model, so both respond at once even while an answer is being generated.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.context import ApiContext, get_context
from api.paths import shown_path
from api.service import READY

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    summary="200 when the index and the models are loaded, else 503 with the reason",
    responses={503: {"description": "status is 'loading', 'no_index' or 'error'"}},
)
async def health(context: ApiContext = Depends(get_context)) -> JSONResponse:
    service = context.service
    service.refresh()  # an index built since the last look starts a warm-up
    ready = service.state == READY
    context.metrics.ready.set(1 if ready else 0)
    body: dict[str, Any] = {
        "status": service.state,
        "model": service.model_name(),
        "answer_mode": context.settings.answer_mode,
        "uptime_s": round(time.time() - service.started_at, 1),
    }
    if ready:
        # Off the event loop: it may load an index generation an ingest just committed.
        stats = await run_in_threadpool(service.index_stats)
        if stats and "index_dir" in stats:
            stats["index_dir"] = shown_path(stats["index_dir"], context.settings)
        body["index"] = stats
        body["load_seconds"] = service.load_seconds
    elif service.error:
        body["error"] = service.error
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: ApiContext = Depends(get_context)) -> Response:
    return Response(context.metrics.render(), media_type=context.metrics.content_type)
