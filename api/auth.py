"""API keys: with ``api_keys`` or ``read_only_keys`` set, requests need ``Authorization: Bearer KEY``.

Two kinds of key: ``api_keys`` may do everything; ``read_only_keys`` may ask and read (``/ask``,
``/v1``, ``GET /documents``, ``/metrics``) but not upload or delete documents (403).

Left open: ``/health`` (for load balancers and orchestrators), the chat page and its static
assets (the page asks for the key and sends it with each request), and the OpenAPI
description (``/docs``, ``/redoc``, ``/openapi.json``), which holds no data. CORS preflight
requests carry no credentials by design and are answered by the CORS middleware outside this one.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from api.errors import ApiError, error_response

OPEN_PATHS = frozenset({"/health", "/", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
OPEN_PREFIXES = ("/static/",)
CHANGING_PREFIX = "/documents"


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def changes_documents(method: str, path: str) -> bool:
    """Whether the request adds or removes documents (admin keys only)."""
    return method not in ("GET", "HEAD", "OPTIONS") and path.startswith(CHANGING_PREFIX)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class ApiKeyMiddleware:
    """Refuses requests without a valid key with 401 and one sentence saying how to send one."""

    def __init__(self, app, keys: Iterable[str], read_only_keys: Iterable[str] = (), on_refused=None) -> None:
        self.app = app
        self.keys = [k.encode("utf-8") for k in keys if k]
        self.read_only = [k.encode("utf-8") for k in read_only_keys if k]
        self.on_refused = on_refused

    @staticmethod
    def _matches(token: str, keys: list[bytes]) -> bool:
        given = token.encode("utf-8")
        # Compare against every key, in constant time, so timing does not reveal a near-match.
        return any([hmac.compare_digest(given, key) for key in keys])

    async def __call__(self, scope, receive, send) -> None:
        if (
            scope["type"] != "http"
            or not (self.keys or self.read_only)
            or scope.get("method") == "OPTIONS"
            or is_open(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        token = bearer_token(headers.get("authorization"))
        if token is None:
            error = ApiError(
                401,
                "This endpoint needs an API key; send it as the header 'Authorization: Bearer KEY'.",
                "missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif self._matches(token, self.keys):
            await self.app(scope, receive, send)
            return
        elif not self._matches(token, self.read_only):
            error = ApiError(
                401,
                "The API key is not valid; check the key, or ask the server's operator for one.",
                "invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        elif changes_documents(scope.get("method", ""), scope.get("path", "")):
            error = ApiError(
                403,
                "This key may ask and read but not add or delete documents; use a key from the api_keys setting.",
                "read_only_key",
            )
        else:
            await self.app(scope, receive, send)
            return
        if self.on_refused is not None:
            self.on_refused(scope, error)
        await error_response(scope.get("path", ""), error)(scope, receive, send)
