"""Query embeddings through ONNX Runtime, for search latency on a CPU.

One short question through PyTorch costs ~15 ms with all-MiniLM-L6-v2 on two cores, nearly all
of it per-operator overhead; the same weights exported to ONNX answer in ~5 ms and give the same
vector (checked at export). For batches of 256-token chunks both runtimes are equally fast in
fp32; documents go through an int8 copy of this export instead (:mod:`rag.document_encoding`).
A server that only answers questions never imports sentence-transformers, which is most of a
warm start.

Only models whose sentence-transformers pipeline is a transformer, mean pooling and (optionally)
normalisation can be exported this way; anything else keeps the sentence-transformers path. The
exported file lives under ``<model_cache_dir>/query-encoders/<key>/`` and is written once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.text.model_tokens import share_of

log = logging.getLogger(__name__)

# Inputs the check at export compares between PyTorch and ONNX Runtime.
PROBES = ("How long is the Great Wall of China?", "长城全长多少公里？", "x")
MAX_DIFFERENCE = 1e-4  # largest allowed difference of one normalised vector component
FORMAT_VERSION = "1"  # bump when the export changes, so old copies are not reused


class UnsupportedModel(Exception):
    """The model's sentence-transformers pipeline is not transformer + mean pooling."""


def pipeline_of(model_dir: Path) -> dict[str, Any]:
    """The pooling and length settings of a local sentence-transformers model folder.

    Raises :class:`UnsupportedModel` unless the folder holds a transformer followed by mean
    pooling and, optionally, normalisation.
    """
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        raise UnsupportedModel(f"{model_dir} has no modules.json")
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModel(f"pipeline {kinds} is not transformer + pooling (+ normalize)")
    pooling_dir = model_dir / modules[1].get("path", "1_Pooling")
    pooling = json.loads((pooling_dir / "config.json").read_text(encoding="utf-8"))
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True]
    if modes != ["pooling_mode_mean_tokens"]:
        raise UnsupportedModel(f"pooling {modes} is not mean pooling")
    max_length = 512
    bert_config = model_dir / "sentence_bert_config.json"
    if bert_config.is_file():
        max_length = int(json.loads(bert_config.read_text(encoding="utf-8")).get("max_seq_length") or max_length)
    return {"max_length": max_length}


def cache_key(model_dir: Path) -> str:
    """Names the exported copy; changes when the model's files or the export format change.

    The folder of a packaged model is often just "model", so its parent names it too."""
    digest = hashlib.sha256(FORMAT_VERSION.encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model_dir.parent.name}-{model_dir.name}")
    return f"{label}-{digest.hexdigest()[:16]}"


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors under the attention mask, L2-normalised."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    vectors = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


