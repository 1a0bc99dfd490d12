"""``create_app(settings)``: the FastAPI application, one router per capability.

=========================  ====================================================================
``GET  /``                 the chat page (``api/static``)
``POST /ask``              answer with citations; ``stream: true`` for Server-Sent Events
``POST /v1/chat/completions``, ``GET /v1/models``   the OpenAI protocol
``GET/POST /documents``, ``DELETE /documents/{doc_id}``   list, upload, delete documents
``GET  /health``           200 ``ready`` / 503 ``loading`` | ``no_index`` | ``error``
``GET  /metrics``          Prometheus metrics
=========================  ====================================================================

Middleware, outermost first: metrics (every request counted and timed), the guard (host names,
cross-origin changes, body size: :mod:`api.guard`), CORS (when ``cors_origins`` is set), API
keys (when ``api_keys`` or ``read_only_keys`` is set). Answering routes pass admission control
(:mod:`api.admission`) before any work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import rag
from api.admission import Admission
from api.auth import ApiKeyMiddleware
from api.context import ApiContext
from api.errors import COMMON_RESPONSES, ApiError, install_error_handlers
from api.guard import RequestGuardMiddleware
from api.library import DocumentLibrary
from api.metrics import ApiMetrics, MetricsMiddleware, endpoint_of
from api.routes import ask, documents, health, openai
from api.service import AnswerService
from rag.config import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
log = logging.getLogger("api")


def create_app(settings: Settings, pipeline_factory: Callable[[Settings], Any] | None = None) -> FastAPI:
    """The service's app. Models load in the background once it starts (``/health`` says when).

    ``pipeline_factory(settings)`` builds the answer pipeline (default:
    ``rag.answering.AnswerPipeline.from_settings``).
    """
    service = AnswerService(settings, pipeline_factory)
    metrics = ApiMetrics()
    library = DocumentLibrary(settings, embedder=service.embedder)
    admission = Admission(settings.max_pending_answers, settings.rate_limit_per_minute, settings.max_queue_wait_s)
    context = ApiContext(settings=settings, service=service, library=library, metrics=metrics, admission=admission)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        yield

    app = FastAPI(
        title="rag-service",
        version=rag.__version__,
        description="Answers questions from your documents, with citations; says so when the documents don't.",
        lifespan=lifespan,
        # "/documents/" is a 404 that says so, not a redirect a client may follow with another method.
        redirect_slashes=False,
        responses=COMMON_RESPONSES,
    )
    app.state.context = context

    def count_error(request: Request, error: ApiError) -> None:
        metrics.errors.labels(endpoint_of(request.scope), error.code).inc()

    def count_refusal(scope, error: ApiError) -> None:
        metrics.errors.labels(endpoint_of(scope), error.code).inc()

    install_error_handlers(app, on_error=count_error)
    for module in (ask, openai, documents, health):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    if settings.api_keys or settings.read_only_keys:
        app.add_middleware(
            ApiKeyMiddleware, keys=settings.api_keys, read_only_keys=settings.read_only_keys, on_refused=count_refusal
        )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(
        RequestGuardMiddleware, settings=settings, trusted_origins=settings.cors_origins, on_refused=count_refusal
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
