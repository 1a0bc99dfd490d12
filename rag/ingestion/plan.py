"""The incremental plan: which files of the folder to read, and which of them are new, changed,
unchanged, failed before, or gone since the last run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.errors import InputError
from rag.ingestion.report import IngestReport, Progress
from rag.ingestion.scanning import SourceFile, file_sha256, os_reason, scan_folder

if TYPE_CHECKING:
    from rag.stores.chunk_store import ChunkStore, DocumentRecord


@dataclass
class IngestRun:
    """One ingest as it goes: where it reads and writes, how, and what it reports."""

    root: Path
    directory: Path  # the index folder
    settings: Settings
    progress: Progress
    rebuild: bool
    report: IngestReport
    started: float  # time.perf_counter() at the start
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass
class Changes:
    """What a run has to do to the index, from the files' hashes against the manifest."""

    known: dict[str, DocumentRecord]  # the manifest as it was ({} on a rebuild)
    processing: str  # this run's processing_signature
    to_parse: list[SourceFile]  # new or changed files
    unchanged: list[SourceFile]
    removed: list[str]  # indexed paths no longer in the folder
    vanished_failures: list[str]  # recorded failures no longer in the folder

    def anything(self, rebuild: bool) -> bool:
        """Whether the index needs a new generation at all."""
        return bool(self.to_parse or self.removed or rebuild)


def files_to_read(run: IngestRun) -> list[SourceFile]:
    """The supported files of ``run.root``, each skipped one reported; raises InputError for a
    root that is missing, a file, or holds nothing to ingest."""
    from rag.parsing import SUPPORTED_SUFFIXES

    root, report, progress = run.root, run.report, run.progress
    problems: list[dict[str, str]] = []
    files, unsupported = scan_folder(root, SUPPORTED_SUFFIXES, exclude=run.directory, problems=problems)
    for rel in unsupported:
        reason = f"{rel}: file type '{Path(rel).suffix or '(none)'}' is not supported; skipped."
        report.skipped.append({"path": rel, "reason": reason})
        progress.log(reason)
    for problem in problems:
        report.skipped.append(problem)
        progress.log(problem["reason"])
    files = _leave_out_removed(files, run.directory, report, progress)
    if not files:
        raise InputError(
            f"{root} holds no supported documents; supported types are {', '.join(sorted(SUPPORTED_SUFFIXES))}."
        )
    return files


def check_root(root: Path) -> None:
    """Raise InputError unless ``root`` is an existing folder."""
    if not root.exists():
        raise InputError(f"{root} does not exist; give the folder that holds your documents.")
    if root.is_file():
        raise InputError(f"{root} is a file; give the folder that holds it.")


def _leave_out_removed(
    files: list[SourceFile], directory: Path, report: IngestReport, progress: Progress
) -> list[SourceFile]:
    """The files, less those removed from the index through the API (see :mod:`rag.removals`)."""
    from rag.removals import removed_paths

    removed = removed_paths(directory)
    kept = []
    for source in files:
        if source.path in removed:
            reason = (
                f"{source.path}: removed from the index through the API; left out "
                "(python -m ingest --include-removed indexes it again)."
            )
            report.skipped.append({"path": source.path, "reason": reason})
            progress.log(reason)
        else:
            kept.append(source)
    return kept


def processing_signature(settings: Settings) -> str:
    """What decides how a file becomes chunks, besides its bytes and the embedder (checked
    apart): the parser's and chunker's versions and the chunk settings."""
    from rag.chunking import CHUNKER_VERSION
    from rag.parsing import PARSER_VERSION

    return (
        f"parser {PARSER_VERSION}, chunker {CHUNKER_VERSION}, chunk_tokens {settings.chunk_tokens}, "
        f"chunk_overlap {settings.chunk_overlap}"
    )


def find_changes(run: IngestRun, files: list[SourceFile], store: ChunkStore, meta: dict[str, str]) -> Changes:
    """Hash every file (cheap next to parsing and embedding) and sort it against the manifest
    in ``store``; files that cannot be read any more are skipped and reported."""
    known = {} if run.rebuild else store.documents()
    failures = {} if run.rebuild else store.failures()
    processing = processing_signature(run.settings)
    if known and meta.get("processing") != processing:
        # Unchanged files would keep chunks cut another way: parse them all again (chunks
        # whose text comes out the same keep their embeddings).
        run.report.reprocessed = (
            f"the index was built with {meta.get('processing') or 'an older version'}, "
            f"now {processing}: every file is parsed and chunked again"
        )
        run.progress.log(run.report.reprocessed)
        failures = {}

    t = time.perf_counter()
    changes = Changes(known, processing, [], [], [], [])
    readable = _hash_and_sort(run, files, failures, changes)
    on_disk = {s.path for s in readable}
    changes.removed = [path for path in known if path not in on_disk]
    changes.vanished_failures = [path for path in failures if path not in on_disk]
    run.report.files_unchanged = len(changes.unchanged)
    run.report.files_removed = len(changes.removed)
    run.stages["hash"] = time.perf_counter() - t
    return changes


def _hash_and_sort(
    run: IngestRun, files: list[SourceFile], failures: dict[str, tuple[str, str]], changes: Changes
) -> list[SourceFile]:
    """Hash each file into ``source.sha256`` and file it under ``changes.to_parse`` or
    ``changes.unchanged`` (or report it failed again, unchanged); returns the readable files."""
    report, progress, known = run.report, run.progress, changes.known
    progress.stage("hash", len(files))
    readable: list[SourceFile] = []
    for source in files:
        try:
            source.sha256 = file_sha256(source.abspath)
        except OSError as exc:
            # Unreadable or gone since the scan: left out like a deleted file (its old
            # chunks, if any, go), with one line; tried again on the next run.
            reason = f"{source.path}: {os_reason(exc)}; skipped."
            report.skipped.append({"path": source.path, "reason": reason})
            progress.log(reason)
            progress.advance(1)
            continue
        readable.append(source)
        old = known.get(source.path)
        if old is not None and old.sha256 == source.sha256 and not report.reprocessed:
            changes.unchanged.append(source)
        elif source.path in failures and failures[source.path][0] == source.sha256:
            report.files_failed += 1
            report.failed.append({"path": source.path, "reason": failures[source.path][1] + " (unchanged since)"})
        else:
            changes.to_parse.append(source)
        progress.advance(1)
    progress.done()
    return readable