def export(model_dir: Path, target: Path, input_names: Sequence[str]) -> None:
    """Write ``model.onnx`` for the transformer in ``model_dir`` into ``target``."""
    import torch
    from transformers import AutoModel

    # Eager attention traces into plain operators; the fused kernels may not export.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(input_names, inputs))).last_hidden_state

    sample = tuple(torch.ones((1, 4), dtype=torch.long) for _ in input_names)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*input_names, "last_hidden_state")}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow
        torch.onnx.export(
            LastHiddenState(model),
            sample,
            str(target / "model.onnx"),
            input_names=list(input_names),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def reference_vectors(model_dir: Path, tokenizer: Any, texts: Sequence[str], max_length: int) -> np.ndarray:
    """The same texts through PyTorch, to check the export against."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state.numpy()
    return mean_pool(hidden, batch["attention_mask"].numpy())


class OnnxQueryEncoder:
    """Embeds short texts (questions) with an ONNX Runtime copy of a sentence-transformers model."""

    def __init__(self, session: Any, tokenizer: FastTokenizer) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(cls, model_dir: str | Path, cache_dir: Path | None, threads: int | None = None) -> OnnxQueryEncoder:
        """The encoder for ``model_dir``, exported on first use and read from the cache after.

        Raises :class:`UnsupportedModel` for models this cannot reproduce, ``ImportError``
        without onnxruntime, and ``RuntimeError`` when the export does not match PyTorch.
        """
        import onnxruntime

        model_dir = Path(model_dir)
        folder = cls.exported(model_dir, cache_dir)
        tokenizer = FastTokenizer(model_dir, pipeline_of(model_dir)["max_length"])
        return cls(cls._session(onnxruntime, folder / "model.onnx", threads), tokenizer)

    @classmethod
    def exported(cls, model_dir: str | Path, cache_dir: Path | None) -> Path:
        """The cache folder holding the checked fp32 ``model.onnx`` of ``model_dir``, exported
        on first use; raises as :meth:`load` does."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise UnsupportedModel(f"{model_dir} is not a local model folder")
        max_length = pipeline_of(model_dir)["max_length"]
        root = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "rag-service"
        folder = root / "query-encoders" / cache_key(model_dir)
        if not (folder / "model.onnx").is_file():
            cls._build(model_dir, folder, max_length)
        return folder

    @classmethod
    def _build(cls, model_dir: Path, folder: Path, max_length: int) -> None:
        """Export beside the final folder, check it against PyTorch, then move it into place."""
        import onnxruntime
        from transformers import AutoTokenizer

        reference_tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        names = [
            n for n in reference_tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")
        ]
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            log.info("Exporting %s to ONNX for query embeddings (once).", model_dir)
            export(model_dir, staging, names)
            encoder = cls(cls._session(onnxruntime, staging / "model.onnx", None), FastTokenizer(model_dir, max_length))
            expected = reference_vectors(model_dir, reference_tokenizer, PROBES, max_length)
            difference = float(np.abs(encoder.encode(PROBES) - expected).max())
            if difference > MAX_DIFFERENCE:
                raise RuntimeError(f"the ONNX copy of {model_dir} differs from PyTorch by {difference:.2g}")
            try:
                staging.rename(folder)
            except OSError:
                if not (folder / "model.onnx").is_file():  # another process may have won the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _session(onnxruntime: Any, path: Path, threads: int | None) -> Any:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle worker threads must not spin: generation runs beside searches on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised mean-pooled vectors for ``texts`` from the ONNX model."""
        batch = self.tokenizer.batch(texts)
        hidden = self.session.run(None, {name: batch[name] for name in self.input_names})[0]
        return mean_pool(hidden, batch["attention_mask"])

    def unknown_ratio(self, text: str) -> float:
        """Share of the text's tokens that are the tokenizer's unknown token."""
        return self.tokenizer.unknown_ratio(text)


class FastTokenizer:
    """The model's ``tokenizer.json`` through the ``tokenizers`` library alone: loading
    transformers' tokenizer classes would import torch, seconds of a server's start."""

    def __init__(self, model_dir: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise UnsupportedModel(f"{model_dir} has no tokenizer.json")
        config_path = model_dir / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.enable_truncation(max_length)
        pad = _token_text(config.get("pad_token")) or "[PAD]"
        pad_id = self._tokenizer.token_to_id(pad)
        if pad_id is None:
            raise UnsupportedModel(f"{model_dir}'s tokenizer has no padding token {pad!r}")
        self._unpadded = Tokenizer.from_file(str(path))
        self._unpadded.enable_truncation(max_length)
        self._unpadded.no_padding()
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad)
        self.pad_id = pad_id
        unk = _token_text(config.get("unk_token"))
        self.unk_id = self._tokenizer.token_to_id(unk) if unk else None

    def batch(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Model inputs (ids, attention mask, token types) for ``texts``, padded to the longest."""
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    def encode_unpadded(self, texts: Sequence[str]) -> list[Any]:
        """``tokenizers`` encodings of the texts, truncated but not padded (see :meth:`pad`)."""
        return self._unpadded.encode_batch(list(texts))

    def pad(self, encodings: Sequence[Any]) -> dict[str, np.ndarray]:
        """Model inputs for encodings of :meth:`encode_unpadded`, padded to the longest."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            types[row, :n] = e.type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def unknown_ratio(self, text: str) -> float:
        """Share of the text's tokens (without special tokens) that are the unknown token."""
        return share_of(self._tokenizer.encode(text, add_special_tokens=False).ids, self.unk_id)


def _token_text(token: Any) -> str | None:
    """A special token from tokenizer_config.json, written as a string or as {"content": ...}."""
    if isinstance(token, dict):
        return token.get("content")
    return token if isinstance(token, str) else None
