"""Admission control in front of answering: a bounded number of answers in the house, and per-client rate limits.

The generator answers one question at a time, so under load requests queue behind it. Left
unbounded, a burst of clients each waits longer than its own timeout and the server does work
nobody receives. Instead, at most ``max_pending_answers`` answers are being worked on or waiting,
and no more than would keep a new one waiting over ``max_queue_wait_s`` (estimated from the work
recent answers took); a request beyond that is refused at once with 503 and a ``Retry-After``
saying when the queue is likely short enough again. With ``rate_limit_per_minute`` set, each API
key (each client address when the server has no keys) may ask that many questions in any sliding
minute; past it, 429 with ``Retry-After``. The moving-window counting is the ``limits`` library's.

A slot is held for as long as the work runs, in whichever thread runs it, not only as long as
the client waits: a client that hangs up does not free a slot its answer still occupies.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from api.auth import bearer_token
from api.errors import ApiError

T = TypeVar("T")

RECENT_ANSWERS = 20  # answer durations kept for the estimates
PRIOR_SERVICE_S = 2.0  # seconds of work per answer assumed before any has finished (2-core CPU, default model)
MAX_RETRY_AFTER_S = 60


class Admission:
    """Counts answers in the house; hands out slots or refuses with 503 and a Retry-After."""

    def __init__(self, max_pending: int, rate_per_minute: int = 0, max_wait_s: float = 0.0) -> None:
        self.max_pending = max(1, max_pending)
        self.max_wait_s = max_wait_s
        self._pending = 0
        self._lock = threading.Lock()
        # Seconds of work per answer: an answer that found k others in the house took about k + 1 of them.
        self._service: deque[float] = deque(maxlen=RECENT_ANSWERS)
        self.refused = 0
        self._rate = RateLimitItemPerMinute(rate_per_minute) if rate_per_minute > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage()) if self._rate else None

    @property
    def pending(self) -> int:
        return self._pending

    def service_s(self) -> float:
        """The median seconds of work one answer takes, from recent answers (a prior before any)."""
        if not self._service:
            return PRIOR_SERVICE_S
        return sorted(self._service)[len(self._service) // 2]

    def expected_wait_s(self) -> float:
        """How long a question admitted now would wait for the ones ahead of it."""
        return self.service_s() * self._pending

    def retry_after(self) -> int:
        """Seconds until the queue is likely short enough again: the answers ahead times the work of one."""
        service = self.service_s()
        over = max(1, self._pending - self.max_pending + 1)
        if self.max_wait_s:
            over = max(over, math.ceil(self._pending - self.max_wait_s / service + 1))
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(service * over)))

    def check_rate(self, client: str) -> None:
        """429 when ``client`` has used its requests of the last minute."""
        if self._limiter is None or self._rate is None:
            return
        if not self._limiter.hit(self._rate, client):
            stats = self._limiter.get_window_stats(self._rate, client)
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise ApiError(
                429,
                f"Too many questions from this client: the limit is {self._rate.amount} a minute; "
                f"try again in {wait} s.",
                "rate_limited",
                headers={"Retry-After": str(wait)},
            )

    def enter(self) -> Slot:
        """Take a slot (give it back with :meth:`leave`), or raise 503 when none is free.

        Refused: past ``max_pending`` answers in the house, or when the ones ahead would keep this
        one waiting longer than ``max_wait_s``.
        """
        with self._lock:
            full = self._pending >= self.max_pending
            if not full and self.max_wait_s and self._pending and self.expected_wait_s() > self.max_wait_s:
                full = True
            if full:
                self.refused += 1
                wait = self.retry_after()
                raise ApiError(
                    503,
                    f"The server is answering {self._pending} questions already; try again in {wait} s.",
                    "overloaded",
                    headers={"Retry-After": str(wait)},
                )
            slot = Slot(time.perf_counter(), self._pending)
            self._pending += 1
        return slot

    def leave(self, slot: Slot, finished: bool = True) -> None:
        """Give back ``slot`` (once; later calls do nothing); ``finished=False`` when no answer was worked on."""
        with self._lock:
            if slot.released:
                return
            slot.released = True
            self._pending -= 1
            if finished:
                self._service.append((time.perf_counter() - slot.started) / (slot.ahead + 1))

    def run(self, slot: Slot, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(*args, **kwargs)``, then ``slot`` is given back."""
        slot.running = True
        try:
            return work(*args, **kwargs)
        finally:
            self.leave(slot)

    def stream(self, slot: Slot, make_iterator: Callable[[], Iterator[T]]) -> Iterator[T]:
        """The items of ``make_iterator()``; ``slot`` is given back when it ends or is closed."""
        slot.running = True
        try:
            yield from make_iterator()
        finally:
            self.leave(slot)

    def abandon(self, slot: Slot) -> None:
        """Give back ``slot`` if its work never started (the request ended first)."""
        if not slot.running:
            self.leave(slot, finished=False)


@dataclass
class Slot:
    """One admitted answer: when it was let in, how many were in the house then, and its state."""

    started: float
    ahead: int
    running: bool = False
    released: bool = False


async def admitted_pipeline(context: Any, request: Any) -> tuple[Any, Slot]:
    """Rate-limit ``request``, take a slot, then get the ready pipeline: ``(pipeline, slot)``.

    The slot is taken first, on the event loop, so a refusal costs no thread hop; it is given
    back if the pipeline is not available.
    """
    from fastapi.concurrency import run_in_threadpool

    admission: Admission = context.admission
    admission.check_rate(client_of(request.headers, request.client))
    slot = admission.enter()
    try:
        pipeline = context.service.ready_pipeline() or await run_in_threadpool(context.service.require)
    except BaseException:
        admission.leave(slot, finished=False)
        raise
    return pipeline, slot


def client_of(headers: Any, address: Any) -> str:
    """Who a request is for rate limiting: its key, else its address."""
    token = bearer_token(headers.get("authorization"))
    if token:
        return "key:" + token
    return "addr:" + (str(address[0]) if address else "unknown")
