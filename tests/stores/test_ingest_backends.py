"""The ingest's guarantees on every vector store backend: incremental add/change/delete, the
crash-safe commit (or, for Qdrant, the repair after a crash), switching backends, and index
folders written before segments. Real files, real embedder, real FAISS and Qdrant."""

from __future__ import annotations

import importlib.util
import json
import signal

import numpy as np
import pytest

import rag.ingestion
from rag.index import DB_NAME, Index
from rag.ingestion import ingest_folder
from rag.stores.chunk_store import ChunkStore
from rag.stores.dense import DenseIndex, DenseParams
from rag.stores.qdrant import close_local_clients
from rag.stores.sparse import SparseIndex
from tests import docfactory
from tests.ingest_cli import sources, start_cli, wait_for

BACKENDS = [
    "faiss",
    "faiss-flat",
    "faiss-hnsw",
    "faiss-ivf-sq8",
    pytest.param(
        "qdrant",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("qdrant_client") is None,
            reason="qdrant-client is not installed (pip install .[qdrant])",
        ),
    ),
]


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    close_local_clients()


def rows(settings) -> list[int]:
    store = ChunkStore(settings.index_dir / DB_NAME, readonly=True)
    try:
        return store.all_rows().tolist()
    finally:
        store.close()


def held_ids(index: Index) -> list[int]:
    return sorted(index._vectors.ids().tolist())


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_incremental_add_change_delete(backend, small_folder, settings, embedder):
    settings = settings.replace(vector_store=backend)
    first = ingest_folder(small_folder, settings, embedder=embedder)
    assert first.files_new == 3 and first.chunks_total > 0
    unchanged = ingest_folder(small_folder, settings, embedder=embedder)
    assert unchanged.generation == first.generation

    docfactory.make_md(
        small_folder / "pumps.md",
        "Pump guide",
        ["The Zephyr pump runs at 3400 rpm.", "Replace the impeller every 5000 hours."],
    )
    docfactory.make_txt(small_folder / "new.txt", "Quokkas live on Rottnest Island.\n")
    (small_folder / "harbour.txt").unlink()
    update = ingest_folder(small_folder, settings, embedder=embedder)
    assert (update.files_new, update.files_changed, update.files_removed) == (1, 1, 1)

    index = Index.open(settings, embedder=embedder)
    assert json.loads(index.meta["vector_store"])["name"] == backend
    assert held_ids(index) == rows(settings)  # the vector store holds exactly the committed chunks
    assert index.size == update.chunks_total
    for mode in ("dense", "hybrid"):
        assert sources(index.search("impeller replacement hours", 1, mode=mode)) == ["pumps.md"]
        assert sources(index.search("Rottnest Island quokkas", 1, mode=mode)) == ["new.txt"]
        assert "harbour.txt" not in sources(index.search("harbour lighthouse 1887", 5, mode=mode))
    assert sources(index.search("长城有多长", 1, mode="sparse")) == ["中文/长城.txt"]
    if backend != "qdrant":
        # Only the live generation's files and the one before it stay.
        live = set(index._vectors.files()) | set(index._keywords.files())
        names = {p.name for p in settings.index_dir.iterdir() if p.name.startswith(("dense-", "sparse-"))}
        assert live <= names


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_at_the_commit(backend, small_folder, settings, embedder, tmp_path):
    """Killed after the stores were written, before the SQLite commit: the FAISS backends still
    show the previous generation whole; Qdrant shows the previous chunks (new points have no
    rows yet) and is brought back in line by the next ingest."""
    settings = settings.replace(vector_store=backend)
    ingest_folder(small_folder, settings, embedder=embedder)
    close_local_clients()  # Qdrant's local mode: one process at a time
    generation = Index.open(settings, embedder=embedder).generation
    close_local_clients()
    docfactory.make_txt(small_folder / "extra.txt", "The secret ingredient is cardamom.\n")
    (small_folder / "harbour.txt").unlink()
    marker = tmp_path / "at-commit"
    proc = start_cli(
        small_folder, settings.index_dir, {"RAG_TEST_PAUSE_BEFORE_COMMIT": str(marker), "RAG_VECTOR_STORE": backend}
    )
    wait_for(marker.exists)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    after = Index.open(settings, embedder=embedder)
    assert after.generation == generation
    assert "extra.txt" not in after.documents()
    assert "extra.txt" not in sources(after.search("secret ingredient cardamom", 5))
    assert sources(after.search("harbour lighthouse built in 1887", 1)) == ["harbour.txt"]
    if backend == "qdrant":
        assert (settings.index_dir / rag.ingestion.DIRTY_MARKER).exists()
    else:
        assert sources(after.search("harbour lighthouse built in 1887", 1, mode="dense")) == ["harbour.txt"]
        assert held_ids(after) == rows(settings)

    report = ingest_folder(small_folder, settings, embedder=embedder)
    assert report.files_new == 1 and report.files_removed == 1 and report.generation == generation + 1
    index = Index.open(settings, embedder=embedder)
    assert held_ids(index) == rows(settings)
    assert sources(index.search("secret ingredient cardamom", 1, mode="dense")) == ["extra.txt"]
    assert not (settings.index_dir / rag.ingestion.DIRTY_MARKER).exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("qdrant_client") is None, reason="qdrant-client is not installed")
