"""Ingestion on a Ray cluster: parsing, chunking and embedding run as Ray Data batches.

The rules are those of :mod:`rag.ingestion`, and so is the code that applies them: the scan,
the diff against the manifest, the write lock and the one crash-safe commit all come from
:func:`rag.ingestion.run_ingest`. Only the work in between moves to the cluster::

    files to parse ─ map_batches(ParseAndChunk) ─ map_batches(EmbedBatch) ─ driver ─ commit
                     CPU actors: parse, chunk,     actors holding the embedder,
                     search tokens                 one GPU each when the cluster has GPUs

Both stages are actor classes so each worker loads the embedder (and its tokenizer, which
chunking sizes against) once, not once per batch. Each file becomes one "file" row (its
chunk ids or its failure) plus one "chunk" row per chunk that needs a vector; a chunk whose
id the index already holds is not sent to the embedder at all. Rows come back in any order;
the driver puts them back in the order of the files, checks each chunk against the store
exactly as the plain path does, and hands the result to the common commit.

A local cluster (``--ray`` without an address) listens on 127.0.0.1 only and is shut down
at the end. A cluster given by address gets this package shipped to its workers, but needs
the dependencies (and the embedding model) installed on every node, and the documents at
the same absolute path on every node (a shared file system).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.documents import Chunk
from rag.errors import ConfigError, RagError
from rag.index import resolve_embed_model
from rag.ingestion.commit import BeforeCommit
from rag.ingestion.processing import FilesToProcess, ProcessedFiles
from rag.ingestion.ray_cluster import FILES_PER_BATCH, LOCAL, ActorPlan, RaySession, plan_actors
from rag.ingestion.ray_stages import EmbedBatch, ParseAndChunk
from rag.ingestion.report import IngestReport, Progress, SilentProgress
from rag.ingestion.run import run_ingest
from rag.ingestion.scanning import SourceFile

CHUNKS_PER_BATCH = 256  # rows one EmbedBatch call gets: enough for length-sorted batching

__all__ = [
    "CHUNKS_PER_BATCH",
    "FILES_PER_BATCH",
    "LOCAL",
    "ActorPlan",
    "EmbedBatch",
    "ParseAndChunk",
    "RaySession",
    "ingest_folder_ray",
    "plan_actors",
]


def ingest_folder_ray(
    root: str | Path,
    settings: Settings,
    address: str | None = LOCAL,
    progress: Progress | None = None,
    rebuild: bool = False,
    before_commit: BeforeCommit | None = None,
) -> IngestReport:
    """Like :func:`rag.ingestion.ingest_folder`, with parsing and embedding on Ray.

    ``address`` is a running cluster's address (``host:port``, ``ray://...`` or ``auto``),
    or ``"local"``/``None`` to start a local cluster bound to 127.0.0.1 for this run. When
    the calling process already has a Ray session, that session is used and left running.
    Ray is only started when some file is new or changed. The cluster's size, not
    ``settings.workers``, decides how many files are parsed at once (see :func:`plan_actors`).
    ``before_commit`` is called just before the commit, as in ``ingest_folder``.
    """
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--ray needs Ray; install it with: pip install 'rag-service[ray]' (or 'ray[data]>=2.30').")
    progress = progress or SilentProgress()
    settings = resolve_embed_model(settings, rebuild=rebuild)
    session = RaySession(address or LOCAL, progress)

    def process(work: FilesToProcess) -> ProcessedFiles:
        return _process_on_ray(work, session)

    try:
        return run_ingest(root, settings, process, progress=progress, rebuild=rebuild, before_commit=before_commit)
    finally:
        session.close()


# Rows back from the cluster: per file order, its "file" row, and its embedded chunks by id
# (the chunk's fields with its tokens, and its vector).
FileRows = dict[int, dict[str, Any]]
EmbeddedRows = dict[int, dict[str, tuple[dict[str, Any], np.ndarray]]]


def _process_on_ray(work: FilesToProcess, session: RaySession) -> ProcessedFiles:
    """The Ray counterpart of :func:`rag.ingestion.process_files`: same inputs, same outputs."""
    progress = work.progress
    progress.stage("ingest", len(work.to_parse))
    if not work.to_parse:  # only deletions: nothing for a cluster to do
        progress.done()
        return ProcessedFiles([], np.zeros((0, 0), dtype=np.float32), [], [], [])
    dataset = _dataset(work, session)
    t = time.perf_counter()
    try:
        files, embedded = _collect(dataset, work.stages, progress)
    except Exception as exc:  # noqa: BLE001 - surface a worker's one-sentence error as is
        expected = _find_rag_error(exc)
        if expected is not None:
            raise expected from None
        raise
    work.stages["prepare_and_embed"] = time.perf_counter() - t
    progress.done()
    return _in_file_order(work, files, embedded)


def _dataset(work: FilesToProcess, session: RaySession) -> Any:
    """Start Ray and lay out the two stages over the files to parse (a lazy Ray dataset)."""
    work.stages["ray_start"] = session.start()
    import ray.data

    cpus, gpus = session.resources()
    plan = plan_actors(cpus, gpus, len(work.to_parse))
    work.progress.log(
        f"Ray: {plan.parse_actors} parsing and {plan.embed_actors} embedding actors"
        f"{' on GPUs' if plan.gpus_per_embed else ''} ({cpus:g} CPUs, {gpus:g} GPUs)"
    )

    # Ids the index already holds for each file: their chunks need no new vector. A chunk id
    # hashes the file's path, so only that file's own chunks can match.
    items = [
        {
            "order": i,
            "path": s.path,
            "abspath": str(s.abspath.resolve()),
            "known": json.dumps([] if work.rebuild else [c.id for c in work.store.chunks_of(s.path)]),
        }
        for i, s in enumerate(work.to_parse)
    ]
    return (
        ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / FILES_PER_BATCH)))
        .map_batches(
            ParseAndChunk,
            fn_constructor_kwargs={"settings": work.settings},
            batch_size=FILES_PER_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.parse_actors),
            num_cpus=plan.cpus_per_actor,
        )
        .map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"settings": work.settings},
            batch_size=CHUNKS_PER_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.embed_actors),
            num_cpus=plan.cpus_per_actor,
            num_gpus=plan.gpus_per_embed,
        )
    )


def _collect(dataset: Any, stages: dict[str, float], progress: Progress) -> tuple[FileRows, EmbeddedRows]:
    """Run the dataset and gather its rows, counting files done as their chunks come back."""
    files: FileRows = {}
    embedded: EmbeddedRows = {}
    tracker = _FileTracker(progress)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        stages["embed"] = stages.get("embed", 0.0) + float(batch["embed_s"].sum())
        progress.advance(0, chunks=int((batch["kind"] == "chunk").sum()))
        for i, kind in enumerate(batch["kind"]):
            order = int(batch["order"][i])
            if kind == "file":
                files[order] = {k: batch[k][i] for k in ("ok", "error", "ids", "seconds")}
                if not bool(batch["ok"][i]):
                    progress.log(f"skipped {batch['error'][i]}")
                tracker.file_row(order, int(batch["n_embed"][i]))
            else:
                meta = json.loads(str(batch["chunk"][i]))
                meta["text"] = str(batch["text"][i])
                meta["tokens"] = json.loads(str(batch["tokens"][i]))
                embedded.setdefault(order, {})[meta["id"]] = (meta, np.array(batch["vector"][i], dtype=np.float32))
                tracker.chunk_row(order)
    return files, embedded


def _in_file_order(work: FilesToProcess, files: FileRows, embedded: EmbeddedRows) -> ProcessedFiles:
    """The rows back in file order, with the same per-file rules as the plain path."""
    report, stages = work.report, work.stages
    result = ProcessedFiles([], np.zeros((0, 0), dtype=np.float32), [], [], [])
    vectors: list[np.ndarray] = []
    seen_ids: set[str] = set()
    for order, source in enumerate(work.to_parse):
        row = files[order]
        for key, value in json.loads(str(row["seconds"])).items():
            stages[f"{key}_cpu"] = stages.get(f"{key}_cpu", 0.0) + value
        if not bool(row["ok"]):
            error = str(row["error"])
            result.failed_now.append((source, error))
            report.files_failed += 1
            report.failed.append({"path": source.path, "reason": error})
            continue
        ids = json.loads(str(row["ids"]))
        result.per_file.append((source, ids))
        if source.path in work.known:
            report.files_changed += 1
        else:
            report.files_new += 1
        keep = set() if work.rebuild else work.store.existing_ids(ids)
        _take_chunks(source, ids, keep, embedded.get(order, {}), seen_ids, result, vectors)
    report.chunks_embedded = len(result.new_chunks)
    dimension = vectors[0].shape[0] if vectors else 0
    result.vectors = np.stack(vectors) if vectors else np.zeros((0, dimension), dtype=np.float32)
    return result


def _take_chunks(
    source: SourceFile,
    ids: list[str],
    keep: set[str],
    mine: dict[str, tuple[dict[str, Any], np.ndarray]],
    seen_ids: set[str],
    result: ProcessedFiles,
    vectors: list[np.ndarray],
) -> None:
    """Add the file's chunks that need a vector to ``result`` (their vectors to ``vectors``)."""
    for chunk_id in ids:
        if chunk_id in keep or chunk_id in seen_ids:
            continue
        if chunk_id not in mine:  # the store changed under the write lock: never expected
            raise RuntimeError(f"chunk {chunk_id} of {source.path} was neither in the index nor embedded")
        meta, vector = mine[chunk_id]
        result.tokens.append(meta.pop("tokens"))
        result.new_chunks.append(Chunk(**meta))
        vectors.append(vector)
        seen_ids.add(chunk_id)


