"""Word (.docx) and PowerPoint (.pptx) files, checked to be real, bounded zip archives first."""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.documents import Element
from rag.errors import ParseError
from rag.parsing.elements import _to_elements
from rag.parsing.failures import _describe

_OFFICE_NAMES = {".docx": "Word document", ".pptx": "PowerPoint deck"}


def _parse_docx(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.docx import partition_docx

    return _to_elements(_open_office(path, data, partition_docx))


def _parse_pptx(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.pptx import partition_pptx

    # Speaker notes are text the author wrote: index them with their slide.
    return _to_elements(_open_office(path, data, functools.partial(partition_pptx, include_slide_notes=True)))


# A DOCX/PPTX unpacking to more than this (or to many times its own size) is refused unread:
# python-docx and python-pptx load whole parts into memory, so a "zip bomb" would exhaust it.
_MAX_UNPACKED_BYTES = 512 * 1024 * 1024
_MAX_UNPACK_RATIO = 200


def _open_office(path: Path, data: bytes, partition: Callable[..., list[Any]]) -> list[Any]:
    """Run a DOCX/PPTX partitioner, reporting damaged, renamed or bomb-like files as such."""
    # Both formats are zip archives; anything else with that name is damaged or renamed.
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise _invalid_office_file(path, "damaged, or another format renamed")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _invalid_office_file(path, _describe(exc)) from exc
    if unpacked > _MAX_UNPACKED_BYTES or unpacked > _MAX_UNPACK_RATIO * max(len(data), 1) + 10_000_000:
        raise ParseError(
            f"{path} would unpack to {unpacked / 1e6:.0f} MB from {len(data) / 1e6:.1f} MB, which no real "
            f"{_OFFICE_NAMES[path.suffix.lower()]} does (a zip bomb?); re-save it from its application or remove it."
        )
    try:
        return partition(file=io.BytesIO(data), languages=[""])
    except (zipfile.BadZipFile, KeyError) as exc:
        # A zip without the parts python-docx / python-pptx expect (KeyError: missing part).
        raise _invalid_office_file(path, _describe(exc)) from exc
    except Exception as exc:
        if type(exc).__name__ == "PackageNotFoundError":  # python-docx/pptx: not an OPC package
            raise _invalid_office_file(path, "damaged, or another format renamed") from exc
        raise


def _invalid_office_file(path: Path, reason: str) -> ParseError:
    return ParseError(
        f"{path} is not a valid {_OFFICE_NAMES[path.suffix.lower()]} ({reason}); "
        "re-save it from its application or remove it."
    )
