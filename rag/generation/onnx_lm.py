"""The ONNX Runtime GenAI generator's earlier home, kept so old imports keep working.

Its code is in :mod:`rag.generation.onnx`, one module per concern; this module re-exports the
names it used to define.
"""

from __future__ import annotations

from rag.generation.onnx.chat_template import ChatTemplate, _raise_template_error
from rag.generation.onnx.export import (
    BUILDER_OPTIONS,
    BUILDER_TIMEOUT_S,
    EXPORT_MARK,
    LOGIT_TOLERANCE,
    PRECISION,
    PROBES,
    ExportCache,
    compare_with_transformers,
    export_key,
    run_builder,
    transformers_folder,
)
from rag.generation.onnx.generator import CANCEL_POLL_S, OnnxGenerator, _Run
from rag.generation.onnx.process import WorkerProcess
from rag.generation.onnx.runtime import RUNTIMES, _weights_on_disk, runtime_for

_Worker = WorkerProcess  # its name before it moved

__all__ = [
    "BUILDER_OPTIONS",
    "BUILDER_TIMEOUT_S",
    "CANCEL_POLL_S",
    "EXPORT_MARK",
    "LOGIT_TOLERANCE",
    "PRECISION",
    "PROBES",
    "RUNTIMES",
    "ChatTemplate",
    "ExportCache",
    "OnnxGenerator",
    "WorkerProcess",
    "_Run",
    "_Worker",
    "_raise_template_error",
    "_weights_on_disk",
    "compare_with_transformers",
    "export_key",
    "run_builder",
    "runtime_for",
    "transformers_folder",
]
