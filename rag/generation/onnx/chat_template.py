"""The model's chat template, rendered without transformers (the worker and the server need
only ``jinja2`` and the export's ``tokenizer_config.json``)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from rag.errors import GenerationError
from rag.generation.base import Message


class ChatTemplate:
    """The model's Jinja chat template, rendered without transformers (same environment
    settings transformers uses: trimmed blocks, sandboxed)."""

    def __init__(self, source: str | None, special: dict[str, str]) -> None:
        self.source = source
        self.special = special
        self._template = None
        if source:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise_template_error
            env.globals["strftime_now"] = lambda fmt: time.strftime(fmt)
            env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
            self._template = env.from_string(source)

    @classmethod
    def from_folder(cls, folder: Path) -> ChatTemplate:
        """The template of the model in ``folder`` (from its ``tokenizer_config.json`` or
        ``chat_template.jinja``), with its special tokens."""
        config: dict = {}
        if (folder / "tokenizer_config.json").is_file():
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        source = config.get("chat_template")
        if isinstance(source, list):  # named templates: take the default one
            source = next((t.get("template") for t in source if t.get("name") == "default"), None)
        if not source and (folder / "chat_template.jinja").is_file():
            source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        special = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
        return cls(source, special)

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for ``messages``, opened for the assistant's reply (a plain
        transcript for a model without a template)."""
        if self._template is None:  # a base model: a plain transcript it can continue
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n\n".join(lines) + "\n\nAssistant:"
        return self._template.render(messages=list(messages), add_generation_prompt=True, **self.special)


def _raise_template_error(message: str) -> None:
    raise GenerationError(f"The model's chat template refused the conversation: {message}")
