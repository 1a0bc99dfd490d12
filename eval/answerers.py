"""Where the answers of an evaluation come from: the answer pipeline in this process, or a
running server asked through ``POST /ask`` (its JSON rebuilt into an :class:`Answer`)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from eval.dataset import QAItem
from rag.config import Settings
from rag.documents import Answer, Chunk, Citation, SearchHit, Span
from rag.errors import RagError


class Answerer(Protocol):
    """Where answers come from: the in-process pipeline or a server."""

    description: str

    def warm_up(self) -> None: ...

    def answer(self, question: str, top_k: int | None = None, filters: dict | None = None) -> Answer: ...

    def close(self) -> None: ...


class PipelineAnswerer:
    """The answer pipeline, in this process."""

    def __init__(self, settings: Settings) -> None:
        from rag.answering import AnswerPipeline

        self.settings = settings
        self.pipeline = AnswerPipeline.from_settings(settings)
        self.description = f"in-process over {settings.index_dir}"

    def warm_up(self) -> None:
        self.pipeline.warm_up()

    def answer(self, question: str, top_k: int | None = None, filters: dict | None = None) -> Answer:
        return self.pipeline.answer(question, top_k=top_k, filters=filters)

    @property
    def generator(self) -> Any:
        return getattr(self.pipeline, "generator", None)

    def perplexity(self, item: QAItem, answer: Answer) -> float | None:
        """The generator's perplexity of the item's first gold answer, read from the best
        sentences of the passages this answer was given (the same for every generator)."""
        from rag.answering.quote import ranked_sentences
        from rag.answering.reader import reference_perplexity

        golds = item.answers or [" ".join(g) for g in item.answers_all_of]
        if not item.answerable or not golds or not answer.passages:
            return None
        evidence = ranked_sentences(
            answer.query or item.question, answer.passages, max(1, self.settings.reader_sentences)
        )
        return reference_perplexity(
            self.pipeline.generator, item.question, answer.passages, evidence, answer.language or item.lang, golds[0]
        )

    def close(self) -> None:
        pass


class HttpAnswerer:
    """A running server, asked through ``POST {url}/ask``."""

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = 600.0, answer_mode: str | None = None
    ) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.answer_mode = answer_mode
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.description = f"server at {self.url}"

    def warm_up(self, wait_s: float = 600.0) -> None:
        """Wait until the server's /health says it is ready, so the first answers are not timed with its start."""
        import httpx

        deadline = time.monotonic() + wait_s
        while True:
            try:
                response = self.client.get("/health", timeout=10)
            except httpx.HTTPError as exc:
                raise RagError(
                    f"Cannot reach the server at {self.url} ({exc.__class__.__name__}); "
                    "start it with `python -m api` or fix --url."
                ) from None
            if response.status_code != 503:
                return  # ready, or a server without this readiness protocol
            try:
                body = response.json()
            except ValueError:
                body = {}
            status = body.get("status", "unavailable")
            if status != "loading" or time.monotonic() > deadline:
                reason = body.get("error") or f"status '{status}'"
                raise RagError(f"The server at {self.url} is not ready ({reason}).")
            time.sleep(1.0)

    def answer(self, question: str, top_k: int | None = None, filters: dict | None = None) -> Answer:
        payload: dict[str, Any] = {"question": question}
        if top_k is not None:
            payload["top_k"] = top_k
        if filters:
            payload["filters"] = filters
        if self.answer_mode:
            payload["answer_mode"] = self.answer_mode
        response = self.client.post("/ask", json=payload)
        if response.status_code != 200:
            try:
                body = response.json()
                detail = body.get("detail") or body.get("error") or body
            except ValueError:
                detail = response.text[:200]
            raise RuntimeError(f"HTTP {response.status_code}: {detail}")
        return answer_from_dict(response.json())

    def close(self) -> None:
        self.client.close()


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """Rebuild an :class:`Answer` from ``Answer.to_dict()`` (what ``/ask`` returns)."""
    passages = []
    for i, p in enumerate(data.get("passages") or [], start=1):
        chunk = Chunk(
            id=str(p.get("id", "")),
            text=p.get("text", ""),
            source=p.get("source", ""),
            page=p.get("page"),
            section=p.get("section"),
            kind=p.get("kind", "text"),
            start=p.get("start", 0),
            end=p.get("end", 0),
        )
        passages.append(
            SearchHit(chunk, float(p.get("score", 0.0)), dict(p.get("scores") or {}), int(p.get("rank", i)))
        )
    citations = [
        Citation(
            number=int(c.get("number", 0)),
            chunk_id=str(c.get("chunk_id", "")),
            source=c.get("source", ""),
            page=c.get("page"),
            section=c.get("section"),
            snippet=c.get("snippet", ""),
            scores=dict(c.get("scores") or {}),
        )
        for c in data.get("citations") or []
    ]

    def span(value: Any) -> Span | None:
        if not isinstance(value, dict):
            return None
        return Span(
            int(value.get("passage", 0)),
            int(value.get("start", 0)),
            int(value.get("end", 0)),
            str(value.get("text", "")),
        )

    answer = Answer(
        answer=data.get("answer", ""),
        answerable=bool(data.get("answerable", True)),
        citations=citations,
        passages=passages,
        query=data.get("query", ""),
        language=data.get("language", ""),
        model=data.get("model", ""),
        timings_ms=dict(data.get("timings_ms") or {}),
        usage=dict(data.get("usage") or {}),
        answer_span=span(data.get("answer_span")),
        evidence=span(data.get("evidence")),
        confidence=data.get("confidence"),
        relevance=data.get("relevance"),
        no_answer=data.get("no_answer"),
        checks=list(data.get("checks") or []),
    )
    if data.get("reasoning"):
        # The hops of a multi-hop answer, kept as the server sent them (dicts).
        answer.reasoning = [dict(h) for h in data["reasoning"] if isinstance(h, dict)]
    return answer
