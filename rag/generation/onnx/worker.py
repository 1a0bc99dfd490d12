"""The ONNX Runtime GenAI model in a process of its own, answering several questions at once.

``onnxruntime_genai`` keeps Python's global interpreter lock while it reads a prompt (one to
several seconds on a CPU), which would freeze the server's event loop, its health check and
every other request's retrieval. So :class:`~rag.generation.onnx.generator.OnnxGenerator` starts
this module as a child process (``python -m rag.generation.onnx.worker EXPORT_DIR WINDOW SLOTS
PARALLEL``) and talks to it in JSON lines (:mod:`rag.generation.onnx.protocol`).

Scheduling. Up to ``PARALLEL`` generations are under way at once, each with its own
onnxruntime-genai generator (its own key/value cache); the worker picks one token at a time for
each in turn. A new question's prompt is read as soon as the token being computed is done, before
the others continue: a question asked while three answers are being written waits for its first
token about as long as it would alone (vLLM's scheduler likewise reads waiting prompts first),
and the answers under way pause for that time. The prompts are read one at a time, since each
read already uses every core; onnxruntime-genai batches requests of different lengths only with
its paged-attention engine, which needs CUDA. Questions beyond ``PARALLEL`` wait in order.

The worker exits when its standard input closes, so it never outlives the server. Its standard
output carries only the protocol (anything a library prints goes to standard error).
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.generation.base import find_stop
from rag.generation.onnx.protocol import NOTHING_GENERATED, WORKER_MODULE, encode, failure, span_message
from rag.generation.prompt_cache import PromptCache
from rag.generation.spans import log_softmax, search_span
from rag.generation.stopping import cycles, repeats_itself


class Session:
    """One ``onnxruntime_genai.Generator`` (a key/value cache and its token sequence), shaped
    for :class:`~rag.generation.prompt_cache.PromptCache`."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.computed = 0  # tokens whose keys/values are in the cache

    def get_seq_length(self) -> int:
        """Tokens whose keys and values are in the cache."""
        return self.computed

    def crop(self, length: int) -> None:
        """Keep the first ``length`` tokens (a negative ``length`` drops that many at the end)."""
        keep = self.computed + length if length < 0 else length
        self.generator.rewind_to(keep)
        self.computed = keep


@dataclass
class Answer:
    """One generation under way: its request, its session and the tokens picked so far."""

    id: Any
    ids: list[int]
    max_new_tokens: int
    stop: list[str]
    sampling: bool
    session: Session
    cached: int
    new: list[int] = field(default_factory=list)
    picked: int = 0  # tokens generated, the end-of-turn token included
    stopped: bool = False
    cancelled: bool = False

    def done(self) -> dict:
        """What the ``done`` message says about this answer."""
        return {"completion_tokens": self.picked, "cached_tokens": self.cached, "stopped": self.stopped}


class Model:
    """The exported model, its tokenizer and the prompt cache: reading prompts and picking tokens."""

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
        """A fresh generator over the model: greedy, or sampling at ``temperature`` (top-p 0.95)."""
        params = self.og.GeneratorParams(self.model)
        if temperature > 0:
            params.set_search_options(max_length=self.window, do_sample=True, temperature=temperature, top_p=0.95)
        else:
            params.set_search_options(max_length=self.window, do_sample=False)
        return Session(self.og.Generator(self.model, params))

    def begin(self, request: dict) -> Answer:
        """Read the request's prompt (after the part a cached session holds)."""
        ids = [int(i) for i in request["ids"]]
        temperature = float(request.get("temperature") or 0.0)
        sampling = temperature > 0
        if sampling:
            session, cached = self.new_session(temperature), 0
        else:
            session, cached = self.cache.lease(ids)
        answer = Answer(
            request.get("id"),
            ids,
            int(request["max_new_tokens"]),
            list(request.get("stop") or []),
            sampling,
            session,
            cached,
        )
        session.generator.append_tokens(ids[cached:])
        session.computed = len(ids)
        return answer

    def step(self, answer: Answer, emit: Callable[[int], None]) -> bool:
        """Pick the answer's next token; ``False`` once it has ended (end of turn, a stop
        sequence, a loop, the length limit or cancellation)."""
        if answer.cancelled or answer.picked >= answer.max_new_tokens:
            return False
        generator = answer.session.generator
        generator.generate_next_token()
        answer.picked += 1
        # The token just picked is in the sequence; the model reads it when asked for the next.
        answer.session.computed = generator.token_count() - 1
        if generator.is_done():  # end of turn, or the window is full
            return False
        token = int(generator.get_next_tokens()[0])
        answer.new.append(token)
        emit(token)
        text = self.tokenizer.decode(answer.new, skip_special_tokens=True)
        if answer.stop and find_stop(text, answer.stop) is not None:
            answer.stopped = True
            return False
        return not (cycles(answer.new) or repeats_itself(text)) and answer.picked < answer.max_new_tokens

    def extract(self, request: dict) -> dict:
        """The span the model would answer with (the ``extract`` operation)."""
        ids = [int(i) for i in request["ids"]]
        session, cached = self.cache.lease(ids)
        generator = session.generator
        generator.append_tokens(ids[cached:])
        session.computed = len(ids)
        first = log_softmax(generator.get_logits())

        def follow(tokens: Sequence[int]) -> Iterator[np.ndarray]:
            generator.rewind_to(len(ids))
            for token in tokens:
                generator.append_tokens([int(token)])
                yield log_softmax(generator.get_logits())

        try:
            choice = search_span(
                first,
                request["texts"],
                request["stop_ids"],
                follow,
                method=request.get("method", "span"),
                starts=int(request.get("starts", 4)),
                max_tokens=int(request.get("max_tokens", 16)),
                edges=request.get("edges"),
                no_answer=request.get("no_answer"),
                prior=request.get("prior"),
                fresh=request.get("fresh"),
            )
        finally:
            if generator.token_count() > len(ids):
                generator.rewind_to(len(ids))
            session.computed = len(ids)
            self.cache.keep(session, ids)
        return {"span": span_message(choice), "cached_tokens": cached}

    def score(self, request: dict) -> dict:
        """log P(continuation | prompt) (the ``score`` operation)."""
        ids = [int(i) for i in request["ids"]]
        continuation = [int(i) for i in request["continuation"]]
        session, cached = self.cache.lease(ids)
        generator = session.generator
        generator.append_tokens(ids[cached:])
        total = 0.0
        try:
            for token in continuation:
                total += float(log_softmax(generator.get_logits())[token])
                generator.append_tokens([token])
        finally:
            generator.rewind_to(len(ids))
            session.computed = len(ids)
            self.cache.keep(session, ids)
        return {"logprob": total, "tokens": len(continuation), "cached_tokens": cached}

    def end(self, answer: Answer) -> dict:
        """Give the answer's session back to the prompt cache; what the ``done`` message says."""
        session = answer.session
        if not answer.sampling:
            if session.generator.token_count() > session.computed:
                session.crop(session.computed)
            self.cache.keep(session, answer.ids + answer.new)
        return answer.done()


