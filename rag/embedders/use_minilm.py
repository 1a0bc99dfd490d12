"""USE multilingual v3 and all-MiniLM-L6-v2 side by side in one vector: the default embedder.

Each passage is embedded by both models and stored as the two unit vectors end to end (512 +
384 = 896 dimensions), scaled to unit length. A question is embedded the same way, with
MiniLM's half weighted by how much of the question MiniLM can read and the whole scaled so
that one inner product gives the weighted mean of the two cosine similarities::

    score = (cos_use + w * cos_minilm) / (1 + w),   w = 1 - unknown share / 0.4, floored at 0

USE-m3 reads Chinese and English into one space (an English question finds a Chinese passage);
MiniLM is the better reader of English paraphrases (dense recall@5 0.962 against USE's 0.849
on the bench's reworded English questions) and turns about half of a Chinese text into
``[UNK]``, so for a Chinese question ``w`` is 0 and USE decides alone. Figures:
``python -m bench.embedder_bench`` (bench/README.md).

Chunks are sized in MiniLM's tokens (it reads at most 256; USE reads any length), so parsing
workers load only MiniLM's tokenizer. Embedding costs MiniLM's time plus about a tenth.

``embed_model = "use-m3+minilm-l6"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.embedders.use_multilingual import UseMultilingualEmbedder

NAME = "use-m3+minilm-l6"
# The share of [UNK] tokens at which MiniLM's half of a question stops counting (as in
# rag.index.dense_weight, where all-MiniLM-L6-v2 alone ranks such questions close to randomly).
UNKNOWN_CUTOFF = 0.4


def minilm_weight(unknown_share: float) -> float:
    """Weight of MiniLM's cosine for a question with this share of ``[UNK]`` tokens."""
    return max(0.0, 1.0 - unknown_share / UNKNOWN_CUTOFF)


class UseMiniLMEmbedder:
    """Both models behind the :class:`rag.embedding.Embedder` interface."""

    name = NAME
    # The relevance gate's dense margin (rag.retrieval.HybridRetriever.dense_gate): what 95% of
    # 168 questions about documents the corpus lacks stay under (python -m bench.embedder_bench,
    # 0.168). With it, 0.50 of the reworded questions pass instead of 0.25, for 0.87 of the
    # unrelated ones refused instead of 0.90 (bench/README.md, "The relevance gate").
    relevance_margin = 0.17

    def __init__(self, minilm=None, use: UseMultilingualEmbedder | None = None) -> None:
        from rag.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder

        self.minilm = minilm if minilm is not None else SentenceTransformerEmbedder(DEFAULT_MODEL)
        self.use = use if use is not None else UseMultilingualEmbedder()

    @classmethod
    def from_settings(cls, settings) -> UseMiniLMEmbedder:
        """Both models, MiniLM set up by ``settings`` (device, batch size, encoders, model cache)."""
        from rag.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder

        minilm = SentenceTransformerEmbedder(
            DEFAULT_MODEL,
            settings.device,
            settings.embed_batch_size,
            settings.query_encoder,
            settings.model_cache_dir,
            settings.document_encoder,
        )
        return cls(minilm, UseMultilingualEmbedder())

    def warm_up(self) -> None:
        """Load both models now."""
        self.minilm.warm_up()
        self.use.warm_up()

    def warm_up_queries(self) -> None:
        """Load what both models need for queries."""
        self.minilm.warm_up_queries()
        self.use.warm_up_queries()

    @property
    def dimension(self) -> int:
        """USE's dimension plus MiniLM's: the two vectors side by side."""
        return self.use.dimension + self.minilm.dimension

    @property
    def max_tokens(self) -> int:
        """MiniLM's limit, the shorter of the two."""
        return self.minilm.max_tokens

    @property
    def tokenizer_source(self) -> str:
        """MiniLM's tokenizer, which chunking counts with."""
        return self.minilm.tokenizer_source

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in MiniLM's tokens."""
        return self.minilm.count_tokens(texts)

    def split_tokens(self, text: str, max_tokens: int) -> list[str]:
        """``text`` cut at MiniLM's token boundaries into pieces of at most ``max_tokens``."""
        return self.minilm.split_tokens(text, max_tokens)

    def unknown_ratio(self, text: str) -> float:
        """USE's share: the combined vector reads whatever USE reads (MiniLM's share only
        lowers MiniLM's weight inside :meth:`embed_queries`)."""
        return self.use.unknown_ratio(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's USE and MiniLM vectors joined into one unit vector."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._joined(self.use.embed(texts), self.minilm.embed(texts))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Passages being indexed: MiniLM through its int8 copy where there is one
        (``document_encoder``; rag/document_encoding.py), USE as always."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._joined(self.use.embed(texts), self.minilm.embed_documents(texts))

    def warm_up_documents(self) -> None:
        """Load what indexing passages needs (MiniLM's document encoder and USE)."""
        self.minilm.warm_up_documents()
        self.use.warm_up()

    @property
    def document_encoder_name(self) -> str:
        """What encodes passages, as an index records it (MiniLM's half decides)."""
        return f"{self.use.name} + {self.minilm.document_encoder_name}"

    @staticmethod
    def _joined(use: np.ndarray, minilm: np.ndarray) -> np.ndarray:
        both = np.hstack([use, minilm]) / np.sqrt(2.0)  # unit length
        return np.ascontiguousarray(both, dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors whose MiniLM half is weighted down as MiniLM's tokenizer knows fewer of the
        query's tokens."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        use = self.use.embed_queries(texts)
        minilm = self.minilm.embed_queries(texts)
        weights = np.array([minilm_weight(self.minilm.unknown_ratio(t)) for t in texts], dtype=np.float32)[:, None]
        # Passages are (u, m) / sqrt(2): this scale makes the inner product the weighted mean.
        vectors = np.hstack([use, weights * minilm]) * (np.sqrt(2.0) / (1.0 + weights))
        return np.ascontiguousarray(vectors, dtype=np.float32)
