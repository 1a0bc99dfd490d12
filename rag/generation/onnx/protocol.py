"""The messages between the server and the model's process: JSON objects, one a line.

The server starts ``python -m rag.generation.onnx.worker EXPORT_DIR WINDOW SLOTS PARALLEL``
(:data:`WORKER_MODULE`) and writes requests to its standard input; each request and each answer
is about one generation, named by its ``id``:

- the worker says ``{"ready": true, "seconds": ...}`` once the model is loaded (or
  ``{"error": ...}`` and exits);
- ``{"op": "generate", "id": i, "ids": [...], "max_new_tokens": n, "stop": [...],
  "temperature": t}`` is answered with one ``{"id": i, "token": t}`` per picked token, then
  ``{"id": i, "done": {"completion_tokens": n, "cached_tokens": n, "stopped": bool}}`` or
  ``{"id": i, "error": message}``;
- ``{"op": "cancel", "id": i}`` ends generation ``i`` before its next token;
- ``{"op": "extract", "id": i, "ids": [...], "texts": [[...], ...], "stop_ids": [...],
  "method": m, "starts": k, "max_tokens": n, "edges": [[[start_ok, end_ok], ...], ...],
  "no_answer": [...], "prior": [[[start_bonus, end_bonus], ...], ...]}`` reads the prompt and
  answers with one ``{"id": i, "done": {"span": [text, start, end, logprob, first_logprob,
  steps, no_answer_logprob] | null, "cached_tokens": n}}``: the run of a text's tokens the
  model most likely answers with (:mod:`rag.generation.spans`). It is one unit of work: the
  answers under way wait for it;
- ``{"op": "score", "id": i, "ids": [...], "continuation": [...]}`` is answered with
  ``{"id": i, "done": {"logprob": total, "tokens": n, "cached_tokens": n}}``: the model's
  log-probability of the continuation after the prompt (eval's perplexity).

The server's reader also puts ``{"gone": reason}`` into the inbox of every generation still
waiting when the process ends; the worker never writes it.
"""

from __future__ import annotations

import json

from rag.generation.spans import SpanChoice

WORKER_MODULE = "rag.generation.onnx.worker"
# What a generation cancelled before it began is answered with.
NOTHING_GENERATED = {"completion_tokens": 0, "cached_tokens": 0, "stopped": False}


def encode(message: dict) -> str:
    """``message`` as one line of the protocol, newline included."""
    return json.dumps(message) + "\n"


def failure(exc: BaseException) -> str:
    """What an ``error`` message says about ``exc``: its class and the start of its text."""
    return f"{exc.__class__.__name__}: {str(exc)[:300]}"


def span_message(choice: SpanChoice | None) -> list | None:
    """The ``span`` of an ``extract`` answer: ``choice``'s fields in order, or ``None``."""
    if choice is None:
        return None
    return [
        choice.text,
        choice.start,
        choice.end,
        choice.logprob,
        choice.first_logprob,
        choice.steps,
        choice.no_answer_logprob,
    ]


def span_choice(span: list | None) -> SpanChoice | None:
    """The :class:`~rag.generation.spans.SpanChoice` an ``extract`` answer's ``span`` describes."""
    if span is None:
        return None
    return SpanChoice(
        int(span[0]),
        int(span[1]),
        int(span[2]),
        float(span[3]),
        float(span[4]),
        int(span[5]),
        None if span[6] is None else float(span[6]),
    )
