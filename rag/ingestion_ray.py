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
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.documents import Chunk
from rag.errors import ConfigError, InputError, RagError
from rag.index import resolve_embed_model
from rag.ingestion import ChunkPlan, IngestReport, Progress, SilentProgress, SourceFile, prepare_file, run_ingest

LOCAL = "local"  # the address meaning "start a private cluster on this machine"
FILES_PER_BATCH = 4  # files one ParseAndChunk call handles: small, so parsing spreads out
CHUNKS_PER_BATCH = 256  # rows one EmbedBatch call gets: enough for length-sorted batching
# Passed on to the workers of a remote cluster, so they stay as offline as the driver.
_FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "DO_NOT_TRACK")


def ingest_folder_ray(
    root: str | Path,
    settings: Settings,
    address: str | None = LOCAL,
    progress: Progress | None = None,
    rebuild: bool = False,
) -> IngestReport:
    """Like :func:`rag.ingestion.ingest_folder`, with parsing and embedding on Ray.

    ``address`` is a running cluster's address (``host:port``, ``ray://...`` or ``auto``),
    or ``"local"``/``None`` to start a local cluster bound to 127.0.0.1 for this run. When
    the calling process already has a Ray session, that session is used and left running.
    Ray is only started when some file is new or changed. The cluster's size, not
    ``settings.workers``, decides how many files are parsed at once (see :func:`plan_actors`).
    """
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--ray needs Ray; install it with: pip install 'rag-service[ray]' (or 'ray[data]>=2.30').")
    progress = progress or SilentProgress()
    settings = resolve_embed_model(settings, rebuild=rebuild)
    session = RaySession(address or LOCAL, progress)

    def process(to_parse, known, store, report, stages):
        return _process_on_ray(to_parse, known, store, report, stages, settings, progress, rebuild, session)

    try:
        return run_ingest(root, settings, process, progress=progress, rebuild=rebuild)
    finally:
        session.close()


# -- the cluster ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ActorPlan:
    """How many actors each stage gets and what each one asks of the scheduler."""

    parse_actors: int
    embed_actors: int
    cpus_per_actor: float
    gpus_per_embed: int


