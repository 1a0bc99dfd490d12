"""The ONNX Runtime GenAI model in a process of its own.

``onnxruntime_genai`` keeps Python's global interpreter lock while it reads a prompt (one to
several seconds on a CPU), which would freeze the server's event loop, its health check and
every other request's retrieval. So :class:`~rag.generation.onnx_lm.OnnxGenerator` starts this
module as a child process (``python -m rag.generation.onnx_worker EXPORT_DIR WINDOW SLOTS``)
and talks to it in JSON lines:

- the worker says ``{"ready": true, "seconds": ...}`` once the model is loaded (or
  ``{"error": ...}`` and exits);
- ``{"op": "generate", "ids": [...], "max_new_tokens": n, "stop": [...], "temperature": t}``
  is answered with one ``{"token": id}`` per picked token, then ``{"done": {"completion_tokens":
  n, "cached_tokens": n, "stopped": bool}}`` or ``{"error": message}``;
- ``{"op": "cancel"}`` during a generation ends it after the current token.

One generation at a time. The worker exits when its standard input closes, so it never
outlives the server. Its standard output carries only the protocol (anything a library prints
goes to standard error).
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rag.generation.base import find_stop
from rag.generation.prompt_cache import PromptCache
from rag.generation.transformers_lm import cycles, repeats_itself


class Session:
    """One ``onnxruntime_genai.Generator`` (a key/value cache and its token sequence), shaped
    for :class:`~rag.generation.prompt_cache.PromptCache`."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.computed = 0          # tokens whose keys/values are in the cache

    def get_seq_length(self) -> int:
        return self.computed

    def crop(self, length: int) -> None:
        """Keep the first ``length`` tokens (a negative ``length`` drops that many at the end)."""
        keep = self.computed + length if length < 0 else length
        self.generator.rewind_to(keep)
        self.computed = keep


class Model:
    """The exported model, its tokenizer and the prompt cache: the decoding loop."""

    def __init__(self, folder: Path, window: int, slots: int) -> None:
        import onnxruntime_genai as og
        from tokenizers import Tokenizer

        self.og = og
        config = og.Config(str(folder))
        # onnxruntime-genai otherwise reads prompts on one thread here (1.6x slower on 2 cores).
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": cpu_threads()}}}}))
        self.model = og.Model(config)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.window = window
        self.cache = PromptCache(self.new_session, slots)

    def new_session(self, temperature: float = 0.0) -> Session:
        params = self.og.GeneratorParams(self.model)
        if temperature > 0:
            params.set_search_options(max_length=self.window, do_sample=True, temperature=temperature, top_p=0.95)
        else:
            params.set_search_options(max_length=self.window, do_sample=False)
        return Session(self.og.Generator(self.model, params))

    def generate(self, ids: list[int], max_new_tokens: int, stop: list[str], temperature: float,
                 emit: Callable[[int], None], cancelled: Callable[[], bool]) -> dict:
        """Read the prompt (after the part a cached session holds) and pick tokens until the end
        of the turn, a stop sequence, a loop, the length limit or cancellation."""
        sampling = temperature > 0
        if sampling:
            session, cached = self.new_session(temperature), 0
        else:
            session, cached = self.cache.lease(ids)
        generator = session.generator
        generator.append_tokens(ids[cached:])
        session.computed = len(ids)
        new: list[int] = []
        picked = 0                     # tokens generated, the end-of-turn token included
        stopped = False
        while picked < max_new_tokens and not cancelled():
            generator.generate_next_token()
            picked += 1
            # The token just picked is in the sequence; the model reads it when asked for the next.
            session.computed = generator.token_count() - 1
            if generator.is_done():                     # end of turn, or the window is full
                break
            token = int(generator.get_next_tokens()[0])
            new.append(token)
            emit(token)
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if stop and find_stop(text, stop) is not None:
                stopped = True
                break
            if cycles(new) or repeats_itself(text):
                break
        if not sampling:
            if generator.token_count() > session.computed:
                session.crop(session.computed)
            self.cache.keep(session, ids + new)
        return {"completion_tokens": picked, "cached_tokens": cached, "stopped": stopped}


def cpu_threads() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:         # not Linux
        return max(1, os.cpu_count() or 1)


class Requests:
    """Lines from standard input, read without blocking when asked whether one is waiting."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.buffer = b""
        self.closed = False

    def _fill(self, timeout: float | None) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            chunk = os.read(self.fd, 65536)
            if chunk:
                self.buffer += chunk
            else:
                self.closed = True

    def next(self, timeout: float | None = None) -> dict | None:
        """The next request, waiting up to ``timeout`` seconds (``None``: until one comes or
        the input closes)."""
        while b"\n" not in self.buffer and not self.closed:
            before = len(self.buffer)
            self._fill(timeout)
            if timeout is not None and len(self.buffer) == before:
                return None
        if b"\n" not in self.buffer:
            return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def serve(folder: Path, window: int, slots: int) -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)                      # stray prints go to standard error

    def say(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")

    started = time.perf_counter()
    try:
        model = Model(folder, window, slots)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        say({"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"})
        return 1
    say({"ready": True, "seconds": round(time.perf_counter() - started, 2)})
    requests = Requests()
    while True:
        request = requests.next()
        if request is None:
            return 0                   # the server has gone
        if request.get("op") != "generate":
            continue                   # a cancel that arrived after its generation ended
        cancel = {"seen": False}

        def cancelled() -> bool:
            if not cancel["seen"]:
                waiting = requests.next(timeout=0)
                cancel["seen"] = requests.closed or (waiting is not None and waiting.get("op") == "cancel")
            return cancel["seen"]

        try:
            done = model.generate(request["ids"], int(request["max_new_tokens"]), list(request.get("stop") or []),
                                  float(request.get("temperature") or 0.0), lambda t: say({"token": t}), cancelled)
        except Exception as exc:  # noqa: BLE001 - one failed generation must not end the worker
            say({"error": f"{exc.__class__.__name__}: {str(exc)[:300]}"})
            continue
        say({"done": done})
        if requests.closed:
            return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m rag.generation.onnx_worker EXPORT_DIR WINDOW SLOTS", file=sys.stderr)
        return 2
    return serve(Path(args[0]), int(args[1]), int(args[2]))


if __name__ == "__main__":
    sys.exit(main())
