"""Chunk texts, metadata, vectors and the document manifest, in one SQLite file.

SQLite in WAL mode gives the index its atomic switch: an ingest writes every change in one
transaction, and readers keep seeing the previous state until it commits. A process killed
mid-write leaves an uncommitted transaction that SQLite discards on the next open.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.documents import Chunk

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    chunk_ids TEXT NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    page INTEGER,
    section TEXT,
    kind TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL,
    tokens TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (source);
"""


@dataclass
class DocumentRecord:
    """One manifest entry: a file as it was when last ingested."""

    path: str
    doc_id: str
    sha256: str
    size: int
    mtime: float
    chunk_ids: list[str]
    ingested_at: float


def document_id(path: str) -> str:
    """A short, URL-safe id for a document path."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


class ChunkStore:
    """Typed access to the SQLite file; one instance per thread or process."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            uri = f"file:{path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
        else:
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()

    # -- transactions ---------------------------------------------------------------------

    def begin(self) -> None:
        """Start a write transaction (taking the write lock now)."""
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit the open transaction."""
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back the open transaction, if there is one."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def clear(self) -> None:
        """Forget every chunk, document and failure (inside the caller's transaction)."""
        for table in ("chunks", "documents", "failures"):
            self._db.execute(f"DELETE FROM {table}")

    # -- metadata -------------------------------------------------------------------------

    def get_meta(self) -> dict[str, str]:
        """The index metadata as text values; empty where the table does not exist yet."""
        try:
            return {r["key"]: r["value"] for r in self._db.execute("SELECT key, value FROM meta")}
        except sqlite3.OperationalError:
            return {}

    def set_meta(self, values: dict[str, object]) -> None:
        """Write these metadata values (as text), replacing earlier ones."""
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    # -- documents ------------------------------------------------------------------------

    def documents(self) -> dict[str, DocumentRecord]:
        """Every ingested document's record, by path."""
        rows = self._db.execute("SELECT * FROM documents ORDER BY path")
        return {
            r["path"]: DocumentRecord(
                r["path"], r["doc_id"], r["sha256"], r["size"], r["mtime"], json.loads(r["chunk_ids"]), r["ingested_at"]
            )
            for r in rows
        }

    def failures(self) -> dict[str, tuple[str, str]]:
        """Every document that failed to ingest: path -> (its sha256, the reason)."""
        return {r["path"]: (r["sha256"], r["reason"]) for r in self._db.execute("SELECT * FROM failures")}

    def put_document(self, path: str, sha256: str, size: int, mtime: float, chunk_ids: Sequence[str]) -> None:
        """Record a document as ingested with these chunks (clearing any failure recorded for it)."""
        self._db.execute(
            "INSERT OR REPLACE INTO documents (path, doc_id, sha256, size, mtime, chunk_ids, ingested_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, document_id(path), sha256, size, mtime, json.dumps(list(chunk_ids)), time.time()),
        )
        self._db.execute("DELETE FROM failures WHERE path = ?", (path,))

    def touch_document(self, path: str, mtime: float) -> None:
        """Record a new modification time for an unchanged document."""
        self._db.execute("UPDATE documents SET mtime = ? WHERE path = ?", (mtime, path))

    def put_failure(self, path: str, sha256: str, reason: str) -> None:
        """Record why a document failed to ingest."""
        self._db.execute(
            "INSERT OR REPLACE INTO failures (path, sha256, reason) VALUES (?, ?, ?)", (path, sha256, reason)
        )

    def delete_failure(self, path: str) -> None:
        """Forget the failure recorded for a path."""
        self._db.execute("DELETE FROM failures WHERE path = ?", (path,))

    def delete_document(self, path: str) -> None:
        """Forget a document's record (its chunks are deleted separately)."""
        self._db.execute("DELETE FROM documents WHERE path = ?", (path,))

    # -- chunks ---------------------------------------------------------------------------

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """The chunk ids among ``ids`` that are already held."""
        found: set[str] = set()
        batch = list(ids)
        for i in range(0, len(batch), 500):
            part = batch[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self._db.execute(f"SELECT id FROM chunks WHERE id IN ({marks})", part))
        return found

    def add_chunks(self, chunks: Sequence[Chunk], tokens: Sequence[Sequence[str]], vectors: np.ndarray) -> None:
        """Insert chunks with their tokens and vectors (one of each per chunk)."""
        self._db.executemany(
            "INSERT INTO chunks (id, source, page, section, kind, start, end, text, tokens, vector)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    c.id,
                    c.source,
                    c.page,
                    c.section,
                    c.kind,
                    c.start,
                    c.end,
                    c.text,
                    " ".join(t),
                    np.asarray(v, dtype=np.float32).tobytes(),
                )
                for c, t, v in zip(chunks, tokens, vectors)
            ),
        )

    def delete_chunks(self, ids: Iterable[str]) -> int:
        """Delete these chunk ids; returns how many were held."""
        batch = list(ids)
        removed = 0
        for i in range(0, len(batch), 500):
            part = batch[i : i + 500]
            marks = ",".join("?" * len(part))
            removed += self._db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part).rowcount
        return removed

    def rows_of(self, ids: Iterable[str]) -> dict[str, int]:
        """The row number of each chunk id held (the id the vector and keyword stores use)."""
        out: dict[str, int] = {}
        batch = list(ids)
        for i in range(0, len(batch), 500):
            part = batch[i : i + 500]
            marks = ",".join("?" * len(part))
            out.update(
                (r[0], int(r[1])) for r in self._db.execute(f"SELECT id, row FROM chunks WHERE id IN ({marks})", part)
            )
        return out

    def all_rows(self) -> np.ndarray:
        """Every chunk's row number, ascending."""
        return np.fromiter((r[0] for r in self._db.execute("SELECT row FROM chunks ORDER BY row")), dtype=np.int64)

    def count_chunks(self) -> int:
        """How many chunks are held."""
        return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def iter_vectors(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (row ids, vectors) in row order, a batch at a time."""
        cursor = self._db.execute("SELECT row, vector FROM chunks ORDER BY row")
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vectors

    def iter_tokens(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, list[list[str]]]]:
        """All (row ids, token lists) in row order, a batch at a time."""
        cursor = self._db.execute("SELECT row, tokens FROM chunks ORDER BY row")
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            yield (np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), [r[1].split() for r in rows])

    def chunks_by_rows(self, rows: Sequence[int]) -> dict[int, Chunk]:
        """The chunks of these row numbers, by row (rows not held are left out)."""
        out: dict[int, Chunk] = {}
        rows = [int(r) for r in rows]
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT row, id, source, page, section, kind, start, end, text FROM chunks WHERE row IN ({marks})"
            for r in self._db.execute(query, part):
                out[r["row"]] = Chunk(
                    r["id"], r["text"], r["source"], r["page"], r["section"], r["kind"], r["start"], r["end"]
                )
        return out

    def chunks_of(self, source: str) -> list[Chunk]:
        """Every chunk of one source document, in text order."""
        query = "SELECT id, source, page, section, kind, start, end, text FROM chunks WHERE source = ? ORDER BY start"
        return [
            Chunk(r["id"], r["text"], r["source"], r["page"], r["section"], r["kind"], r["start"], r["end"])
            for r in self._db.execute(query, (source,))
        ]