def plan_actors(cpus: float, gpus: float, files: int) -> ActorPlan:
    """Split the cluster between the two stages (a pure function: the GPU decision's seam).

    With GPUs, one embedder per GPU and the CPUs parse. Without, the CPUs are shared half
    and half, since embedding is most of the work. Never more parsers than file batches,
    and on a one-CPU cluster both actors take half a CPU each so neither waits forever.
    """
    gpu_count = int(gpus)
    cpu_count = max(1, int(cpus))
    batches = max(1, math.ceil(files / FILES_PER_BATCH))
    if gpu_count >= 1:
        embed = gpu_count
        parse = max(1, cpu_count - embed)
    else:
        embed = max(1, cpu_count // 2)
        parse = max(1, cpu_count - embed)
    parse = min(parse, batches)
    cpus_per_actor = 1.0 if cpu_count >= parse + embed else cpu_count / (parse + embed)
    return ActorPlan(parse, embed, cpus_per_actor, 1 if gpu_count >= 1 else 0)


class RaySession:
    """Starts (or joins) Ray on first use and stops it again if it started it."""

    def __init__(self, address: str, progress: Progress) -> None:
        self.address = address
        self.progress = progress
        self._owned = False

    def start(self) -> float:
        """Connect; returns the seconds it took."""
        t = time.perf_counter()
        host, port = _host_port(self.address)
        if self.address == LOCAL or host in ("127.0.0.1", "localhost", "::1"):
            # Ray binds its servers to the node address, which by default is the machine's
            # routable IP even with _node_ip_address="127.0.0.1" (and it rewrites a loopback
            # address to that IP); this switch, Ray's single-machine mode, keeps both on
            # loopback. Ray reads it when it is imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if port is not None:
            _check_reachable(self.address, host, port)
        import logging

        import ray

        if ray.is_initialized():
            return time.perf_counter() - t
        if self.address == LOCAL:
            self.progress.log("starting a local Ray cluster (127.0.0.1 only)")
            ray.init(
                address=LOCAL,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            node_ip = ray.util.get_node_ip_address()
            if node_ip not in ("127.0.0.1", "::1"):
                self.progress.log(
                    f"note: the local Ray cluster listens on {node_ip}, not only on 127.0.0.1 "
                    "(ray was imported before RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 could be set)"
                )
        else:
            self.progress.log(f"connecting to the Ray cluster at {self.address}")
            env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
            package = str(Path(__file__).resolve().parent)
            try:
                ray.init(
                    address=self.address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    runtime_env={"py_modules": [package], "env_vars": env},
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"Could not connect to the Ray cluster at {self.address} ({exc.__class__.__name__}); check "
                    "the address, and for a cluster with token authentication set RAY_AUTH_MODE=token "
                    "(Ray never turns it on by itself for an explicit address)."
                ) from None
        self._owned = True
        self._quiet_ray_data()
        return time.perf_counter() - t

    @staticmethod
    def _quiet_ray_data() -> None:
        """Ray Data's own bars and log lines would fight the ingest progress bar (this
        process owns the session, so it may choose)."""
        import logging

        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        # A failed batch still reaches the driver as an exception with the worker's traceback.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)

    def resources(self) -> tuple[float, float]:
        import ray

        available = ray.cluster_resources()
        return float(available.get("CPU", 1.0)), float(available.get("GPU", 0.0))

    def close(self) -> None:
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False


def _host_port(address: str) -> tuple[str, int | None]:
    """The host and port of a ``host:port`` address; no port for "local", "auto", ray://."""
    if "://" in address or address in (LOCAL, "auto"):
        return address, None
    host, _, port = address.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else (address, None)


def _check_reachable(address: str, host: str, port: int) -> None:
    """Fail in seconds: Ray itself retries an unreachable cluster for minutes."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"No Ray cluster answers at {address} ({exc.strerror or exc.__class__.__name__}); start one with "
            "'ray start --head', check the address, or pass --ray without one to start a local cluster."
        ) from None


# -- the two stages (they run on the workers) ----------------------------------------------


class ParseAndChunk:
    """Stage 1: prepare each file (parse, chunk, search tokens) with ``rag.ingestion.prepare_file``.

    Input rows: ``order``, ``path``, ``abspath``, ``known`` (JSON list of the ids the index
    already holds for this file). Output: per file a ``file`` row, per chunk needing a
    vector a ``chunk`` row; all rows share one set of columns so Ray can stack them.
    """

    def __init__(self, settings: Settings) -> None:
        import rag  # noqa: F401  (offline switches before unstructured and transformers load)
        from rag.chunking import Chunker
        from rag.embedding import make_embedder

        self.error: RagError | None = None
        try:
            # Chunks are sized with the embedder's own tokenizer, loaded on this worker (the
            # model path resolves here, where the package is installed); no GPU needed for it.
            embedder = make_embedder(settings.replace(device="cpu"))
            embedder.warm_up()
        except RagError as exc:
            self.error = exc  # raised on the first batch: see _deferred
            return
        self.plan = ChunkPlan(
            tokenizer=embedder.tokenizer_source,
            max_tokens=min(settings.chunk_tokens, embedder.max_tokens),
            overlap=settings.chunk_overlap,
            max_bytes=int(settings.max_file_mb * 1024 * 1024),
        )
        self.chunker = Chunker(embedder.count_tokens, self.plan.max_tokens, self.plan.overlap, embedder.split_tokens)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _deferred(self.error)
        rows: list[dict[str, Any]] = []
        for order, path, abspath, known in zip(batch["order"], batch["path"], batch["abspath"], batch["known"]):
            if not os.path.exists(str(abspath)):
                # Not a bad file but a worker that cannot see the folder: stop, record nothing.
                raise InputError(
                    f"A Ray worker on {socket.gethostname()} cannot see {abspath}; the folder must be at the "
                    "same path on every node of the cluster (a shared file system)."
                )
            item = prepare_file(Path(str(abspath)), str(path), self.plan, self.chunker)
            seconds = json.dumps(item.seconds)
            if item.error is not None:
                rows.append(_row(order, "file", path, ok=False, error=item.error, seconds=seconds))
                continue
            already = set(json.loads(str(known)))
            fresh = [(c, t) for c, t in zip(item.chunks, item.tokens) if c.id not in already]
            for chunk, tokens in fresh:
                meta = chunk.to_dict()
                text = meta.pop("text")
                rows.append(
                    _row(
                        order,
                        "chunk",
                        path,
                        chunk=json.dumps(meta),
                        text=text,
                        tokens=json.dumps(tokens, ensure_ascii=False),
                    )
                )
            rows.append(
                _row(
                    order,
                    "file",
                    path,
                    ids=json.dumps([c.id for c in item.chunks]),
                    n_embed=len(fresh),
                    seconds=seconds,
                )
            )
        return _columns(rows)


class EmbedBatch:
    """Stage 2: add a ``vector`` column, embedding the ``chunk`` rows (``file`` rows get zeros)."""

    def __init__(self, settings: Settings) -> None:
        import rag  # noqa: F401
        from rag.embedding import make_embedder

        self.error: RagError | None = None
        # device "auto" means the GPU Ray assigned to this actor, if it has one.
        self.embedder = make_embedder(settings)
        try:
            self.embedder.warm_up()
        except RagError as exc:
            self.error = exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _deferred(self.error)
        t0 = time.perf_counter()
        is_chunk = batch["kind"] == "chunk"
        vectors = np.zeros((len(is_chunk), self.embedder.dimension), dtype=np.float32)
        if is_chunk.any():
            vectors[is_chunk] = getattr(self.embedder, "embed_documents", self.embedder.embed)(
                [str(t) for t in batch["text"][is_chunk]]
            )
        out = dict(batch)
        out["vector"] = vectors
        out["embed_s"] = np.zeros(len(is_chunk), dtype=np.float64)
        if len(is_chunk):
            out["embed_s"][0] = time.perf_counter() - t0  # the batch's time, counted once
        return out


def _deferred(error: RagError | None) -> None:
    """Raise the error an actor met while starting, now that it is asked to work.

    Raised from ``__init__`` it would make Ray restart the actor again and again, printing
    each worker traceback; raised from a batch it stops the run at once, and its sentence
    reaches the driver (see :func:`_find_rag_error`).
    """
    if error is not None:
        raise error


_DEFAULTS: dict[str, Any] = {
    "ok": True,
    "error": "",
    "ids": "",
    "n_embed": 0,
    "chunk": "",
    "text": "",
    "tokens": "",
    "seconds": "{}",
}


def _row(order, kind: str, path, **values: Any) -> dict[str, Any]:
    row = {"order": int(order), "kind": kind, "path": str(path), **_DEFAULTS}
    row.update(values)
    return row


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    names = ["order", "kind", "path", *_DEFAULTS]
    if not rows:
        return {name: np.array([], dtype=object) for name in names}
    return {name: np.array([row[name] for row in rows]) for name in names}


# -- the driver ----------------------------------------------------------------------------


def _process_on_ray(
    to_parse: list[SourceFile],
    known,
    store,
    report: IngestReport,
    stages: dict[str, float],
    settings: Settings,
    progress: Progress,
    rebuild: bool,
    session: RaySession,
):
    """The Ray counterpart of ``rag.ingestion._process``: same inputs, same outputs."""
    progress.stage("ingest", len(to_parse))
    if not to_parse:  # only deletions: nothing for a cluster to do
        progress.done()
        return [], np.zeros((0, 0), dtype=np.float32), [], [], []
    stages["ray_start"] = session.start()
    import ray.data

    cpus, gpus = session.resources()
    plan = plan_actors(cpus, gpus, len(to_parse))
    progress.log(
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
            "known": json.dumps([] if rebuild else [c.id for c in store.chunks_of(s.path)]),
        }
        for i, s in enumerate(to_parse)
    ]
    dataset = (
        ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / FILES_PER_BATCH)))
        .map_batches(
            ParseAndChunk,
            fn_constructor_kwargs={"settings": settings},
            batch_size=FILES_PER_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.parse_actors),
            num_cpus=plan.cpus_per_actor,
        )
        .map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"settings": settings},
            batch_size=CHUNKS_PER_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.embed_actors),
            num_cpus=plan.cpus_per_actor,
            num_gpus=plan.gpus_per_embed,
        )
    )

    t = time.perf_counter()
    files: dict[int, dict[str, Any]] = {}
    embedded: dict[int, dict[str, tuple[dict[str, Any], np.ndarray]]] = {}
    tracker = _FileTracker(progress)
    try:
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
    except Exception as exc:  # noqa: BLE001 - surface a worker's one-sentence error as is
        expected = _find_rag_error(exc)
        if expected is not None:
            raise expected from None
        raise
    stages["prepare_and_embed"] = time.perf_counter() - t
    progress.done()

    # Back in file order, with the same per-file rules as the plain path.
    per_file: list[tuple[SourceFile, list[str]]] = []
    failed_now: list[tuple[SourceFile, str]] = []
    new_chunks: list[Chunk] = []
    tokens: list[list[str]] = []
    vectors: list[np.ndarray] = []
    seen_ids: set[str] = set()
    for order, source in enumerate(to_parse):
        row = files[order]
        for key, value in json.loads(str(row["seconds"])).items():
            stages[f"{key}_cpu"] = stages.get(f"{key}_cpu", 0.0) + value
        if not bool(row["ok"]):
            error = str(row["error"])
            failed_now.append((source, error))
            report.files_failed += 1
            report.failed.append({"path": source.path, "reason": error})
            continue
        ids = json.loads(str(row["ids"]))
        per_file.append((source, ids))
        if source.path in known:
            report.files_changed += 1
        else:
            report.files_new += 1
        keep = set() if rebuild else store.existing_ids(ids)
        mine = embedded.get(order, {})
        for chunk_id in ids:
            if chunk_id in keep or chunk_id in seen_ids:
                continue
            if chunk_id not in mine:  # the store changed under the write lock: never expected
                raise RuntimeError(f"chunk {chunk_id} of {source.path} was neither in the index nor embedded")
            meta, vector = mine[chunk_id]
            tokens.append(meta.pop("tokens"))
            new_chunks.append(Chunk(**meta))
            vectors.append(vector)
            seen_ids.add(chunk_id)
    report.chunks_embedded = len(new_chunks)
    dimension = vectors[0].shape[0] if vectors else 0
    matrix = np.stack(vectors) if vectors else np.zeros((0, dimension), dtype=np.float32)
    return new_chunks, matrix, tokens, per_file, failed_now


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
