"""Errors as the HTTP API shows them: a status code and one sentence saying what to do.

Every failure leaves the server as ``{"error": "<one sentence>", "code": "...", "details": [...]}``.
Routes under ``/v1/`` speak the OpenAI protocol, whose clients read
``{"error": {"message", "type", "code"}}``, so they get that shape with the same sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    ConfigError,
    GenerationError,
    IndexLockedError,
    IndexMissingError,
    InputError,
    ModelMismatchError,
    RagError,
)

log = logging.getLogger("api")


class ApiError(Exception):
    """An expected failure of a request: ``message`` is the sentence the client sees."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "invalid_request",
        details: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = list(details or [])
        self.headers = headers


class ErrorBody(BaseModel):
    """How every failure looks outside ``/v1``."""

    error: str
    code: str
    details: list[dict[str, Any]] | None = None


class OpenAIError(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None
    details: list[dict[str, Any]] | None = None


class OpenAIErrorBody(BaseModel):
    """How every failure looks under ``/v1`` (the OpenAI protocol's shape)."""

    error: OpenAIError


def error_responses(statuses: dict[int, str], model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses`` (status -> when), all with the error body ``model``."""
    return {status: {"model": model, "description": why} for status, why in statuses.items()}


# What any request may get, before or beside its route's own answers.
COMMON_STATUSES = {
    400: "The Host header names a host this server does not serve (see the allowed_hosts setting).",
    401: "An API key is required and was missing or wrong.",
    403: "A cross-origin request that would change or cost something, or a read-only key used to change documents.",
    413: "The request body is over max_body_kb (uploads: max_upload_mb).",
    422: "The request is invalid: the sentence says which field and what to send.",
    431: "The request headers are over 32 KB together.",
}
ANSWER_STATUSES = {
    429: "This client's rate limit (rate_limit_per_minute) is used up; see Retry-After.",
    502: "The generator failed.",
    503: "No index yet, the models are still loading, or the server is answering as many questions as it takes "
    "(max_pending_answers); see Retry-After.",
}
COMMON_RESPONSES = error_responses(COMMON_STATUSES)


# RagError subclasses -> (status, code). Anything else from the library is a server fault.
_RAG_STATUS: list[tuple[type[RagError], int, str]] = [
    (IndexMissingError, 503, "no_index"),
    (IndexLockedError, 409, "index_locked"),
    (GenerationError, 502, "generation_failed"),
    (InputError, 422, "invalid_input"),
    (ModelMismatchError, 500, "model_mismatch"),
    (ConfigError, 500, "config_error"),
]

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def api_error_from(exc: BaseException) -> ApiError:
    """The :class:`ApiError` a client should see for ``exc``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RagError):
        for kind, status, code in _RAG_STATUS:
            if isinstance(exc, kind):
                return ApiError(status, str(exc), code)
        return ApiError(500, str(exc), "rag_error")
    return ApiError(
        500,
        f"The server failed while answering ({exc.__class__.__name__}); the details are in the server log.",
        "internal_error",
    )


def error_body(error: ApiError, openai_style: bool = False) -> dict[str, Any]:
    """The JSON body for ``error``, in the plain or the OpenAI shape."""
    if openai_style:
        kind = _OPENAI_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")
        body: dict[str, Any] = {"message": error.message, "type": kind, "code": error.code, "param": None}
        if error.details:
            body["details"] = error.details
        return {"error": body}
    body = {"error": error.message, "code": error.code}
    if error.details:
        body["details"] = error.details
    return body


def error_response(request_path: str, error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error, request_path.startswith("/v1/")), status_code=error.status, headers=error.headers
    )


