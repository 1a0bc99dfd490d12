"""Prometheus metrics: requests by endpoint and status, latency per request and per answer stage.

Each app owns its registry, so two apps in one process (tests) never share counters. The
middleware is plain ASGI so a streamed answer is timed until its last byte, not its headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class ApiMetrics:
    """The service's metrics and their registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series double the output and nobody graphs them
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_http_requests_total",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time from request to last response byte (streams included), by endpoint.",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "rag_http_requests_in_progress", "Requests being served (streams included).", registry=self.registry
        )
        self.stages = Histogram(
            "rag_answer_stage_seconds",
            "Time spent in each answering stage (retrieve, rerank, generate, total, ...).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "rag_errors_total",
            "Failed requests and streams, by endpoint and error code.",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "rag_tokens_total", "Tokens read and written by the generator.", ["kind"], registry=self.registry
        )
        self.answers = Counter(
            "rag_answers_total",
            "Answers given, by whether the documents held the answer.",
            ["answerable"],
            registry=self.registry,
        )
        self.ready = Gauge("rag_ready", "1 when the index and the models are loaded.", registry=self.registry)

    def observe_answer(self, answer: Mapping[str, Any]) -> None:
        """Record an answer's stage timings, token use and outcome (``Answer.to_dict()`` shape)."""
        for stage, ms in (answer.get("timings_ms") or {}).items():
            try:
                self.stages.labels(stage).observe(float(ms) / 1000.0)
            except (TypeError, ValueError):
                continue
        usage = answer.get("usage") or {}
        for kind in ("prompt_tokens", "completion_tokens"):
            if usage.get(kind):
                self.tokens.labels(kind.removesuffix("_tokens")).inc(int(usage[kind]))
        self.answers.labels("true" if answer.get("answerable") else "false").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def endpoint_of(scope: Mapping[str, Any]) -> str:
    """The route template that served ``scope`` (``/documents/{doc_id}``), to keep labels few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return path
    url_path = scope.get("path", "")
    if url_path.startswith("/static/"):
        return "/static"
    return "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request."""

    def __init__(self, app, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        self.metrics.in_progress.inc()

        async def send_and_watch(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.in_progress.dec()
            endpoint = endpoint_of(scope)
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
