"""Admission control in front of answering: a bounded number of answers in the house, and per-client rate limits.

The generator answers one question at a time, so under load requests queue behind it. Left
unbounded, a burst of clients each waits longer than its own timeout and the server does work
nobody receives. Instead, at most ``max_pending_answers`` answers are being worked on or
waiting; a request beyond that is refused at once with 503 and a ``Retry-After`` estimated
from how long recent answers took. With ``rate_limit_per_minute`` set, each API key (each client
address when the server has no keys) may ask that many questions in any sliding minute; past
it, 429 with ``Retry-After``. The moving-window counting is the ``limits`` library's.

A slot is held for as long as the work runs, in whichever thread runs it, not only as long as
the client waits: a client that hangs up does not free a slot its answer still occupies.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, TypeVar

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.auth import bearer_token
from api.errors import ApiError

T = TypeVar("T")

RECENT_ANSWERS = 20        # answer durations kept for the Retry-After estimate
MAX_RETRY_AFTER_S = 60


class Admission:
    """Counts answers in the house; hands out slots or refuses with 503 and a Retry-After."""

    def __init__(self, max_pending: int, rate_per_minute: int = 0) -> None:
        self.max_pending = max(1, max_pending)
        self._pending = 0
        self._lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=RECENT_ANSWERS)
        self.refused = 0
        self._rate = RateLimitItemPerMinute(rate_per_minute) if rate_per_minute > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self._rate else None

    @property
    def pending(self) -> int:
        return self._pending

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the typical answer time, times the answers ahead."""
        typical = sorted(self._durations)[len(self._durations) // 2] if self._durations else 2.0
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(typical * max(1, self._pending) / self.max_pending)))

    def check_rate(self, client: str) -> None:
        """429 when ``client`` has used its requests of the last minute."""
        if self._limiter is None or self._rate is None:
            return
        if not self._limiter.hit(self._rate, client):
            stats = self._limiter.get_window_stats(self._rate, client)
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise ApiError(429, f"Too many questions from this client: the limit is {self._rate.amount} a minute; "
                                f"try again in {wait} s.", "rate_limited", headers={"Retry-After": str(wait)})

    def enter(self) -> float:
        """Take a slot (returns its start time for :meth:`leave`), or raise 503 when none is free."""
        with self._lock:
            if self._pending >= self.max_pending:
                self.refused += 1
                wait = self.retry_after()
                raise ApiError(503, f"The server is answering {self._pending} questions already; "
                                    f"try again in {wait} s.", "overloaded", headers={"Retry-After": str(wait)})
            self._pending += 1
        return time.perf_counter()

    def leave(self, started: float) -> None:
        with self._lock:
            self._pending -= 1
            self._durations.append(time.perf_counter() - started)

    def run(self, started: float, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)``, then the slot taken at ``started`` is given back."""
        try:
            return work(*args, **kwargs)
        finally:
            self.leave(started)

    def stream(self, started: float, make_iterator: Callable[[], Iterator[T]]) -> Iterator[T]:
        """The items of ``make_iterator()``; the slot is given back when it ends or is closed."""
        try:
            yield from make_iterator()
        finally:
            self.leave(started)


def admit(admission: Admission, request: Any) -> float:
    """Rate-limit, then take a slot for ``request`` (FastAPI ``Request``); returns the slot's start."""
    admission.check_rate(client_of(request.headers, request.client))
    return admission.enter()


def client_of(headers: Any, address: Any) -> str:
    """Who a request is for rate limiting: its key, else its address."""
    token = bearer_token(headers.get("authorization"))
    if token:
        return "key:" + token
    return "addr:" + (str(address[0]) if address else "unknown")
