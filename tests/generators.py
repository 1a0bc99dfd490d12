"""Generators for tests: the real default model and SmolLM2, loaded once per test process, and a
scripted one that answers with given texts (what the checks do with a given model output)."""

from __future__ import annotations

import functools

from rag.config import Settings
from rag.generation import make_generator
from rag.generation.base import GenerationResult

GROUNDED = [
    {"role": "system", "content": "Answer only from the passage. Cite it as [1]."},
    {
        "role": "user",
        "content": "Passage [1]: The nightly hotel limit is 180 euros in most cities and 250 euros "
        "in London.\n\nQuestion: What is the nightly hotel limit in London?",
    },
]


# --- pieces shared by every backend ---------------------------------------------------------

# The generator tests run on the small packaged model, whatever the default is.
SMOLLM2 = {"generator_model": "SmolLM2-135M-Instruct"}


class ScriptedGenerator:
    """A generator that answers every prompt with the next of its scripted texts: what the
    checks do with a given model output, without a model."""

    name = "scripted"
    context_window = 2048

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.prompts: list[list[dict]] = []

    def warm_up(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)

    def generate(self, messages, max_new_tokens=None, stop=None, temperature=None) -> GenerationResult:
        self.prompts.append(list(messages))
        return GenerationResult(self.texts.pop(0), 100, 10)


@functools.lru_cache(maxsize=1)
def default_generator():
    """The default generator (the reader's model), loaded once per test process."""
    generator = make_generator(Settings.load(env={}, overrides={"device": "cpu"}))
    generator.warm_up()
    return generator


@functools.lru_cache(maxsize=1)
def shared_smollm2():
    """The default generator, loaded once per test process from the shared conversion cache
    (the first run on a machine converts the GGUF and fills the cache). Other test modules
    that need the model use this too, so it is in memory once."""
    from rag.generation.transformers_lm import TransformersGenerator

    generator = TransformersGenerator.from_settings(Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu"}))
    generator.warm_up()
    return generator


@functools.lru_cache(maxsize=1)
def shared_onnx():
    """SmolLM2 on ONNX Runtime GenAI (its worker process), loaded once per test process."""
    from rag.generation.onnx_lm import OnnxGenerator

    generator = OnnxGenerator.from_settings(Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu"}))
    generator.warm_up()
    return generator
