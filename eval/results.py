"""The files a run leaves behind, read and written: results.jsonl (one scored question a line,
written as answers arrive, so a run can be inspected while it goes and resumed after a stop) and
summary.json."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"


def read_results(path: Path) -> list[dict[str, Any]]:
    """Records of a results.jsonl; a line cut off by a crash is ignored."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def latest_by_id(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each question, preferring one without an error."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        prev = out.get(r["id"])
        if prev is None or not r.get("error") or prev.get("error"):
            out[r["id"]] = r
    return out


def write_results_line(handle, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY
    path.write_text(json.dumps(_finite(summary), ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
