"""Keep third-party libraries from reaching the network at run time.

unstructured runs ``nvidia-smi`` and sends telemetry at import unless told not to, and the
Hugging Face libraries try the hub for model names they do not find locally. These variables
must be set before those packages are imported, so ``rag/__init__`` applies them first.
Users who want hub downloads can set ``HF_HUB_OFFLINE=0`` themselves; we only fill gaps.
"""

from __future__ import annotations

import os

_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # Model-loading bars would drown the ingest progress bar and the server log.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def apply() -> None:
    """Set the telemetry-off variables unless the user already chose a value."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
