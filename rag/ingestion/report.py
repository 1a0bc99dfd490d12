"""What an ingest tells its caller: the progress it reports while it runs, and the report at the end."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rag.stores.chunk_store import ChunkStore


class Progress(Protocol):
    """Where the pipeline reports what it is doing; the CLI draws bars from this."""

    def stage(self, name: str, total: int) -> None:
        """A stage of ``total`` files begins (``hash``, ``ingest``)."""

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        """``n`` more files of the stage are done, and ``chunks`` more chunks embedded."""

    def log(self, line: str) -> None:
        """Show one line to the user (a skipped file, a slow one, a note)."""

    def done(self) -> None:
        """The current stage is finished."""


class SilentProgress:
    """A :class:`Progress` that shows nothing (the library's default)."""

    def stage(self, name: str, total: int) -> None:
        """Shows nothing."""

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        """Shows nothing."""

    def log(self, line: str) -> None:
        """Shows nothing."""

    def done(self) -> None:
        """Shows nothing."""


@dataclass
class IngestReport:
    """The summary printed at the end of an ingest (``--json`` prints it as is)."""

    root: str
    index_dir: str
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_failed: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {path, reason}
    # {path, reason}: unsupported types, and what was never read (unreadable, gone, links,
    # FIFOs, devices, folders that cannot be listed)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    documents_total: int = 0
    generation: int = 0
    dense_kind: str = ""
    seconds: float = 0.0
    chunks_per_s: float = 0.0
    index_bytes: int = 0
    bytes_written: int = 0  # store files this ingest wrote (chunks.sqlite aside)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # The files that took longest to prepare (read, parse, chunk, tokenise): {path, seconds}.
    slowest: list[dict[str, object]] = field(default_factory=list)
    # Why every file was parsed again, when the parser, the chunker or the chunk settings
    # changed since the index was built; "" otherwise.
    reprocessed: str = ""
    # What embedded this run's chunks (the embedder's document_encoder_name, e.g. the int8 ONNX
    # copy); "" when nothing was embedded.
    document_encoder: str = ""

    def to_dict(self) -> dict[str, object]:
        """The report as plain JSON-ready data."""
        return asdict(self)


def finish_report(
    report: IngestReport,
    store: ChunkStore,
    directory: Path,
    started: float,
    stages: dict[str, float],
    meta: dict[str, str],
) -> IngestReport:
    """Fill in the totals, timings and index size from the committed ``meta``; returns ``report``."""
    report.seconds = round(time.perf_counter() - started, 3)
    report.chunks_total = int(meta.get("chunks", "0") or 0)
    report.documents_total = int(meta.get("documents", "0") or 0)
    report.generation = int(meta.get("generation", "0") or 0)
    report.dense_kind = meta.get("dense_kind", "")
    report.chunks_per_s = round(report.chunks_embedded / report.seconds, 2) if report.seconds else 0.0
    report.index_bytes = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    report.stage_seconds = {k: round(v, 3) for k, v in stages.items()}
    return report
