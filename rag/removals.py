"""Documents removed from the index through the API, while their files stay where the user keeps them.

An ingest mirrors a folder: a file in it is indexed. ``DELETE /documents/{id}`` must take a
document out of the index without deleting the user's own file (only files the service itself
stored, uploads, are deleted), so the removal is written down here, in ``removed.json`` in the
index directory, and every ingest (the API's and ``python -m ingest``'s) leaves those paths out
and says so. ``python -m ingest --include-removed`` forgets the list and indexes them again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

REMOVED_FILE = "removed.json"


def removed_paths(index_dir: str | Path) -> dict[str, dict[str, object]]:
    """Paths (relative to the documents folder) removed through the API, with when and which version."""
    path = Path(index_dir) / REMOVED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A damaged list must not bring removed documents back silently, nor stop ingest: keep none,
        # and the ingest says so (see rag.ingestion).
        return {}
    return {str(k): dict(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(index_dir: Path, removed: dict[str, dict[str, object]]) -> None:
    index_dir.mkdir(parents=True, exist_ok=True)
    target = index_dir / REMOVED_FILE
    if not removed:
        target.unlink(missing_ok=True)
        return
    partial = index_dir / f".{REMOVED_FILE}.{os.getpid()}.part"
    partial.write_text(json.dumps(removed, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(partial, target)


def mark_removed(index_dir: str | Path, rel_path: str, sha256: str = "") -> None:
    """Record that ``rel_path`` is to stay out of the index."""
    removed = removed_paths(index_dir)
    removed[rel_path] = {"removed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sha256": sha256}
    _write(Path(index_dir), removed)


def forget_removals(index_dir: str | Path, paths: list[str] | None = None) -> list[str]:
    """Let ``paths`` (default: all) be indexed again; returns those forgotten."""
    removed = removed_paths(index_dir)
    gone = list(removed) if paths is None else [p for p in paths if p in removed]
    for path in gone:
        removed.pop(path, None)
    _write(Path(index_dir), removed)
    return gone
