"""The :class:`~rag.errors.ParseError` sentences more than one format uses."""

from __future__ import annotations

from pathlib import Path

from rag.errors import ParseError


def too_big(path: Path, size: int, max_bytes: int) -> ParseError:
    """The error for a file over the size limit."""
    return ParseError(
        f"{path} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
        "split the file or raise max_file_mb (RAG_MAX_FILE_MB)."
    )


def _binary_error(path: Path) -> ParseError:
    return ParseError(f"{path} holds binary data, not text; give it the extension of its real format or remove it.")


def _describe(exc: BaseException) -> str:
    """A short, single-line description of an exception for a user-facing sentence."""
    message = " ".join(str(exc).split())
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
