"""Generators: chat messages in, text out (see :mod:`rag.generation.base` for the protocol).

``settings.generator`` picks the backend:

- ``transformers``: a local causal LM (default SmolLM2-135M-Instruct, shipped in a PyPI package),
  run by ONNX Runtime GenAI on a CPU (``onnx_lm``) or by transformers (``transformers_lm``);
- ``openai``: any OpenAI-compatible chat-completions server.
"""

from __future__ import annotations

from rag.config import Settings
from rag.errors import ConfigError
from rag.generation.base import GenerationResult, Generator, Message, TextStream

BACKENDS = ("transformers", "openai")


def make_generator(settings: Settings) -> Generator:
    """The generator named by ``settings.generator``; light until ``warm_up()`` or first use."""
    if settings.generator == "transformers":
        from rag.generation.onnx_lm import OnnxGenerator, runtime_for
        from rag.generation.transformers_lm import TransformersGenerator

        if runtime_for(settings) == "onnx":
            fallback = TransformersGenerator.from_settings(settings) if settings.generator_runtime == "auto" else None
            return OnnxGenerator.from_settings(settings, fallback)
        return TransformersGenerator.from_settings(settings)
    if settings.generator == "openai":
        from rag.generation.openai_compat import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator.from_settings(settings)
    raise ConfigError(f"Unknown generator '{settings.generator}'; choose one of: {', '.join(BACKENDS)}.")


__all__ = ["BACKENDS", "GenerationResult", "Generator", "Message", "TextStream", "make_generator"]
