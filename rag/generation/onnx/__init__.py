"""The local causal LM run by ONNX Runtime GenAI on a CPU.

The same transformers model (by default SmolLM2-135M-Instruct from its GGUF), exported once to
ONNX with ``onnxruntime-genai``'s model builder, checked against transformers and cached under
``settings.model_cache_dir``. The model runs in a child process
(:mod:`rag.generation.onnx.worker`; onnxruntime-genai holds Python's lock while it reads a
prompt), which loads in parallel with the index. A server that answers with it imports neither
torch nor transformers. On these 2 cores (``python -m bench.serve_bench``, CMRC, one client),
against transformers: warm start 3.96 s instead of 12.3 s, first token after 0.84 s instead of
1.69 s, 45.8 tokens/s decoding instead of 11.4. The export (first start only) converts the
GGUF with transformers as before and runs the builder in another child process.

``generator_runtime`` picks it: ``auto`` (the default) uses it on a CPU for model families the
builder knows and falls back to transformers, with a warning, when the export fails; ``onnx``
makes it mandatory; ``transformers`` never uses it. GPUs always use transformers.

The parts: :mod:`~rag.generation.onnx.runtime` (whether it is used), :mod:`~.export` (the
export and its check), :mod:`~.chat_template`, :mod:`~.protocol` (the messages between the
server and the model's process), :mod:`~.process` (the server's side of that process),
:mod:`~.worker` (the process itself) and :mod:`~.generator` (:class:`OnnxGenerator`).
"""

from __future__ import annotations

from rag.generation.onnx.chat_template import ChatTemplate
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
from rag.generation.onnx.generator import CANCEL_POLL_S, OnnxGenerator
from rag.generation.onnx.process import WorkerProcess
from rag.generation.onnx.runtime import RUNTIMES, runtime_for

# The worker (rag.generation.onnx.worker) is not imported here: it runs as ``python -m``, and a
# package that imported it first would make runpy warn.
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
    "compare_with_transformers",
    "export_key",
    "run_builder",
    "runtime_for",
    "transformers_folder",
]
