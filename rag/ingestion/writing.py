"""Writing a generation's vector and keyword stores beside the live ones, and removing the
files no reader needs any more."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.config import Settings
from rag.ingestion.report import Progress
from rag.stores.segments import fsync

if TYPE_CHECKING:
    from rag.stores.chunk_store import ChunkStore


@dataclass
class WrittenStores:
    """What :func:`write_stores` wrote for a generation, and what to do once it is committed."""

    vector_state: dict[str, Any]
    keyword_state: dict[str, Any]
    files: list[str]
    previous_files: list[str]
    bytes_written: int
    dirty_marker: Path | None = None

    def committed(self) -> None:
        """The generation is committed: an in-place store is in line with the chunk store again."""
        if self.dirty_marker is not None:
            self.dirty_marker.unlink(missing_ok=True)


DIRTY_MARKER = ".vector-store-dirty"


@dataclass
class RowChanges:
    """What this run changes in the chunk store's rows, for stores that take only the changes."""

    removed_rows: np.ndarray  # int64 row ids
    added_rows: np.ndarray  # int64 row ids, one per row of ``vectors`` and ``tokens``
    vectors: np.ndarray
    tokens: list[list[str]]


def write_stores(
    store: ChunkStore,
    directory: Path,
    generation: int,
    settings: Settings,
    meta: dict[str, str],
    dimension: int,
    rebuild: bool,
    changes: RowChanges,
    progress: Progress,
) -> WrittenStores:
    """Bring the vector and keyword stores to what the chunk store holds now (inside its open
    transaction) and write their files for ``generation``, beside the live ones.

    A store of the configured backend that the live generation recorded takes only the changes
    (removed and added rows): with the default stores, a small ingest writes a small delta
    segment and a deletion set. A new index, ``--rebuild``, a folder written before segments, or
    another backend configured than the one recorded, gets a new store filled from every chunk
    in ``chunks.sqlite`` (vectors and tokens are read in batches).
    """
    from rag.index import store_states
    from rag.stores.registry import StoreOpener, keyword_store_class, vector_store_class

    opener = StoreOpener(settings, directory)
    old_vector, old_keyword = store_states(meta)
    previous = []
    for state, cls in ((old_vector, vector_store_class), (old_keyword, keyword_store_class)):
        if state:
            try:
                store_class: Any = cls(state["name"])
                previous += store_class.open(directory, state, settings, dimension).files()
            except (OSError, ValueError, KeyError):
                pass
    dirty: Path | None = None

    vector_fresh = rebuild or old_vector is None or old_vector.get("name") != settings.vector_store
    vector = opener.vector(None if vector_fresh else old_vector, dimension)
    if not getattr(vector, "versioned", True):
        # Changed in place: mark it before touching it, so a crash before the commit is repaired.
        dirty = directory / DIRTY_MARKER
        was_dirty = dirty.exists()
        dirty.write_text(str(generation))
        fsync(dirty)
        if vector_fresh or was_dirty:
            _reconcile(vector, store, progress)
        else:
            vector.delete(changes.removed_rows)
            vector.add(changes.added_rows, changes.vectors)
    elif vector_fresh:
        progress.log(f"building the vector index over {store.count_chunks()} chunks")
        for ids, part in store.iter_vectors():
            vector.add(ids, part)
    else:
        vector.delete(changes.removed_rows)
        vector.add(changes.added_rows, changes.vectors)
    vector_state = vector.save(generation)

    keyword_fresh = rebuild or old_keyword is None or old_keyword.get("name") != settings.keyword_store
    keyword = opener.keyword(None if keyword_fresh else old_keyword)
    if keyword_fresh:
        for ids, token_lists in store.iter_tokens():
            keyword.add(ids, token_lists)
    else:
        keyword.delete(changes.removed_rows)
        keyword.add(changes.added_rows, changes.tokens)
    keyword_state = keyword.save(generation)
    fsync(directory)
    files = vector.files() + keyword.files()
    old = set(previous)
    written = sum((directory / name).stat().st_size for name in files if name not in old)
    return WrittenStores(vector_state, keyword_state, files, previous, written, dirty)


def _reconcile(vector: Any, store: ChunkStore, progress: Progress) -> None:
    """Make an in-place vector store hold exactly the chunk store's rows (after a crash, or when
    it is filled for the first time)."""
    want = store.all_rows()
    have = vector.ids()
    extra = np.setdiff1d(have, want)
    missing = set(np.setdiff1d(want, have).tolist())
    if len(extra) or missing:
        progress.log(
            f"bringing the {vector.name} store in line with the chunk store "
            f"({len(extra)} to remove, {len(missing)} to add)"
        )
    vector.delete(extra)
    if missing:
        for ids, part in store.iter_vectors():
            keep = np.fromiter((int(i) in missing for i in ids), dtype=bool, count=len(ids))
            if keep.any():
                vector.add(ids[keep], part[keep])


STORE_FILE_PREFIXES = ("dense-", "sparse-")


def remove_unused_files(directory: Path, keep: list[list[str]]) -> None:
    """Remove store files that neither the live generation nor the one before it reads (a reader
    may still be loading that one)."""
    wanted = {name for names in keep for name in names}
    for path in directory.iterdir():
        if path.name.startswith(STORE_FILE_PREFIXES) and path.name not in wanted and path.is_file():
            path.unlink(missing_ok=True)
