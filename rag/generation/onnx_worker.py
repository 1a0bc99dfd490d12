"""The ONNX Runtime model's process under its earlier name, kept so old imports and
``python -m rag.generation.onnx_worker EXPORT_DIR WINDOW SLOTS PARALLEL`` keep working.

The code is in :mod:`rag.generation.onnx.worker` (the process) and
:mod:`rag.generation.onnx.protocol` (its messages).
"""

from __future__ import annotations

import sys

from rag.generation.onnx.worker import Answer, Model, Requests, Scheduler, Session, cpu_threads, main, serve

__all__ = ["Answer", "Model", "Requests", "Scheduler", "Session", "cpu_threads", "main", "serve"]

if __name__ == "__main__":
    sys.exit(main())