def test_qdrant_is_repaired_after_an_ingest_that_failed_before_its_commit(small_folder, settings, embedder):
    settings = settings.replace(vector_store="qdrant")
    ingest_folder(small_folder, settings, embedder=embedder)
    docfactory.make_txt(small_folder / "extra.txt", "The secret ingredient is cardamom.\n")
    (small_folder / "harbour.txt").unlink()

    def fail():
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ingest_folder(small_folder, settings, embedder=embedder, before_commit=fail)
    index = Index.open(settings, embedder=embedder)
    assert held_ids(index) != rows(settings)  # Qdrant went ahead of the rolled-back chunk store
    assert "extra.txt" not in sources(index.search("secret ingredient cardamom", 5, mode="dense"))

    ingest_folder(small_folder, settings, embedder=embedder)
    index = Index.open(settings, embedder=embedder)
    assert held_ids(index) == rows(settings)
    assert sources(index.search("secret ingredient cardamom", 1, mode="dense")) == ["extra.txt"]


@pytest.mark.slow
def test_switching_backend_moves_the_vectors_over(small_folder, settings, embedder):
    ingest_folder(small_folder, settings, embedder=embedder)
    docfactory.make_txt(small_folder / "new.txt", "Quokkas live on Rottnest Island.\n")
    moved = settings.replace(vector_store="faiss-ivf-sq8")
    report = ingest_folder(small_folder, moved, embedder=embedder)
    assert report.chunks_embedded == 1  # only the new file is embedded; the rest come from chunks.sqlite
    index = Index.open(settings, embedder=embedder)  # read with the backend the index recorded
    assert json.loads(index.meta["vector_store"])["name"] == "faiss-ivf-sq8"
    assert held_ids(index) == rows(settings)
    assert sources(index.search("Zephyr pump rpm", 1, mode="dense")) == ["pumps.md"]


def write_legacy_generation(settings) -> int:
    """Rewrite the live generation as ingests before segments wrote it (dense-N.faiss with
    DenseIndex, sparse-N.npz with SparseIndex, no store states in meta)."""
    directory = settings.index_dir
    store = ChunkStore(directory / DB_NAME)
    meta = store.get_meta()
    generation = int(meta["generation"])
    ids, vectors = zip(*store.iter_vectors())
    dense = DenseIndex.build(np.concatenate(vectors), np.concatenate(ids), DenseParams(), on_gpu=False)
    rows_, tokens = zip(*store.iter_tokens())
    sparse = SparseIndex.build([t for part in tokens for t in part], np.concatenate(rows_))
    for path in list(directory.iterdir()):
        if path.name.startswith(("dense-", "sparse-")):
            path.unlink()
    dense.save(directory / f"dense-{generation:06d}.faiss")
    sparse.save(directory / f"sparse-{generation:06d}.npz")
    store.begin()
    store._db.execute("DELETE FROM meta WHERE key IN ('vector_store', 'keyword_store')")
    store.set_meta({"dense_kind": dense.kind})
    store.commit()
    store.close()
    return generation


def test_an_index_folder_written_before_segments_opens_and_upgrades(small_folder, settings, embedder):
    ingest_folder(small_folder, settings, embedder=embedder)
    expected = Index.open(settings, embedder=embedder).search("Zephyr pump rpm", 3)
    generation = write_legacy_generation(settings)

    old = Index.open(settings, embedder=embedder)
    assert old.generation == generation and old.stats()["dense_kind"] == "flat"
    hits = old.search("Zephyr pump rpm", 3)
    assert [h.chunk.id for h in hits] == [h.chunk.id for h in expected]
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected], rel=1e-5)
    assert sources(old.search("长城有多长", 1, mode="sparse")) == ["中文/长城.txt"]

    docfactory.make_txt(small_folder / "new.txt", "Quokkas live on Rottnest Island.\n")
    report = ingest_folder(small_folder, settings, embedder=embedder)
    assert report.chunks_embedded == 1
    index = Index.open(settings, embedder=embedder)
    state = json.loads(index.meta["vector_store"])
    assert state["name"] == "faiss"
    assert held_ids(index) == rows(settings)
    assert sources(index.search("Rottnest Island quokkas", 1)) == ["new.txt"]
    assert sources(index.search("Zephyr pump rpm", 1, mode="sparse")) == ["pumps.md"]
