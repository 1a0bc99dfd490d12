"""Blocking iterators (the model generating tokens) consumed from the event loop, and SSE framing.

The pipeline's ``stream()`` is a plain generator that blocks while the model works, so it runs
in a worker thread that hands each event to the loop through a queue. The loop stays free for
other requests (``/health`` answers during a generation), and a client that hangs up stops the
worker at its next event, which closes the pipeline's generator and with it the generation.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Yield the items of ``make_iterator()``, which is created and advanced in a worker thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    hung_up = threading.Event()

    def put(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            hung_up.set()

    def work() -> None:
        iterator = None
        try:
            iterator = make_iterator()
            for item in iterator:
                if hung_up.is_set():
                    break
                put(_ITEM, item)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the loop side
            put(_ERROR, exc)
        else:
            put(_END, None)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    threading.Thread(target=work, name="answer-stream", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _ITEM:
                yield value
            elif kind == _ERROR:
                raise value
            else:
                return
    finally:
        hung_up.set()


async def start_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """:func:`iterate_in_thread`, with the first item awaited now.

    Failures before the first item (a bad filter, a missing index) then raise here, while the
    route can still answer with a proper status code instead of a 200 stream holding an error.
    """
    items = iterate_in_thread(make_iterator)
    try:
        first = await anext(items)
    except StopAsyncIteration:
        empty: list[T] = []

        async def nothing() -> AsyncIterator[T]:
            for item in empty:
                yield item

        return nothing()

    async def chained() -> AsyncIterator[T]:
        yield first
        async for item in items:
            yield item

    return chained()


def sse(data: Any, event: str | None = None) -> str:
    """One Server-Sent Event; ``data`` is sent as JSON unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    lines = [f"event: {event}"] if event else []
    lines.extend(f"data: {line}" for line in payload.split("\n"))
    return "\n".join(lines) + "\n\n"


SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends would otherwise hold tokens back
}
