"""Reuse of attention keys and values between prompts that begin alike.

Every answer prompt of one language starts with the same rules and worked example (about 214
tokens in English and 404 in Chinese for SmolLM2's tokenizer), and a conversation resends all
its earlier turns. Reading those tokens again costs ~2.3 ms each on two CPU cores, so the
generator keeps the key/value cache of its last few prompts, finds the one sharing the longest
token prefix with a new prompt, cuts it back to that prefix and lets the model read only the
rest. The idea is the prefix caching of vLLM and llama.cpp, here for transformers'
``DynamicCache`` and for onnxruntime-genai's generators (``rag.generation.onnx.worker``):
anything with ``get_seq_length()`` and ``crop(n)``.

Not thread-safe: the generator uses it under its one-generation-at-a-time lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class _Slot:
    tokens: list[int]  # the token ids whose keys/values the cache holds, in order
    cache: Any  # a DynamicCache, or anything with get_seq_length() and crop(n)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens ``a`` and ``b`` share at their start."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PromptCache:
    """The key/value caches of the last ``slots`` prompts, most recently used last."""

    def __init__(self, new_cache: Callable[[], Any], slots: int = 4, min_reuse: int = 16) -> None:
        self.new_cache = new_cache
        self.slots = slots
        self.min_reuse = min_reuse
        self._slots: list[_Slot] = []

    def lease(self, tokens: Sequence[int]) -> tuple[Any, int]:
        """A cache to generate ``tokens`` with, and how many leading tokens it already holds.

        The cache is taken out of the pool (generation changes it); give it back with
        :meth:`keep`. At least the last prompt token is always left to read, since the model
        needs its output to pick the first new token.
        """
        best, length = None, 0
        for slot in self._slots:
            shared = min(common_prefix(slot.tokens, tokens), len(tokens) - 1)
            if shared > length:
                best, length = slot, shared
        if best is None or length < self.min_reuse or self.slots <= 0:
            return self.new_cache(), 0
        self._slots.remove(best)
        surplus = best.cache.get_seq_length() - length
        if surplus > 0:
            best.cache.crop(-surplus)
        return best.cache, length

    def keep(self, cache: Any, tokens: Sequence[int]) -> None:
        """Return a cache after generation; ``tokens`` are the prompt and generated ids."""
        if self.slots <= 0:
            return
        held = cache.get_seq_length()
        if held <= 0 or held > len(tokens):
            return
        self._slots.append(_Slot(list(tokens[:held]), cache))
        del self._slots[: -self.slots]
