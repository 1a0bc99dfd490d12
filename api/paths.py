"""Server paths as answers show them: never an absolute path to a client the server does not know.

A server without keys answers anyone who can reach it, so its answers name folders relative to
where it was started (``index``, ``docs/uploads``), or by their last part when they lie
elsewhere. With keys, clients are the operator's own, and see the full path.
"""

from __future__ import annotations

from pathlib import Path

from rag.config import Settings


def shown_path(path: str | Path, settings: Settings) -> str:
    """``path`` as a response may show it (see the module docstring)."""
    path = Path(path)
    if settings.api_keys or settings.read_only_keys or not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return path.name or "."
