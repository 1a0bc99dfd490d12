"""What the answer pipeline needs from a language model, and the pieces every backend shares.

A generator takes chat messages (``[{"role": "system" | "user" | "assistant", "content": ...}]``)
and returns text, whole or in pieces. Backends: ``transformers_lm`` and ``onnx`` (a local
causal LM, run by transformers or by ONNX Runtime GenAI) and ``openai_compat`` (any server
speaking the OpenAI chat-completions protocol).
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rag.errors import GenerationError

Message = dict[str, str]


@dataclass
class GenerationResult:
    """A finished generation: the text (stop sequence and end-of-turn marker removed) and its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "stop" (end of turn or a stop sequence) or "length"
    cached_tokens: int = 0  # prompt tokens whose keys/values were reused, not read again


@runtime_checkable
class Generator(Protocol):
    """A chat language model."""

    name: str

    @property
    def context_window(self) -> int:
        """Tokens the prompt and the completion must share."""

    def warm_up(self) -> None:
        """Load weights (or check the server) now instead of on the first request."""

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's vocabulary (an estimate for remote models)."""

    def generate(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> GenerationResult:
        """The model's reply to ``messages``; ``None`` arguments take the configured defaults."""

    def stream(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> TextStream:
        """The same reply as :meth:`generate`, as text pieces while they are produced."""


class TextStream(Iterator[str]):
    """An iterator of text pieces that knows the whole result once it is exhausted.

    ``result`` is ``None`` until the last piece has been read; then it holds the same
    :class:`GenerationResult` :meth:`Generator.generate` would have returned. ``close()`` (or
    leaving a ``for`` loop early and dropping the stream) stops the generation.
    """

    def __init__(
        self,
        pieces: Iterator[str],
        finish: Callable[[str], GenerationResult],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._pieces = pieces
        self._make_result = finish
        self._on_close = on_close
        self._parts: list[str] = []
        self.result: GenerationResult | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        try:
            piece = next(self._pieces)
        except StopIteration:
            if self.result is None:
                self.result = self._make_result("".join(self._parts))
                self._close_quietly()
            raise
        except BaseException:
            self._close_quietly()
            raise
        self._parts.append(piece)
        return piece

    def close(self) -> None:
        """Stop generating; pieces not yet read are dropped."""
        self._close_quietly()
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def _close_quietly(self) -> None:
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def __del__(self) -> None:  # a client that hangs up mid-stream must not leave a model running
        self._close_quietly()


class TextDeltas:
    """Hands the generated text over as it grows, token by token; a piece is held back only
    while its last character is incomplete (byte-level tokens can split one character).

    transformers' ``TextIteratorStreamer`` shows a Latin word only once a space follows it, so
    an answer opening with "1973年" or a name reached the reader several tokens late.
    Implements the ``put``/``end`` streamer protocol of transformers' ``generate``; a backend
    with its own decoding loop calls ``add`` and ``end``. Iterate to read the pieces.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._ids: list[int] = []
        self._shown = 0
        self._prompt_skipped = False
        self._queue: queue.Queue = queue.Queue()

    def put(self, value: Any) -> None:
        """transformers' streamer hook: the token ids ``generate`` picked (the first call, the prompt, is skipped)."""
        if not self._prompt_skipped:  # generate() first passes the prompt
            self._prompt_skipped = True
            return
        self.add(int(i) for i in value.reshape(-1).tolist())

    def add(self, ids: Iterable[int]) -> None:
        """New token ids (for callers that run the decoding loop themselves)."""
        self._ids.extend(ids)
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd") or len(text) <= self._shown:
            return
        self._queue.put(text[self._shown :])
        self._shown = len(text)

    def end(self) -> None:
        """Hand over whatever text is left (an incomplete last character included) and end the pieces."""
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True) if self._ids else ""
        if len(text) > self._shown:  # an incomplete last character, as it stands
            self._queue.put(text[self._shown :])
            self._shown = len(text)
        self._queue.put(None)

    def __iter__(self) -> Iterator[str]:
        while True:
            piece = self._queue.get()
            if piece is None:
                return
            yield piece


def answer_room(prompt_tokens: int, window: int, wanted: int) -> int:
    """New tokens a generation may take: ``wanted``, within what the window leaves after the
    prompt; raises :class:`~rag.errors.GenerationError` when the prompt alone fills it."""
    room = window - prompt_tokens
    if room <= 0:
        raise GenerationError(
            f"The prompt takes {prompt_tokens} tokens but the model reads at most {window}; "
            "shorten the question or the conversation, or lower top_k."
        )
    return max(1, min(wanted, room))


def finished(
    text: str,
    stop: Sequence[str],
    prompt_tokens: int,
    completion_tokens: int,
    max_new_tokens: int,
    cached_tokens: int,
    stopped: bool | None = None,
) -> GenerationResult:
    """The result of a local generation. ``stopped`` says whether a stop sequence was already
    cut off (streaming); ``None`` looks for one in ``text``."""
    if stopped is None:
        cut = find_stop(text, stop)
        stopped = cut is not None
        if cut is not None:
            text = text[:cut]
    reason = "length" if completion_tokens >= max_new_tokens and not stopped else "stop"
    return GenerationResult(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=reason,
        cached_tokens=cached_tokens,
    )


def threaded_stream(
    work: Callable[[], None],
    pieces: Iterable[str],
    stop: Sequence[str],
    cancel: threading.Event,
    finish: Callable[[str, bool], GenerationResult],
) -> TextStream:
    """A :class:`TextStream` over a generation that runs in a thread of its own.

    ``work`` generates and feeds ``pieces`` (it must end them, also when it fails); the text is
    cut at the first of the ``stop`` sequences, which also sets ``cancel`` for the generation
    to stop. ``finish(text, stopped)`` makes the result once the pieces are read; a failure of
    ``work`` is raised to the reader as a :class:`~rag.errors.GenerationError`.
    """
    failure: list[Exception] = []

    def run() -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - handed to the reading thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="generate", daemon=True)
    thread.start()
    stopper = StopSequences(stop)

    def shown() -> Iterator[str]:
        for piece in pieces:
            text = stopper.feed(piece)
            if text:
                yield text
            if stopper.stopped:
                cancel.set()
                break
        tail = stopper.flush()
        if tail:
            yield tail
        thread.join()
        if failure:
            raise GenerationError(f"The model failed while generating ({failure[0]}).") from failure[0]

    def done(text: str) -> GenerationResult:
        thread.join()
        return finish(text, stopper.stopped)

    return TextStream(shown(), done, on_close=cancel.set)


class StopSequences:
    """Cut generated text at the first stop sequence, also when it arrives split over pieces.

    ``feed`` returns the text that is safe to show now: anything that might be the start of a
    stop sequence is held back until the next piece shows whether it is one.
    """

    def __init__(self, stops: Iterable[str] | None) -> None:
        self.stops = [s for s in (stops or []) if s]
        self._held = ""
        self._started = False  # visible text was shown already
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The part of ``text so far + piece`` that is safe to show now; nothing once a stop sequence was found."""
        if self.stopped:
            return ""
        text = self._held + piece
        cut = find_stop(text, self.stops, self._started)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return text[:cut]
        keep = _partial_stop_suffix(text, self.stops)
        self._held = text[len(text) - keep :] if keep else ""
        shown = text[: len(text) - keep]
        self._started = self._started or bool(shown.strip())
        return shown

    def flush(self) -> str:
        """Text held back at the end of the generation (it turned out not to be a stop)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


def find_stop(text: str, stops: Sequence[str], started: bool = False) -> int | None:
    """Index of the earliest stop sequence in ``text``, or ``None``.

    A stop made only of white space (such as a blank line) counts after the first visible
    character: a model that opens with a line break has not finished yet. ``started`` says
    that visible text came before ``text``."""
    lead = 0 if started else len(text) - len(text.lstrip())
    positions = [i for i in (text.find(s, lead if s.isspace() else 0) for s in stops if s) if i >= 0]
    return min(positions) if positions else None


def _partial_stop_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that is the beginning of some stop sequence."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


_CJK_CHAR_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token estimate: one per CJK character, one per ~4 other characters.

    Used only where the model's tokenizer is out of reach (a remote server); it errs on the
    high side for English so prompts sized with it still fit.
    """
    cjk = len(_CJK_CHAR_RE.findall(text))
    other = len(text) - cjk
    return cjk + (other + 3) // 4
