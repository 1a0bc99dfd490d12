"""Generators: chat messages in, text out (see :mod:`rag.generation.base` for the protocol).

``settings.generator`` picks the backend by a short name from :data:`GENERATORS`, or
``"package.module:Class"`` for a class of the user's own (checked against the protocol):

- ``local`` (also ``transformers``, its earlier name): a local causal LM (default
  Qwen2.5-Coder-0.5B-Instruct, shipped in PyPI packages), run by ONNX Runtime GenAI on a CPU
  (``onnx``) or by transformers (``transformers_lm``), as ``generator_runtime`` decides;
- ``openai``: any OpenAI-compatible chat-completions server (vLLM, llama.cpp's server, ...).
"""

from __future__ import annotations

from rag.config import Settings
from rag.errors import ConfigError
from rag.generation.base import GenerationResult, Generator, Message, TextStream

# Short names; the local backend is a function (it picks its runtime), the others classes.
GENERATORS = {
    "local": "rag.generation:local_generator",
    "transformers": "rag.generation:local_generator",  # the name before 2026-12: kept working
    "openai": "rag.generation.openai_compat:OpenAICompatibleGenerator",
}
BACKENDS = tuple(GENERATORS)
# What make_generator checks a class named by import path for (the Generator protocol).
GENERATOR_MEMBERS = ("context_window", "warm_up", "count_tokens", "generate", "stream")


def local_generator(settings: Settings) -> Generator:
    """The local causal LM, on ONNX Runtime GenAI or transformers (``generator_runtime``)."""
    from rag.generation.onnx import OnnxGenerator, runtime_for
    from rag.generation.transformers_lm import TransformersGenerator

    if runtime_for(settings) == "onnx":
        fallback = TransformersGenerator.from_settings(settings) if settings.generator_runtime == "auto" else None
        return OnnxGenerator.from_settings(settings, fallback)
    return TransformersGenerator.from_settings(settings)


def make_generator(settings: Settings) -> Generator:
    """The generator named by ``settings.generator``; light until ``warm_up()`` or first use."""
    from rag.registry import backend_class, build

    name = settings.generator
    if GENERATORS.get(name) == "rag.generation:local_generator":
        return local_generator(settings)
    cls = backend_class("generator", name, GENERATORS, GENERATOR_MEMBERS, "generator (rag.generation.base.Generator)")
    if cls is None:
        raise ConfigError(
            f"Unknown generator '{name}'; choose one of: {', '.join(BACKENDS)}, "
            "or give a class as 'package.module:Class'."
        )
    return build(cls, settings)


def is_local(settings: Settings) -> bool:
    """Whether ``settings.generator`` is the local causal LM (not a server or a user's class)."""
    return GENERATORS.get(settings.generator) == "rag.generation:local_generator"


__all__ = [
    "BACKENDS",
    "GENERATORS",
    "GenerationResult",
    "Generator",
    "Message",
    "TextStream",
    "is_local",
    "make_generator",
]
