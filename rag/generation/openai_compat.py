"""Any server that speaks the OpenAI chat-completions protocol (vLLM, llama.cpp server, Ollama,
TGI, OpenAI itself, or this service's own ``/v1/chat/completions``).

Configured by ``openai_base_url`` (as the OpenAI client takes it, usually ending in ``/v1``),
``openai_model`` and optionally ``openai_api_key``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from rag.config import Settings
from rag.errors import ConfigError, GenerationError
from rag.generation.base import GenerationResult, Message, StopSequences, TextStream, estimate_tokens, find_stop


class OpenAICompatibleGenerator:
    """Chat completions over HTTP, whole or streamed as server-sent events."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        context_tokens: int = 2048,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise ConfigError(
                "generator is 'openai' but openai_base_url is empty; set it to the server's URL, e.g. http://localhost:8000/v1."
            )
        if not model:
            raise ConfigError(
                "generator is 'openai' but openai_model is empty; set it to a model name the server serves."
            )
        base_url = base_url.rstrip("/")
        if base_url.endswith("/chat/completions"):
            base_url = base_url[: -len("/chat/completions")]
        self.base_url = base_url
        self.model = model
        self.name = model
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = list(stop or [])
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url, headers=headers, transport=transport, timeout=httpx.Timeout(timeout, connect=10.0)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleGenerator:
        """The client ``settings`` describe (``openai_*``, window, limits and stops)."""
        return cls(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.context_tokens,
            settings.max_new_tokens,
            settings.temperature,
            settings.stop,
            settings.openai_timeout,
        )

    # -- the Generator protocol -------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """``context_tokens``: the server's window is not asked for."""
        return self.context_tokens

    def warm_up(self) -> None:
        """Nothing to load; the server is reached on the first request (it may start later)."""

    def count_tokens(self, text: str) -> int:
        """An estimate of ``text``'s tokens (the server's tokenizer is out of reach)."""
        return estimate_tokens(text)

    def generate(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> GenerationResult:
        """The server's reply to ``messages``, cut at a stop sequence also when the server ignores them."""
        body = self._body(messages, max_new_tokens, stop, temperature, stream=False)
        data = self._post(body)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GenerationError(
                f"The server at {self.base_url} answered without a chat completion ({str(data)[:200]})."
            ) from exc
        # Servers that ignore ``stop`` still get their text cut here.
        cut = find_stop(text, self._stops(stop))
        if cut is not None:
            text = text[:cut]
        usage = data.get("usage") or {}
        return GenerationResult(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or self._estimate_prompt(messages)),
            completion_tokens=int(usage.get("completion_tokens") or estimate_tokens(text)),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    def stream(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> TextStream:
        """The same reply as :meth:`generate`, as the server streams it."""
        body = self._body(messages, max_new_tokens, stop, temperature, stream=True)
        stopper = StopSequences(self._stops(stop))
        state: dict[str, Any] = {"finish_reason": "stop", "usage": {}}

        def pieces() -> Iterator[str]:
            for event in self._events(body):
                if event.get("usage"):
                    state["usage"] = event["usage"]
                for choice in event.get("choices") or []:
                    if choice.get("finish_reason"):
                        state["finish_reason"] = choice["finish_reason"]
                    delta = (choice.get("delta") or {}).get("content") or ""
                    shown = stopper.feed(delta) if delta else ""
                    if shown:
                        yield shown
                if stopper.stopped:
                    return
            tail = stopper.flush()
            if tail:
                yield tail

        def finish(text: str) -> GenerationResult:
            usage = state["usage"]
            return GenerationResult(
                text=text,
                prompt_tokens=int(usage.get("prompt_tokens") or self._estimate_prompt(messages)),
                completion_tokens=int(usage.get("completion_tokens") or estimate_tokens(text)),
                finish_reason="length" if state["finish_reason"] == "length" and not stopper.stopped else "stop",
            )

        return TextStream(pieces(), finish)

    # -- HTTP -------------------------------------------------------------------------------

    def _body(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None,
        stop: Sequence[str] | None,
        temperature: float | None,
        stream: bool,
    ) -> dict[str, Any]:
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": self.max_new_tokens if max_new_tokens is None else max_new_tokens,
            "temperature": self.temperature if temperature is None else temperature,
            "stream": stream,
        }
        stops = self._stops(stop)
        if stops:
            body["stop"] = stops[:4]  # the OpenAI API accepts at most four
        return body

    def _stops(self, stop: Sequence[str] | None) -> list[str]:
        return [s for s in (self.stop if stop is None else stop) if s]

    def _estimate_prompt(self, messages: Sequence[Message]) -> int:
        return sum(estimate_tokens(m["content"]) + 4 for m in messages)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        self._check(response)
        try:
            return response.json()
        except ValueError as exc:
            raise GenerationError(
                f"The server at {self.base_url} answered with something that is not JSON ({response.text[:200]!r})."
            ) from exc

    def _events(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The JSON payloads of a server-sent-event stream, up to ``data: [DONE]``."""
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:") :].strip()
                    if payload == "[DONE]":
                        return
                    try:
                        event = json.loads(payload)
                    except ValueError as exc:
                        raise GenerationError(
                            f"The server at {self.base_url} sent a malformed stream event ({payload[:200]!r})."
                        ) from exc
                    if "error" in event:
                        raise GenerationError(
                            f"The server at {self.base_url} failed while streaming: {str(event['error'])[:200]}"
                        )
                    yield event
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.HTTPError) -> GenerationError:
        if isinstance(exc, httpx.TimeoutException):
            return GenerationError(
                f"The model server at {self.base_url} did not answer in time ({exc.__class__.__name__}); "
                "check that it is running, or raise openai_timeout."
            )
        return GenerationError(
            f"Could not reach the model server at {self.base_url} ({exc.__class__.__name__}: {exc}); "
            "check openai_base_url and that the server is running."
        )

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        detail = response.text[:200].strip()
        if response.status_code in (401, 403):
            raise GenerationError(
                f"The model server at {self.base_url} refused the request (HTTP {response.status_code}); "
                "check openai_api_key."
            )
        if response.status_code == 404:
            raise GenerationError(
                f"The model server has no {self.base_url}/chat/completions (HTTP 404: {detail}); "
                "openai_base_url usually ends in /v1, and openai_model must be a model it serves."
            )
        raise GenerationError(f"The model server at {self.base_url} answered HTTP {response.status_code}: {detail}")

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self._client.close()
