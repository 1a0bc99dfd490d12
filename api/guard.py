"""The server's outer guard: which hosts it answers to, which origins may change things, how big a body may be.

With no API keys a local service is still reachable by every web page its user opens: a page
cannot read the answers of a cross-origin request, but a "simple" POST or a DELETE still
arrives and acts. And through DNS rebinding a page's own name can come to point at 127.0.0.1,
after which the browser treats the service as same-origin and can read it too. So, with or
without keys:

* **Host**: a request whose ``Host`` header names anything but this server (its loopback names,
  the address it listens on, the machine's own names when it listens on every interface, or the
  ``allowed_hosts`` setting) is refused with 400. A rebinding page's requests carry its own name.
* **Origin**: a request that may change state (any method but GET, HEAD, OPTIONS) sent by a
  browser from another origin is refused with 403, whatever its content type. A browser says
  where a request comes from in ``Origin`` or, for requests without one, ``Sec-Fetch-Site``;
  clients that are not browsers (curl, the OpenAI client) send neither and are let through,
  since no web page can make them. The chat page is served by this server, so it is same-origin;
  the ``cors_origins`` setting adds origins a deployment trusts.
* **Size**: headers over 32 KB together are refused with 431; bodies over ``max_body_kb`` are
  refused with 413 before they are read whole, ``Content-Length`` or not (uploads have their own,
  larger limit, ``max_upload_mb``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from api.errors import ApiError, error_response
from rag.config import Settings

log = logging.getLogger("api")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
UPLOAD_PATH = "/documents"
MAX_HEADER_BYTES = 32 * 1024  # all headers together; browsers send a few KB
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers on top of the files themselves


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _own_names() -> set[str]:
    """The machine's names and addresses, for a server that listens on every interface."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            names.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return {n.lower() for n in names if n}


def allowed_hosts(settings: Settings) -> set[str] | None:
    """The names a ``Host`` header may carry (without port), or ``None`` when any is accepted."""
    configured = {h.strip().lower().strip("[]") for h in settings.allowed_hosts if h.strip()}
    if "*" in configured:
        return None
    hosts = set(LOOPBACK_NAMES) | configured
    bind = settings.host.strip().lower().strip("[]")
    if bind in WILDCARD_ADDRESSES:
        hosts |= _own_names()
    else:
        hosts.add(bind)
    return hosts


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8000`` -> ``::1``, ``Example.org:80`` -> ``example.org``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def same_origin(origin: str, host_header: str, scheme: str) -> bool:
    """Whether the page at ``origin`` is this server itself, as the client addressed it."""
    try:
        parts = urlsplit(origin)
        origin_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    host = host_name(host_header)
    tail = host_header.strip().rsplit("]", 1)[-1]
    port = (
        int(tail.rsplit(":", 1)[1])
        if ":" in tail and tail.rsplit(":", 1)[1].isdigit()
        else (443 if scheme == "https" else 80)
    )
    return parts.hostname.lower() == host and origin_port == port


class _BodyTooLarge(BaseException):
    """Raised from ``receive``; a BaseException so no ``except Exception`` in a route turns it into a 400."""


class RequestGuardMiddleware:
    """ASGI middleware applying the Host, Origin and body-size rules of this module."""

    def __init__(self, app, settings: Settings, trusted_origins: Iterable[str] = (), on_refused=None) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings)
        self.trusted = {o.rstrip("/").lower() for o in trusted_origins if o}
        self.max_body = int(settings.max_body_kb * 1024)
        self.max_upload = int(settings.max_upload_mb * 1048576) + MULTIPART_SLACK  # counted by the upload route itself
        self.on_refused = on_refused

    def check(self, scope) -> ApiError | None:
        """The refusal this request gets, if any."""
        raw = scope.get("headers", [])
        if sum(len(k) + len(v) + 4 for k, v in raw) > MAX_HEADER_BYTES:
            return ApiError(
                431,
                f"The request headers are over {MAX_HEADER_BYTES // 1024} KB together; send fewer or shorter headers.",
                "headers_too_large",
            )
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        host = headers.get("host")
        if host is not None and self.hosts is not None and host_name(host) not in self.hosts:
            return ApiError(
                400,
                f"This server does not answer to the host name '{host_name(host)[:100]}'; "
                "address it by a name it serves, or add that name to the allowed_hosts setting.",
                "host_not_allowed",
            )
        if scope.get("method", "GET") not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None:
                if origin.rstrip("/").lower() not in self.trusted and not same_origin(
                    origin, host or "", scope.get("scheme", "http")
                ):
                    return ApiError(
                        403,
                        f"Requests that change or cost something are not accepted from web pages of "
                        f"another origin ({origin[:100]}); add it to cors_origins to trust it.",
                        "cross_origin",
                    )
            elif headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
                return ApiError(
                    403,
                    "Requests that change or cost something are not accepted from web pages of another site.",
                    "cross_origin",
                )
        limit = self._body_limit(scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return self._too_large(scope)
        return None

    def _body_limit(self, scope) -> int:
        return self.max_upload if scope.get("path", "").rstrip("/") == UPLOAD_PATH else self.max_body

    def _too_large(self, scope) -> ApiError:
        if scope.get("path", "").rstrip("/") == UPLOAD_PATH:
            limit = f"{self.max_upload / 1048576:.0f} MB (the max_upload_mb setting)"
        else:
            limit = f"{self.max_body // 1024} KB (the max_body_kb setting)"
        return ApiError(413, f"The request body is over the limit of {limit}; send a smaller one.", "body_too_large")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = self.check(scope)
        if error is None and scope.get("path", "").rstrip("/") == UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        if error is None:
            limit, received = self._body_limit(scope), 0
            started = False

            async def counted_receive():
                # A chunked body, or one longer than it said, is cut off here.
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise _BodyTooLarge()
                return message

            async def watched_send(message):
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            try:
                await self.app(scope, counted_receive, watched_send)
                return
            except _BodyTooLarge:
                if started:
                    raise
                error = self._too_large(scope)
        if self.on_refused is not None:
            self.on_refused(scope, error)
        await error_response(scope.get("path", ""), error)(scope, receive, send)
