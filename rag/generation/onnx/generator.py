"""The local causal LM run by ONNX Runtime GenAI on a CPU, behind the Generator protocol.

The model runs in a child process (:mod:`rag.generation.onnx.worker`; onnxruntime-genai holds
Python's lock while it reads a prompt), which loads in parallel with the index. A server that
answers with it imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import ConfigError, GenerationError
from rag.generation.base import (
    GenerationResult,
    Message,
    TextDeltas,
    TextStream,
    answer_room,
    finished,
    threaded_stream,
)
from rag.generation.onnx.chat_template import ChatTemplate
from rag.generation.onnx.export import ExportCache, compare_with_transformers, export_key, transformers_folder
from rag.generation.onnx.process import WorkerProcess
from rag.generation.onnx.protocol import span_choice
from rag.generation.spans import Extraction, fresh_tokens, nearness, to_extraction, word_edges
from rag.generation.transformers_lm import TransformersGenerator
from rag.generation.weights import DEFAULT_MODEL, resolve_model

log = logging.getLogger(__name__)

# How often a generation waiting for its turn in the model's process looks whether it was cancelled.
CANCEL_POLL_S = 0.25


@dataclass
class _Run:
    """One generation: its prompt's token ids and limits, then what the model's process reported."""

    ids: list[int]
    max_new_tokens: int
    stop: list[str]
    temperature: float
    cancel: threading.Event
    cached_tokens: int = 0
    completion_tokens: int = 0
    stopped: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.ids)


class OnnxGenerator:
    """A causal LM run by ONNX Runtime GenAI, behind the
    :class:`~rag.generation.base.Generator` protocol. Loads on :meth:`warm_up` or first use.
    Up to ``parallel`` generations run at once, interleaved token by token in the model's
    process (a new prompt is read first); transformers runs one at a time."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        cache_dir: Path | None = None,
        context_tokens: int = 2048,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        prompt_cache_slots: int = 4,
        parallel: int = 4,
        fallback: TransformersGenerator | None = None,
    ) -> None:
        self.name = model
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "rag-service"
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = list(stop or [])
        self.prompt_cache_slots = prompt_cache_slots
        self.parallel = max(1, parallel)
        self.fallback = fallback
        self.device = "cpu"
        self.load_info: dict[str, Any] = {}
        self._delegate: TransformersGenerator | None = None
        self._folder: Path | None = None
        self._origin = ""
        self._started = 0.0
        self._worker: WorkerProcess | None = None
        self._tokenizer: Any = None
        self._template = ChatTemplate(None, {})  # the export's own once it is opened
        self._window = context_tokens
        self._load_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, fallback: TransformersGenerator | None = None) -> OnnxGenerator:
        """The generator ``settings`` describe; ``fallback`` answers instead when ONNX Runtime cannot."""
        return cls(
            settings.generator_model,
            settings.model_cache_dir,
            settings.context_tokens,
            settings.max_new_tokens,
            settings.temperature,
            settings.stop,
            settings.prompt_cache_slots,
            settings.generator_parallel,
            fallback,
        )

    # -- loading --------------------------------------------------------------------------------

    def begin_loading(self) -> None:
        """Start loading the model in its process and return at once (the answer pipeline loads
        its index meanwhile)."""
        self._load()

    def warm_up(self) -> None:
        """Load the model (exporting it on the first start) and run one tiny generation."""
        if self._ready_worker() is None:
            self._transformers.warm_up()
            return
        self.generate([{"role": "user", "content": "Hi"}], max_new_tokens=1)

    def close(self) -> None:
        """Stop the model's process (it also stops by itself when this process ends)."""
        with self._load_lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def _load(self) -> bool:
        """Export if needed, read the tokenizer and start the model's process; ``False`` when the
        transformers fallback took over."""
        if self._folder is None and self._delegate is None:
            with self._load_lock:
                if self._folder is None and self._delegate is None:
                    self._started = time.perf_counter()
                    try:
                        folder, self._origin = self._export()
                        self._open(folder)
                    except (ConfigError, GenerationError, OSError, RuntimeError, ValueError) as exc:
                        self._give_up(exc)
        return self._delegate is None

    def _give_up(self, exc: Exception) -> None:
        if self.fallback is None:
            raise exc
        log.warning("The generator runs with transformers instead of ONNX Runtime: %s", exc)
        self._delegate = self.fallback

    def _export(self) -> tuple[Path, str]:
        source = resolve_model(self.name, self.cache_dir)
        key = export_key(source)
        cache = ExportCache(self.cache_dir / "generators-onnx")
        found = cache.find(key)
        if found is not None:
            return found, f"cache {found}"
        log.info("Exporting generator %s to ONNX (once; it is cached in %s)...", self.name, cache.root)
        folder, model, tokenizer = transformers_folder(source, self.cache_dir)
        built = cache.build(key, folder, lambda export: compare_with_transformers(model, tokenizer, export))
        return built, f"{folder} (exported, cached in {built})"

    def _open(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["model"]
        self._window = min(self.context_tokens, int(config.get("context_length") or self.context_tokens))
        self._worker = WorkerProcess(folder, self._window, self.prompt_cache_slots, self.parallel)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._template = ChatTemplate.from_folder(folder)
        eos = config.get("eos_token_id")
        self._stop_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        self._folder = folder

    def _ready_worker(self) -> WorkerProcess | None:
        """The model's process, loaded (started again if it died); ``None`` when the fallback
        took over."""
        if not self._load():
            return None
        with self._load_lock:
            if self._delegate is not None:
                return None
            if self._worker is None or not self._worker.alive:
                log.warning("Starting the generator process again.")
                assert self._folder is not None  # _load() opened the export
                self._worker = WorkerProcess(self._folder, self._window, self.prompt_cache_slots, self.parallel)
            try:
                ready = self._worker.wait_ready()
            except (ConfigError, GenerationError) as exc:
                self._worker = None
                if self.load_info:  # it worked before: report, retry next time
                    raise GenerationError(str(exc)) from exc
                self._give_up(exc)
                return None
            if not self.load_info:
                self.load_info = {
                    "origin": self._origin,
                    "seconds": round(time.perf_counter() - self._started, 2),
                    "device": "cpu",
                    "runtime": "onnxruntime-genai",
                    "quantized": "none",
                    "process_load_seconds": ready.get("seconds"),
                }
                log.info(
                    "Loaded generator %s from %s in %.1f s (ONNX Runtime, CPU, in process %d)",
                    self.name,
                    self._origin,
                    self.load_info["seconds"],
                    self._worker.process.pid,
                )
            return self._worker

    @property
    def _transformers(self) -> TransformersGenerator:
        """The transformers generator that took over; asked for only once it has."""
        if self._delegate is None:  # not reached: callers ask only when ONNX Runtime is not in use
            raise GenerationError("The ONNX generator is not available.")
        return self._delegate

    # -- the Generator protocol -----------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """Tokens the prompt and the completion share: ``context_tokens``, within the export's context length."""
        if not self._load():
            return self._transformers.context_window
        return self._window

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's vocabulary."""
        if not self._load():
            return self._transformers.count_tokens(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model reads, from its chat template."""
        if not self._load():
            return self._transformers.render(messages)
        return self._template.render(messages)

    def generate(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> GenerationResult:
        """The model's reply to ``messages``; ``None`` arguments take the configured defaults."""
        if self._ready_worker() is None:
            return self._transformers.generate(messages, max_new_tokens, stop, temperature)
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        ids = self._decode_loop(run)
        return self._result_of(run, self._tokenizer.decode(ids, skip_special_tokens=True))

    def stream(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> TextStream:
        """The same reply as :meth:`generate`, as text pieces while the model's process writes it."""
        if self._ready_worker() is None:
            return self._transformers.stream(messages, max_new_tokens, stop, temperature)
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        deltas = TextDeltas(self._tokenizer)

        def work() -> None:
            try:
                if not run.cancel.is_set():
                    self._decode_loop(run, deltas.add)
            finally:
                deltas.end()

        return threaded_stream(
            work, deltas, run.stop, run.cancel, lambda text, stopped: self._result_of(run, text, stopped)
        )

    def extract(
        self,
        messages: Sequence[Message],
        texts: Sequence[str],
        prefix: str = "",
        method: str = "span",
        starts: int = 4,
        max_tokens: int = 16,
        no_answer: str = "",
        near: str = "",
    ) -> Extraction | None:
        """The span of ``texts`` the model most likely answers ``messages`` with, its reply
        opened with ``prefix`` (:mod:`rag.generation.spans`); ``None`` for empty texts. With
        ``no_answer``, that word is scored too (``Extraction.no_answer_logprob``); with
        ``near`` (the question), spans next to its words rank higher."""
        if self._ready_worker() is None:
            return self._transformers.extract(messages, texts, prefix, method, starts, max_tokens, no_answer, near)
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        ids = self._tokenizer.encode(self.render(messages) + prefix, add_special_tokens=False).ids
        answer_room(len(ids), self._window, max_tokens)
        encoded = [self._tokenizer.encode(text, add_special_tokens=False) for text in texts]
        offsets = [e.offsets for e in encoded]
        edges = [word_edges(text, token_offsets) for text, token_offsets in zip(texts, offsets)]
        done = self._call(
            {
                "op": "extract",
                "ids": ids,
                "texts": [e.ids for e in encoded],
                "stop_ids": self._stop_ids,
                "method": method,
                "starts": starts,
                "max_tokens": max_tokens,
                "edges": edges,
                "no_answer": self._tokenizer.encode(no_answer, add_special_tokens=False).ids if no_answer else None,
                "prior": [nearness(text, o, near) for text, o in zip(texts, offsets)] if near else None,
                "fresh": [fresh_tokens(text, o, near) for text, o in zip(texts, offsets)] if near else None,
            }
        )
        choice = span_choice(done.get("span"))
        return to_extraction(choice, offsets, texts, len(ids), int(done.get("cached_tokens", 0)))

    def score(self, messages: Sequence[Message], continuation: str, prefix: str = "") -> tuple[float, int]:
        """log P(``continuation`` | the prompt opened with ``prefix``) and its length in tokens."""
        if self._ready_worker() is None:
            return self._transformers.score(messages, continuation, prefix)
        ids = self._tokenizer.encode(self.render(messages) + prefix, add_special_tokens=False).ids
        following = self._tokenizer.encode(continuation, add_special_tokens=False).ids
        answer_room(len(ids), self._window, len(following))
        done = self._call({"op": "score", "ids": ids, "continuation": following})
        return float(done["logprob"]), int(done["tokens"])

    # -- internals ------------------------------------------------------------------------------

    def _call(self, request: dict) -> dict:
        """Send one request that is answered by a single ``done`` message; returns it."""
        worker = self._ready_worker()
        if worker is None:
            raise GenerationError("The ONNX generator is not available.")
        number, inbox = worker.open()
        try:
            worker.send({**request, "id": number})
            message = inbox.get()
            if "done" in message:
                return message["done"]
            if "error" in message:
                raise GenerationError(f"The model failed while reading ({message['error']}).")
            raise GenerationError(message.get("gone") or "The generator process gave no answer.")
        finally:
            worker.release(number)

    def _prepare(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None,
        stop: Sequence[str] | None,
        temperature: float | None,
    ) -> _Run:
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        ids = self._tokenizer.encode(self.render(messages), add_special_tokens=False).ids
        wanted = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        return _Run(
            ids=ids,
            max_new_tokens=answer_room(len(ids), self._window, wanted),
            stop=list(self.stop if stop is None else stop),
            temperature=self.temperature if temperature is None else temperature,
            cancel=threading.Event(),
        )

    def _decode_loop(self, run: _Run, emit: Callable[[list[int]], None] | None = None) -> list[int]:
        """Have the model's process answer ``run``; returns the new token ids (the end-of-turn
        token excluded). Cancelling ``run`` stops it before its next token, also while it waits
        for its turn."""
        worker = self._ready_worker()
        if worker is None:
            raise GenerationError("The ONNX generator is not available.")
        number, inbox = worker.open()
        new: list[int] = []
        cancel_sent = False
        try:
            worker.send(
                {
                    "op": "generate",
                    "id": number,
                    "ids": run.ids,
                    "max_new_tokens": run.max_new_tokens,
                    "stop": run.stop,
                    "temperature": run.temperature,
                }
            )
            while True:
                if run.cancel.is_set() and not cancel_sent:
                    worker.send({"op": "cancel", "id": number})
                    cancel_sent = True
                try:
                    message = inbox.get(timeout=CANCEL_POLL_S)
                except queue.Empty:
                    continue
                if "token" in message:
                    new.append(int(message["token"]))
                    if emit is not None:
                        emit([new[-1]])
                elif "done" in message:
                    done = message["done"]
                    run.completion_tokens = int(done["completion_tokens"])
                    run.cached_tokens = int(done["cached_tokens"])
                    run.stopped = bool(done["stopped"])
                    return new
                elif "error" in message:
                    raise GenerationError(f"The model failed while generating ({message['error']}).")
                elif "gone" in message:
                    raise GenerationError(message["gone"])
        finally:
            worker.release(number)

    def _result_of(self, run: _Run, text: str, stopped: bool | None = None) -> GenerationResult:
        """The :class:`GenerationResult` of ``run`` once its text is complete (``stopped``: as for :func:`finished`)."""
        return finished(
            text, run.stop, run.prompt_tokens, run.completion_tokens, run.max_new_tokens, run.cached_tokens, stopped
        )
