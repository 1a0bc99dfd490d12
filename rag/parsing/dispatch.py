"""Choosing the parser for a file by its type, and the checks every file goes through first."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rag.documents import Element
from rag.errors import ParseError
from rag.parsing.eml import _parse_eml
from rag.parsing.failures import _describe, too_big
from rag.parsing.markup import _parse_html, _parse_md
from rag.parsing.office import _parse_docx, _parse_pptx
from rag.parsing.pdf import _parse_pdf
from rag.parsing.plain_text import _parse_txt
from rag.parsing.structured import _parse_csv, _parse_json
from rag.parsing.unstructured_nlp import _prepare_unstructured

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".json", ".eml"}
)

# Raised whenever a change makes parse_file return other elements for a file; an index built
# by another version parses its files again on the next ingest (rag/ingestion/plan.py). 2: PDF heads,
# feet, ligatures and Chinese line breaks (_tidy_pdf). 3: Markdown in .txt files read as
# Markdown; Chinese lines wrapped inside a Markdown paragraph joined without a space. 4: legacy
# encodings detected (Big5, Latin-1/cp1252, BOM-less UTF-16 were refused), huge lines cut into
# paragraphs, very large plain text read without the classifier.
PARSER_VERSION = 4

# languages=[""] in the format modules tells unstructured to skip language detection: langdetect
# loads its profiles (~0.4 s) in every process and then costs 10-20 ms per 5 KB document, for
# metadata we never read.
_PARTITIONERS: dict[str, Callable[[Path, bytes], list[Element]]] = {
    ".txt": _parse_txt,
    ".md": _parse_md,
    ".markdown": _parse_md,
    ".html": _parse_html,
    ".htm": _parse_html,
    ".csv": _parse_csv,
    ".json": _parse_json,
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
    ".pptx": _parse_pptx,
    ".eml": _parse_eml,
}


def parse_file(path: Path, max_bytes: int, data: bytes | None = None) -> list[Element]:
    """Parse one document into elements, or raise :class:`ParseError` saying why not.

    ``max_bytes`` is the size limit (``Settings.max_file_mb`` in bytes). ``data``, when given,
    is the file's content as already read (the ingest hashes exactly the bytes it parses);
    ``path`` then only names the file and its type. Elements come in document order with
    stripped, non-empty text, unstructured's category as ``kind``, the 1-based page where the
    format has pages, and the nearest title above as ``section``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ParseError(
            f"{path} has an unsupported file type '{suffix or path.name}'; convert it to one of {kinds} or remove it."
        )
    if data is None:
        data = _read_bytes(path, max_bytes)
    size = len(data)
    if size > max_bytes:
        raise too_big(path, size, max_bytes)
    if size == 0:
        raise ParseError(f"{path} is empty (0 bytes); add content to it or remove it.")

    try:
        _prepare_unstructured()
        elements = _PARTITIONERS[suffix](path, data)
    except ParseError:
        raise
    except RecursionError as exc:  # deeply nested markup or JSON
        raise ParseError(
            f"{path} is nested too deeply to read (RecursionError); flatten its structure or remove it."
        ) from exc
    except Exception as exc:  # unstructured and the format libraries raise anything at all
        raise ParseError(
            f"Could not parse {path} ({_describe(exc)}); check that it opens in its usual application, or remove it."
        ) from exc
    if not elements:
        raise ParseError(f"{path} contains no text that could be extracted; add text to it or remove it.")
    return elements


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, read once; an unreadable or oversized file raises ParseError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise too_big(path, os.fstat(handle.fileno()).st_size, max_bytes)
            return data
    except OSError as exc:
        raise ParseError(
            f"Cannot read {path} ({exc.strerror or exc}); check that it exists and is readable, then retry."
        ) from exc
