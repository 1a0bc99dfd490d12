"""The run: scan, plan, process and commit, under the index folder's write lock."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.index import DB_NAME, check_model, resolve_embed_model
from rag.ingestion.commit import BeforeCommit, commit_changes
from rag.ingestion.locking import WriteLock
from rag.ingestion.plan import IngestRun, check_root, files_to_read, find_changes
from rag.ingestion.processing import FilesToProcess, PrepareFiles, ProcessStep, process_files
from rag.ingestion.report import IngestReport, Progress, SilentProgress, finish_report


def ingest_folder(
    root: str | Path,
    settings: Settings,
    progress: Progress | None = None,
    embedder: Any = None,
    rebuild: bool = False,
    prepare: PrepareFiles | None = None,
    before_commit: BeforeCommit | None = None,
) -> IngestReport:
    """Bring the index in ``settings.index_dir`` up to date with the folder ``root``.

    ``before_commit`` is called once everything is written, just before the commit (tests use
    it to kill or fail a run there)."""
    progress = progress or SilentProgress()
    settings = resolve_embed_model(settings, embedder=embedder, rebuild=rebuild)
    process = functools.partial(process_files, embedder=embedder, prepare=prepare)
    return run_ingest(root, settings, process, progress=progress, rebuild=rebuild, before_commit=before_commit)


def run_ingest(
    root: str | Path,
    settings: Settings,
    process: ProcessStep,
    progress: Progress | None = None,
    rebuild: bool = False,
    before_commit: BeforeCommit | None = None,
) -> IngestReport:
    """Scan, diff and commit around ``process``, which parses, chunks and embeds what changed.

    ``process`` gets a :class:`FilesToProcess` (the files to (re)parse, the manifest as it was,
    the open store, and the report and stage timings to fill in) and returns a
    :class:`ProcessedFiles`, as :func:`process_files` does; it is only called when something
    changed. ``rag.ingestion.ray`` passes its own, so the Ray path shares the incremental rules
    and the crash-safe commit. ``before_commit`` is called just before the commit.
    """
    started = time.perf_counter()
    progress = progress or SilentProgress()
    root = Path(root)
    check_root(root)
    directory = Path(settings.index_dir)
    report = IngestReport(root=str(root), index_dir=str(directory))
    run = IngestRun(root, directory, settings, progress, rebuild, report, started)
    files = files_to_read(run)

    from rag.stores.chunk_store import ChunkStore

    with WriteLock(directory):
        store = ChunkStore(directory / DB_NAME)
        try:
            meta = store.get_meta()
            if not rebuild:
                check_model(meta, settings.embed_model, directory)
            # 1. What changed: hash every file.
            changes = find_changes(run, files, store, meta)
            if not changes.anything(rebuild):
                for path in changes.vanished_failures:
                    store.delete_failure(path)
                return finish_report(report, store, directory, started, run.stages, meta)
            # 2. Parse, chunk and embed what is new or changed.
            work = FilesToProcess(
                changes.to_parse, changes.known, store, report, run.stages, settings, progress, rebuild
            )
            processed = process(work)
            # 3. Commit everything at once, with the next generation's index files.
            commit_changes(run, store, meta, changes, processed, before_commit)
            return finish_report(report, store, directory, started, run.stages, store.get_meta())
        finally:
            store.close()
