"""The commit: everything a run changes goes into the chunk store's one transaction, with the
next generation's store files written beside the live ones; a run killed before the commit
leaves the previous index as it was."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from rag.ingestion.plan import Changes, IngestRun
from rag.ingestion.processing import ProcessedFiles
from rag.ingestion.writing import RowChanges, WrittenStores, remove_unused_files, write_stores

if TYPE_CHECKING:
    from rag.stores.chunk_store import ChunkStore

# Called just before the commit (a test holds or fails the run there); see run_ingest.
BeforeCommit = Callable[[], None]


def commit_changes(
    run: IngestRun,
    store: ChunkStore,
    meta: dict[str, str],
    changes: Changes,
    processed: ProcessedFiles,
    before_commit: BeforeCommit | None = None,
) -> None:
    """Apply ``changes`` and ``processed`` to ``store`` and commit them with the next
    generation's store files; on any error the transaction is rolled back and the error raised."""
    t = time.perf_counter()
    store.begin()
    try:
        removed_rows = _apply(run, store, changes, processed)
        written = _write_generation(run, store, meta, changes, processed, removed_rows)
        if before_commit is not None:
            before_commit()
        store.commit()
    except BaseException:
        store.rollback()
        raise
    written.committed()
    run.stages["write"] = time.perf_counter() - t
    run.report.bytes_written = written.bytes_written
    remove_unused_files(run.directory, [written.files, written.previous_files])


def _apply(run: IngestRun, store: ChunkStore, changes: Changes, processed: ProcessedFiles) -> list[int]:
    """Change the chunk store's rows (inside its open transaction); returns the removed rows."""
    report, known = run.report, changes.known
    removed_rows: list[int] = []

    def drop(ids: Iterable[str]) -> int:
        ids = list(ids)
        removed_rows.extend(store.rows_of(ids).values())
        return store.delete_chunks(ids)

    if run.rebuild:
        store.clear()
    for path in changes.removed:
        report.chunks_removed += drop(known[path].chunk_ids)
        store.delete_document(path)
    for path in changes.vanished_failures:
        store.delete_failure(path)
    for source, reason in processed.failed_now:
        if source.path in known:  # it was good before: its old chunks go
            report.chunks_removed += drop(known[source.path].chunk_ids)
            store.delete_document(source.path)
        store.put_failure(source.path, source.sha256, reason)
    for source, chunk_ids in processed.per_file:
        if source.path in known:
            stale = set(known[source.path].chunk_ids) - set(chunk_ids)
            report.chunks_removed += drop(stale)
        store.put_document(source.path, source.sha256, source.size, source.mtime, chunk_ids)
    store.add_chunks(processed.new_chunks, processed.tokens, processed.vectors)
    report.chunks_added = len(processed.new_chunks)
    for source in changes.unchanged:
        store.touch_document(source.path, source.mtime)
    return removed_rows


def _write_generation(
    run: IngestRun,
    store: ChunkStore,
    meta: dict[str, str],
    changes: Changes,
    processed: ProcessedFiles,
    removed_rows: list[int],
) -> WrittenStores:
    """Write the next generation's vector and keyword stores and record them in the store's meta."""
    settings, new_chunks, new_vectors = run.settings, processed.new_chunks, processed.vectors
    generation = int(meta.get("generation", "0")) + 1
    rows = store.rows_of([c.id for c in new_chunks])
    added_rows = np.asarray([rows[c.id] for c in new_chunks], dtype=np.int64)
    dimension = new_vectors.shape[1] if len(new_vectors) else int(meta.get("dimension", "0") or 0)
    written = write_stores(
        store,
        run.directory,
        generation,
        settings,
        meta,
        dimension,
        run.rebuild,
        RowChanges(np.asarray(removed_rows, dtype=np.int64), added_rows, new_vectors, processed.tokens),
        run.progress,
    )
    store.set_meta(
        {
            "generation": generation,
            "embed_model": settings.embed_model,
            "dimension": dimension,
            "dense_kind": written.vector_state.get("kind", ""),
            "vector_store": json.dumps(written.vector_state),
            "keyword_store": json.dumps(written.keyword_state),
            "documents": len(store.documents()),
            "chunks": store.count_chunks(),
            "updated_at": time.time(),
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap,
            "processing": changes.processing,
            "root": str(run.root.resolve()),
            # what encoded the documents (latest run that embedded any)
            "document_encoder": run.report.document_encoder or meta.get("document_encoder", ""),
        }
    )
    return written
