"""Document embeddings through an int8 ONNX Runtime copy of the embedder, for ingest speed on a CPU.

Embedding is nearly all of an ingest's time on a CPU, and fp32 PyTorch and fp32 ONNX Runtime
are equally fast for batches of 256-token chunks. Weights quantised to int8 make the matrix
products faster (~1.5x here). Quantising every matrix product of all-MiniLM-L6-v2 costs too
much accuracy (cosine to the fp32 vector 0.86 on CMRC 2018 chunks): the feed-forward
down-projections read the GELU output, whose range one int8 scale per tensor cannot cover, so
those stay fp32 and the rest go int8 (cosine to fp32 on CMRC chunks >= 0.99; recall in
``bench/README.md``).

The quantised file is made once from the checked fp32 export of :mod:`rag.query_encoding`,
compared with it on probe passages (it is refused when a vector strays), and cached beside it.
Questions keep the fp32 encoder: their vectors and the documents' are in the same space, and
the small error lands on one side only.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.query_encoding import FastTokenizer, OnnxQueryEncoder, mean_pool, pipeline_of

log = logging.getLogger(__name__)

QUANT_VERSION = "1"  # bump when the quantisation changes, so old copies are not reused
NAME = f"onnxruntime-int8-v{QUANT_VERSION}"  # what an index records as its documents' encoder
MIN_COSINE = 0.98  # every probe's int8 vector must be at least this close to fp32

# Passages the quantised copy is checked on: chunk-sized English and Chinese text.
PROBES = (
    "The Great Wall of China is a series of fortifications that were built across the historical "
    "northern borders of ancient Chinese states and Imperial China as protection against various "
    "nomadic groups from the Eurasian Steppe. Several walls were built from as early as the 7th "
    "century BC, with selective stretches later joined by Qin Shi Huang, the first emperor.",
    "Employees travelling on business may claim a daily meal allowance of 45 euros. Hotel costs "
    "are reimbursed up to 120 euros a night in most cities; receipts must be submitted within "
    "thirty days of the trip, together with the approved travel request form.",
    "长城是中国古代的军事防御工程，是一道高大、坚固而且连绵不断的长垣，用以限隔敌骑的行动。"
    "长城不是一道单纯孤立的城墙，而是以城墙为主体，同大量的城、障、亭、标相结合的防御体系。",
    "龙井茶是中国著名绿茶，产于浙江杭州西湖一带。冲泡龙井茶的水温一般在八十度左右，"
    "水温过高会破坏茶叶中的维生素，使茶汤变黄，香气降低。",
    "Opening hours",
)


def quantizable_nodes(model: Any) -> list[str]:
    """The matrix products to quantise: those with a constant weight that is not wider at its
    input than at its output (so not the feed-forward down-projection, which reads GELU's output)."""
    weights = {w.name: list(w.dims) for w in model.graph.initializer}
    chosen = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in weights:
            continue
        shape = weights[node.input[1]]
        if len(shape) == 2 and shape[0] <= shape[1]:
            chosen.append(node.name)
    return chosen


def quantize(source: Path, target: Path) -> None:
    """Write an int8 copy of the fp32 ONNX file ``source`` to ``target`` (dynamic quantisation:
    int8 weights, activations scaled per batch)."""
    import onnx

    nodes = quantizable_nodes(onnx.load(str(source)))
    if not nodes:
        raise RuntimeError(f"{source} has no matrix products to quantise")
    # The quantiser writes advice and per-tensor notes to the root logger: not for users' consoles.
    logging.disable(logging.WARNING)
    try:
        _quantize_dynamic(source, target, nodes)
    finally:
        logging.disable(logging.NOTSET)


def _quantize_dynamic(source: Path, target: Path, nodes: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # One scale per output channel, and 7-bit weights: without VNNI, x86 multiplies int8 pairs
    # into 16-bit sums that saturate on full-range weights (cosine to fp32 on CMRC chunks: min
    # 0.990 with both, 0.982 without).
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        nodes_to_quantize=nodes,
        # the traced graph leaves some shapes to run time; they are all float
        extra_options={"DefaultTensorType": 1},
    )


class OnnxDocumentEncoder:
    """Embeds passages in length-sorted batches with an int8 ONNX Runtime copy of a
    sentence-transformers model (transformer + mean pooling, as :mod:`rag.query_encoding`)."""

    name = NAME

    def __init__(self, session: Any, tokenizer: FastTokenizer, batch_size: int = 64) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(
        cls, model_dir: str | Path, cache_dir: Path | None, batch_size: int = 64, threads: int | None = None
    ) -> OnnxDocumentEncoder:
        """The encoder for ``model_dir``, quantised on first use and read from the cache after.

        Raises what :meth:`OnnxQueryEncoder.load` raises, and ``RuntimeError`` when the int8
        copy strays from the fp32 one on the probes.
        """
        model_dir = Path(model_dir)
        folder = OnnxQueryEncoder.exported(model_dir, cache_dir)
        tokenizer = FastTokenizer(model_dir, pipeline_of(model_dir)["max_length"])
        target = folder / f"model-int8-v{QUANT_VERSION}.onnx"
        if not target.is_file():
            cls._build(folder / "model.onnx", target, tokenizer)
        return cls(_session(target, threads), tokenizer, batch_size)

    @classmethod
    def _build(cls, source: Path, target: Path, tokenizer: FastTokenizer) -> None:
        """Quantise beside the final file, check it against fp32, then move it into place."""
        staging = target.with_name(f"{target.stem}.tmp-{os.getpid()}-{threading.get_ident()}.onnx")
        try:
            log.info("Quantising %s to int8 for document embeddings (once).", source)
            quantize(source, staging)
            fp32 = cls(_session(source, None), tokenizer).encode(PROBES)
            int8 = cls(_session(staging, None), tokenizer).encode(PROBES)
            worst = float((fp32 * int8).sum(axis=1).min())
            if worst < MIN_COSINE:
                raise RuntimeError(f"the int8 copy of {source} strays from fp32 (cosine {worst:.3f} < {MIN_COSINE})")
            os.replace(staging, target)
        finally:
            if staging.exists():
                staging.unlink()
            shutil.rmtree(staging.with_suffix(".data"), ignore_errors=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised vectors, one row per text, in the order given.

        Texts are tokenised once, then batched in order of token count, so each batch is padded
        only to its own longest text."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        encodings = self.tokenizer.encode_unpadded(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        out: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer.pad([encodings[i] for i in rows])
            hidden = self.session.run(None, {name: batch[name] for name in self.input_names})[0]
            vectors = mean_pool(hidden, batch["attention_mask"])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None  # texts is not empty, so the loop ran
        return out


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    # An ingest inside the API server shares the cores with answering: idle threads must not spin.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