# The sentence for a field's validation error, by pydantic's error type: (field, input, ctx) -> sentence.
_FIELD_SENTENCES: dict[str, Callable[[str, Any, dict[str, Any]], str]] = {
    "extra_forbidden": lambda field, got, ctx: f"The field '{field}' is not accepted here; remove it.",
    "int_parsing": lambda field, got, ctx: f"The field '{field}' must be a whole number, not {got!r}.",
    "int_type": lambda field, got, ctx: f"The field '{field}' must be a whole number, not {got!r}.",
    "int_from_float": lambda field, got, ctx: f"The field '{field}' must be a whole number, not {got!r}.",
    "string_type": lambda field, got, ctx: f"The field '{field}' must be a string.",
    "bool_parsing": lambda field, got, ctx: f"The field '{field}' must be true or false, not {got!r}.",
    "bool_type": lambda field, got, ctx: f"The field '{field}' must be true or false, not {got!r}.",
    "list_type": lambda field, got, ctx: f"The field '{field}' must be a list.",
    "literal_error": lambda field, got, ctx: (
        f"The field '{field}' must be one of {ctx.get('expected', 'the allowed values')}, not {got!r}."
    ),
    "greater_than_equal": lambda field, got, ctx: f"The field '{field}' must be at least {ctx.get('ge')}, not {got!r}.",
    "less_than_equal": lambda field, got, ctx: f"The field '{field}' must be at most {ctx.get('le')}, not {got!r}.",
    "string_unicode": lambda field, got, ctx: (
        f"The field '{field}' holds invalid Unicode (a lone surrogate); send valid UTF-8 text."
    ),
    "string_too_short": lambda field, got, ctx: f"The field '{field}' is empty; send some text in it.",
    "string_too_long": lambda field, got, ctx: (
        f"The field '{field}' is too long: at most {ctx.get('max_length')} characters are accepted."
    ),
    "too_long": lambda field, got, ctx: (
        f"The field '{field}' has too many items: at most {ctx.get('max_length')} are accepted."
    ),
}


def _request_sentence(kind: str, field: str, first: dict[str, Any]) -> str | None:
    """The sentence for an error of the request as a whole (bad JSON, not an object), a missing
    field or a validator's own message; None for other errors."""
    if kind == "json_invalid":
        return 'The request body is not valid JSON; send a JSON object such as {"question": "..."}.'
    if not field and kind in ("model_attributes_type", "dict_type", "missing"):
        return 'The request body must be a JSON object; send one such as {"question": "..."}.'
    if kind == "missing":
        return f"The field '{field}' is required but missing."
    if kind in ("value_error", "assertion_error"):
        return str(first.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return None


def validation_sentence(errors: Sequence[dict[str, Any]]) -> str:
    """One sentence for the first of pydantic's validation errors."""
    if not errors:
        return "The request is invalid."
    first = errors[0]
    kind = first.get("type", "")
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(loc)
    sentence = _request_sentence(kind, field, first)
    if sentence is not None:
        return sentence
    field_sentence = _FIELD_SENTENCES.get(kind)
    if field_sentence is not None:
        return field_sentence(field, first.get("input"), first.get("ctx") or {})
    message = str(first.get("msg", "is invalid")).rstrip(".")
    return f"The field '{field or 'body'}' is invalid: {message}."


def _plain_details(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic's errors without the parts that may not serialise (exceptions in ctx, raw input)."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in errors]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path (Starlette's own 405 names only the first route's).

    Read from the app's OpenAPI description (routers included with a prefix are not plain routes
    to walk), plus the routes it leaves out, such as the chat page.
    """
    from starlette.routing import Match

    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(
            re.sub(r"\{[^/}]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")),
            request.url.path,
        ):
            methods |= {method.upper() for method in operations}
    for route in request.app.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches({**request.scope, "method": "GET"})[0] != Match.NONE:
            methods |= set(route_methods) - {"HEAD"}
    return sorted(methods)


def install_error_handlers(app: FastAPI, on_error=None) -> None:
    """Make every failure, expected or not, answer with the one-sentence error body.

    ``on_error(request, error)`` is called for each (the metrics count them).
    """

    def report(request: Request, error: ApiError) -> JSONResponse:
        if on_error is not None:
            on_error(request, error)
        return error_response(request.url.path, error)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return report(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return report(request, ApiError(422, validation_sentence(errors), "invalid_request", _plain_details(errors)))

    @app.exception_handler(RagError)
    async def _rag(request: Request, exc: RagError) -> JSONResponse:
        error = api_error_from(exc)
        if error.status >= 500 and error.status != 503:
            log.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return report(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"There is no {request.url.path} here; see /docs for the endpoints."
        elif exc.status_code == 405:
            allowed = allowed_methods(request)
            message = (
                f"{request.method} is not allowed on {request.url.path}; use "
                f"{' or '.join(allowed) or 'another method'}."
            )
            return report(request, ApiError(405, message, "method_not_allowed", headers={"Allow": ", ".join(allowed)}))
        elif exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer to a body it cannot decode (e.g. bytes that are not UTF-8).
            message = "The request body could not be read; send JSON encoded as UTF-8."
        else:
            message = str(exc.detail)
        return report(request, ApiError(exc.status_code, message, "http_error", headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return report(request, api_error_from(exc))
