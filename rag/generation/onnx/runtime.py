"""Whether the local generator runs on ONNX Runtime GenAI or on transformers here.

Decided without importing torch: ``generator_runtime`` ``auto`` (the default) takes ONNX Runtime
on a CPU for a model whose weights are on disk, ``onnx`` makes it mandatory (a clear error where
it cannot run), ``transformers`` never uses it. GPUs always use transformers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rag.config import Settings
from rag.embedding import pick_device
from rag.errors import ConfigError
from rag.generation.packaged import SPLIT_MODELS
from rag.generation.weights import DEFAULT_MODEL

RUNTIMES = ("auto", "onnx", "transformers")


def runtime_for(settings: Settings) -> str:
    """``"onnx"`` or ``"transformers"``: how ``settings.generator_model`` runs here.

    Decided without importing torch: ``auto`` takes ONNX Runtime when the device is a CPU,
    ``onnxruntime_genai`` is installed and the model is one whose weights are on disk (the
    packaged default, a ``.gguf`` file or a local folder)."""
    setting = settings.generator_runtime
    if setting not in RUNTIMES:
        raise ConfigError(f"generator_runtime must be one of {', '.join(RUNTIMES)}, not '{setting}'.")
    if setting == "transformers":
        return "transformers"
    cpu = pick_device(settings.device) == "cpu"
    # The model's process is fed through a pipe polled with select(), which Windows lacks for pipes.
    installed = importlib.util.find_spec("onnxruntime_genai") is not None and sys.platform != "win32"
    local = _weights_on_disk(settings.generator_model)
    if setting == "onnx":
        if not cpu:
            raise ConfigError(
                "generator_runtime 'onnx' runs on a CPU only; set device to cpu or the runtime to transformers."
            )
        if not installed:
            raise ConfigError(
                "generator_runtime 'onnx' needs onnxruntime-genai; run: pip install onnxruntime-genai onnx-ir"
            )
        if not local:
            raise ConfigError(
                f"generator_runtime 'onnx' needs the model's files on disk; '{settings.generator_model}' "
                "is neither the packaged default, a .gguf file nor a local folder."
            )
        return "onnx"
    if settings.generator_quantize != "none":
        return "transformers"  # dynamic int8 is a torch feature
    return "onnx" if cpu and installed and local else "transformers"


def _weights_on_disk(name: str) -> bool:
    if name == DEFAULT_MODEL or name in SPLIT_MODELS:
        return True
    path = Path(name).expanduser()
    return (path.suffix.lower() == ".gguf" and path.is_file()) or (path / "config.json").is_file()
