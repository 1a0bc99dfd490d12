"""Ingestion: folder -> parse -> chunk -> embed -> index, incrementally and crash-safely.

The rules, as a user sees them:

* A file is identified by its path relative to the ingested folder and its SHA-256. A file
  whose hash is unchanged is neither parsed nor embedded again.
* A changed file's chunks are replaced; chunks whose text did not change keep their
  embeddings (the chunk id is a hash of the file path and the chunk text).
* A file that is gone from the folder is removed from the index, and so is a file that
  changed into something that can no longer be parsed (it is reported as failed).
* A file that fails to parse is reported and skipped; it is tried again once it changes.
* No single file stops a run: what cannot be read (permissions, a file gone since the scan,
  dangling or looping links, FIFOs and devices, folders that cannot be listed) is skipped with
  one line naming it and why; a file that takes longer than ``parse_timeout_s`` to prepare is
  stopped and reported; a file that changed while it was read is recorded with the hash of
  exactly the bytes that were parsed.
* Everything a run changes is committed at once at the end; a run that is killed leaves the
  previous index as it was. Only one ingest may write an index at a time.

The modules, in the order a run uses them: ``scanning`` (the folder and the hashes), ``plan``
(what changed), ``preparing``, ``tokens`` and ``workers`` (parse, chunk and tokenise files, in
worker processes with a time budget), ``processing`` (prepare and embed), ``writing`` and
``commit`` (the next generation, committed at once), ``run`` (all of it under the ``locking``
write lock), ``report`` (progress and the summary). ``ray`` runs the processing on Ray.
"""

from rag.ingestion.commit import BeforeCommit, commit_changes
from rag.ingestion.locking import WriteLock
from rag.ingestion.plan import Changes, IngestRun, find_changes, processing_signature
from rag.ingestion.preparing import (
    SLOW_NOTICE_S,
    ChunkPlan,
    ParseTimeout,
    Prepared,
    can_time_limit,
    prepare_file,
    slow_notice,
    time_limit,
    timeout_reason,
)
from rag.ingestion.processing import EMBED_BLOCK, FilesToProcess, ProcessedFiles, ProcessStep, process_files
from rag.ingestion.report import IngestReport, Progress, SilentProgress, finish_report
from rag.ingestion.run import ingest_folder, run_ingest
from rag.ingestion.scanning import NotRegularFileError, SourceFile, file_sha256, open_regular, os_reason, scan_folder
from rag.ingestion.tokens import COUNT_MEMO_CHARS, remembering, token_functions
from rag.ingestion.workers import (
    HARD_STOP_GRACE_S,
    PARENT_CHECK_S,
    PARSE_WAVE_FILES,
    POLL_S,
    POOL_MIN_FILES,
    UNGUARDED_MAX_BYTES,
    prepare_files,
)
from rag.ingestion.writing import (
    DIRTY_MARKER,
    STORE_FILE_PREFIXES,
    RowChanges,
    WrittenStores,
    remove_unused_files,
    write_stores,
)

__all__ = [
    "COUNT_MEMO_CHARS",
    "DIRTY_MARKER",
    "EMBED_BLOCK",
    "HARD_STOP_GRACE_S",
    "PARENT_CHECK_S",
    "PARSE_WAVE_FILES",
    "POLL_S",
    "POOL_MIN_FILES",
    "SLOW_NOTICE_S",
    "STORE_FILE_PREFIXES",
    "UNGUARDED_MAX_BYTES",
    "BeforeCommit",
    "Changes",
    "ChunkPlan",
    "FilesToProcess",
    "IngestReport",
    "IngestRun",
    "NotRegularFileError",
    "ParseTimeout",
    "Prepared",
    "ProcessStep",
    "ProcessedFiles",
    "Progress",
    "RowChanges",
    "SilentProgress",
    "SourceFile",
    "WriteLock",
    "WrittenStores",
    "can_time_limit",
    "commit_changes",
    "file_sha256",
    "find_changes",
    "finish_report",
    "ingest_folder",
    "open_regular",
    "os_reason",
    "prepare_file",
    "prepare_files",
    "process_files",
    "processing_signature",
    "remembering",
    "remove_unused_files",
    "run_ingest",
    "scan_folder",
    "slow_notice",
    "time_limit",
    "timeout_reason",
    "token_functions",
    "write_stores",
]
