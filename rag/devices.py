"""Which device a model runs on: the ``device`` setting resolved to ``"cpu"`` or ``"cuda"``.

Kept in a module of its own, below the embedders, the reranker and the generators, so each of
them can ask without importing another (torch is imported only when a GPU may be there).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from rag.errors import ConfigError

# Device files of the NVIDIA driver and of AMD's ROCm driver (which torch also reports as CUDA).
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


def pick_device(setting: str, cuda_available: bool | None = None) -> str:
    """``"cuda"`` when asked for or when ``auto`` and torch sees a GPU, else ``"cpu"``.

    On Linux without a GPU driver the answer is ``"cpu"`` without importing torch (2-3 s of a
    server's start-up when nothing else needs it)."""
    if setting not in ("auto", "cpu") and not setting.startswith("cuda"):
        raise ConfigError(f"Device '{setting}' is not one of auto, cpu, cuda, cuda:N.")
    if setting != "auto":
        return setting
    if cuda_available is None:
        cuda_available = gpu_driver_present() and _torch_sees_cuda()
    return "cuda" if cuda_available else "cpu"


def gpu_driver_present(files: Sequence[str] = GPU_DRIVER_FILES) -> bool:
    """Whether a GPU might be usable: always on systems other than Linux (ask torch), on Linux
    only when a GPU driver's device file exists."""
    if sys.platform != "linux":
        return True
    return any(os.path.exists(f) for f in files)


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