def cpu_threads() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
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


class Scheduler:
    """Which generation gets the model next: a waiting prompt first (while fewer than
    ``parallel`` answers are under way), else the next token of the answers in turn."""

    def __init__(self, model: Any, say: Callable[[dict], None], parallel: int) -> None:
        self.model = model
        self.say = say
        self.parallel = max(1, parallel)
        self.waiting: deque[dict] = deque()
        self.running: deque[Answer] = deque()

    @property
    def idle(self) -> bool:
        """Whether nothing waits and nothing is under way."""
        return not self.waiting and not self.running

    def take(self, message: dict) -> None:
        """Queue a request, or apply a ``cancel`` (a generation still waiting is answered as done at once)."""
        op = message.get("op")
        if op in ("generate", "extract", "score"):
            self.waiting.append(message)
        elif op == "cancel":
            for answer in self.running:
                if answer.id == message.get("id"):
                    answer.cancelled = True
            for request in list(self.waiting):
                if request.get("id") == message.get("id"):
                    self.waiting.remove(request)
                    self.say({"id": request.get("id"), "done": dict(NOTHING_GENERATED)})

    def work(self) -> None:
        """One unit of work: read one prompt and pick its first token, or pick one token of the
        answer whose turn it is."""
        if self.waiting and len(self.running) < self.parallel:
            request = self.waiting.popleft()
            if request.get("op") in ("extract", "score"):
                self._single(request)
                return
            try:
                answer = self.model.begin(request)
            except Exception as exc:  # noqa: BLE001 - one failed generation must not end the worker
                self.say({"id": request.get("id"), "error": failure(exc)})
                return
        elif self.running:
            answer = self.running.popleft()
        else:
            return
        try:
            going = self.model.step(answer, lambda token: self.say({"id": answer.id, "token": token}))
            if going:
                self.running.append(answer)
            else:
                self.say({"id": answer.id, "done": self.model.end(answer)})
        except Exception as exc:  # noqa: BLE001 - this answer fails (its session is dropped), the others go on
            self.say({"id": answer.id, "error": failure(exc)})

    def _single(self, request: dict) -> None:
        """An operation answered by one message (``extract``, ``score``)."""
        try:
            work = self.model.extract if request.get("op") == "extract" else self.model.score
            self.say({"id": request.get("id"), "done": work(request)})
        except Exception as exc:  # noqa: BLE001 - this request fails, the worker goes on
            self.say({"id": request.get("id"), "error": failure(exc)})


def serve(folder: Path, window: int, slots: int, parallel: int) -> int:
    """Load the model in ``folder`` and answer requests from standard input until it closes; the exit status."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints go to standard error

    def say(message: dict) -> None:
        protocol.write(encode(message))

    started = time.perf_counter()
    try:
        model = Model(folder, window, slots)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        say({"error": failure(exc)})
        return 1
    say({"ready": True, "seconds": round(time.perf_counter() - started, 2)})
    requests = Requests()
    scheduler = Scheduler(model, say, parallel)
    while True:
        # Wait for work when there is none; otherwise only take in what has already arrived.
        message = requests.next(timeout=None if scheduler.idle else 0)
        while message is not None:
            scheduler.take(message)
            message = requests.next(timeout=0)
        if requests.closed:
            return 0  # the server has gone
        scheduler.work()


def main(argv: list[str] | None = None) -> int:
    """The worker's command line: ``EXPORT_DIR WINDOW SLOTS PARALLEL``; the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print(f"usage: python -m {WORKER_MODULE} EXPORT_DIR WINDOW SLOTS PARALLEL", file=sys.stderr)
        return 2
    return serve(Path(args[0]), int(args[1]), int(args[2]), int(args[3]))


if __name__ == "__main__":
    sys.exit(main())