class _FileTracker:
    """Counts a file as done once its row and all its embedded chunks are back (as the plain
    path does), so the progress ETA covers embedding."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.expected: dict[int, int] = {}
        self.arrived: dict[int, int] = {}

    def file_row(self, order: int, n_embed: int) -> None:
        self.expected[order] = n_embed
        self._check(order)

    def chunk_row(self, order: int) -> None:
        self.arrived[order] = self.arrived.get(order, 0) + 1
        self._check(order)

    def _check(self, order: int) -> None:
        if order in self.expected and self.arrived.get(order, 0) == self.expected[order]:
            self.progress.advance(1)
            del self.expected[order]


_WORKER_ERROR = re.compile(r"^rag\.errors\.(\w+): (.+)$", re.MULTILINE)


def _find_rag_error(exc: BaseException) -> RagError | None:
    """The expected error a worker raised (a bad model name, ...), dug out of Ray's wrappers.

    Ray Data hands back a worker's exception as text only (its traceback inside an
    ActorDiedError or UserCodeException), so the one-sentence error is read from that text.
    """
    from rag import errors

    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, RagError) and type(current).__module__ == "rag.errors":
            return current
        current = current.__cause__
    found = _WORKER_ERROR.findall(str(exc))
    if found:
        name, message = found[-1]
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, RagError):
            return kind(message)
    return None
