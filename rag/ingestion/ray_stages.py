"""The two stages of a Ray ingest, as actor classes that run on the workers: parse and chunk
(with search tokens), then embed."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import InputError, RagError
from rag.ingestion.preparing import ChunkPlan, prepare_file


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
            assert item.chunks is not None and item.tokens is not None  # prepared without an error
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
