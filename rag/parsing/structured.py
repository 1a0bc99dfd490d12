"""CSV and JSON files: CSV rows evened out for unstructured, JSON rendered as readable lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.documents import Element
from rag.errors import ParseError
from rag.parsing.decoding import _read_text
from rag.parsing.elements import _to_elements


def _parse_csv(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.csv import partition_csv

    # Re-encoded after our own decoding, so legacy encodings and BOMs are handled once.
    utf8 = io.BytesIO(_even_rows(_read_text(path, data)).encode("utf-8"))
    return _to_elements(partition_csv(file=utf8, encoding="utf-8", include_header=True, languages=[""]))


def _even_rows(text: str) -> str:
    """CSV text with short rows padded to the longest one. With ragged rows, pandas (under
    partition_csv) takes a long row's extra leading cells for an index and drops whole rows."""
    try:
        dialect = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if row]
    except csv.Error:  # e.g. a cell over the csv module's field limit: leave it to pandas
        return text
    width = max(map(len, rows), default=0)
    if all(len(row) == width for row in rows):
        return text
    out = io.StringIO()
    csv.writer(out, dialect).writerows(row + [""] * (width - len(row)) for row in rows)
    return out.getvalue()


def _parse_json(path: Path, data: bytes) -> list[Element]:
    text = _read_text(path, data)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); fix the file or remove it."
        ) from exc
    from unstructured.partition.common.json_partitioning import is_element_shaped_dict

    if isinstance(value, list) and value and all(is_element_shaped_dict(item) for item in value):
        # Elements serialised by unstructured itself: let it rehydrate them.
        from unstructured.partition.json import partition_json

        return _to_elements(partition_json(text=text))
    return _json_elements(value)


def _json_elements(value: Any) -> list[Element]:
    """Arbitrary JSON as readable text: one element per top-level entry, one line per leaf.

    Leaves read ``key.path: value`` (nested list items as ``key[0]``; lists of plain values
    on one line). For an object at the top, each entry's key is its section; for a list at
    the top, each item is one element.
    """
    if isinstance(value, dict):
        entries: list[tuple[str | None, str, Any]] = [(str(k), str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        # Each item is a record of its own element; its index adds nothing readable.
        entries = [(None, "", v) for v in value]
    else:
        entries = [(None, "", value)]
    elements = []
    for section, prefix, item in entries:
        text = "\n".join(_json_lines(item, prefix)).strip()
        if text:
            elements.append(Element(text=text, kind="UncategorizedText", page=None, section=section))
    return elements


def _json_lines(value: Any, prefix: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_lines(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            if value:
                joined = ", ".join(_json_scalar(item) for item in value)
                yield f"{prefix}: {joined}" if prefix else joined
        else:
            for i, item in enumerate(value):
                yield from _json_lines(item, f"{prefix}[{i}]")
    else:
        scalar = _json_scalar(value)
        if scalar:
            yield f"{prefix}: {scalar}" if prefix else scalar


def _json_scalar(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, ensure_ascii=False)
