"""Ingestion on Ray: Ray Data batches must build the very index the plain path builds.

The Ray tests need the ``ray`` extra and skip without it. They start a local cluster that
listens on 127.0.0.1 only, and check that before using it: a Ray process listening on any
other address fails the run. The decision and error-unwrapping helpers are tested without Ray.
"""

from __future__ import annotations

import ipaddress
import os

# Read by Ray when it is imported: bind the local cluster to loopback (see rag.ingestion_ray).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.errors import ConfigError  # noqa: E402
from rag.index import DB_NAME, Index  # noqa: E402
from rag.ingestion import ingest_folder  # noqa: E402
from rag.ingestion_ray import ActorPlan, _find_rag_error, ingest_folder_ray, plan_actors  # noqa: E402
from rag.stores.chunk_store import ChunkStore  # noqa: E402
from tests import docfactory  # noqa: E402

TURBINE = [f"Paragraph {i} explains maintenance step {i} of the turbine in detail." * 4 for i in range(12)]


class RecordingProgress:
    """Keeps what the pipeline reported, per stage."""

    def __init__(self) -> None:
        self.files: dict[str, int] = {}
        self.chunks: dict[str, int] = {}
        self.lines: list[str] = []
        self._stage = ""

    def stage(self, name: str, total: int) -> None:
        self._stage = name
        self.files[name] = self.chunks[name] = 0

    def advance(self, n: int = 1, chunks: int = 0) -> None:
        self.files[self._stage] += n
        self.chunks[self._stage] += chunks

    def log(self, line: str) -> None:
        self.lines.append(line)

    def done(self) -> None:
        pass


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def ray_listeners() -> list[tuple[str, str, int]]:
    """(process, address, port) of every socket this process and its descendants listen on."""
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    found = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            sockets = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:
            continue
        found += [(name, s.laddr.ip, s.laddr.port) for s in sockets if s.status == psutil.CONN_LISTEN]
    return found


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    pytest.importorskip("ray.data", reason="ray is installed without ray[data]")
    if ray.is_initialized():
        pytest.skip("a Ray session is already open in this process")
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", num_cpus=2, log_to_driver=False)
    try:
        listeners = ray_listeners()
        exposed = [item for item in listeners if not _is_loopback(item[1])]
        assert listeners and not exposed, f"Ray listens beyond loopback: {exposed}"
        yield ray
    finally:
        ray.shutdown()


def _folder(root):
    expected = docfactory.make_mixed_folder(root)
    docfactory.make_md(root / "turbine.md", "Turbine", TURBINE)
    return expected


def _chunk_ids(settings: Settings, embedder) -> dict[str, list[str]]:
    return {path: record.chunk_ids for path, record in Index.open(settings, embedder=embedder).documents().items()}


def _vectors(settings: Settings) -> dict[str, np.ndarray]:
    store = ChunkStore(settings.index_dir / DB_NAME, readonly=True)
    try:
        rows = {row: chunk.id for row, chunk in store.chunks_by_rows(range(1, 10_000)).items()}
        return {rows[int(r)]: v for ids, vectors in store.iter_vectors() for r, v in zip(ids, vectors)}
    finally:
        store.close()


def _same_counts(plain, on_ray) -> None:
    keys = (
        "files_new",
        "files_changed",
        "files_unchanged",
        "files_removed",
        "files_failed",
        "chunks_added",
        "chunks_removed",
        "chunks_embedded",
        "chunks_total",
        "documents_total",
        "generation",
    )
    assert {k: getattr(on_ray, k) for k in keys} == {k: getattr(plain, k) for k in keys}
    assert sorted(f["path"] for f in on_ray.failed) == sorted(f["path"] for f in plain.failed)
    assert on_ray.skipped == plain.skipped


@pytest.mark.ray
@pytest.mark.slow
def test_ray_builds_the_same_index_and_updates_it_incrementally(tmp_path, embedder, ray_cluster):
    root = tmp_path / "docs"
    expected = _folder(root)
    plain_settings = Settings.load(env={}, overrides={"index_dir": tmp_path / "plain"})
    ray_settings = Settings.load(env={}, overrides={"index_dir": tmp_path / "ray"})

    plain = ingest_folder(root, plain_settings, embedder=embedder)
    progress = RecordingProgress()
    on_ray = ingest_folder_ray(root, ray_settings, progress=progress)
    _same_counts(plain, on_ray)
    assert on_ray.files_failed == len(expected["bad"]) and on_ray.chunks_embedded > len(expected["good"])
    assert progress.files["ingest"] == on_ray.files_new + on_ray.files_failed
    assert progress.chunks["ingest"] == on_ray.chunks_embedded

    # Same chunks, same vectors, and the index answers like the plain one.
    assert _chunk_ids(ray_settings, embedder) == _chunk_ids(plain_settings, embedder)
    plain_vectors, ray_vectors = _vectors(plain_settings), _vectors(ray_settings)
    assert ray_vectors.keys() == plain_vectors.keys()
    for chunk_id, vector in plain_vectors.items():
        np.testing.assert_allclose(ray_vectors[chunk_id], vector, atol=1e-4)
    index = Index.open(ray_settings, embedder=embedder)
    for name, fact in docfactory.FACTS.items():
        path = next(p for p in expected["good"] if p.endswith(name))
        assert path in [h.chunk.source for h in index.search(fact, k=3, mode="hybrid")], name

    # Nothing changed: nothing is parsed or embedded, and Ray is not even started.
    again = ingest_folder_ray(root, ray_settings)
    assert again.chunks_embedded == 0 and again.files_unchanged == len(expected["good"]) + 1
    assert again.generation == on_ray.generation and "ray_start" not in again.stage_seconds

    # One file grows, one goes, one arrives: both paths make the same change.
    docfactory.make_md(root / "turbine.md", "Turbine", TURBINE + ["One more closing paragraph."])
    (root / "notes.txt").unlink()
    docfactory.make_txt(root / "new.txt", "The observatory dome opens at 21:00.\n")
    plain_update = ingest_folder(root, plain_settings, embedder=embedder)
    ray_update = ingest_folder_ray(root, ray_settings)
    _same_counts(plain_update, ray_update)
    assert (ray_update.files_new, ray_update.files_changed, ray_update.files_removed) == (1, 1, 1)
    assert 0 < ray_update.chunks_embedded < len(TURBINE) // 2  # unchanged turbine chunks kept their vectors
    assert _chunk_ids(ray_settings, embedder) == _chunk_ids(plain_settings, embedder)
    hits = Index.open(ray_settings, embedder=embedder).search("observatory dome opening time", k=1)
    assert [h.chunk.source for h in hits] == ["new.txt"]

    # Only a deletion: committed without starting Ray.
    (root / "new.txt").unlink()
    removal = ingest_folder_ray(root, ray_settings)
    assert removal.files_removed == 1 and "ray_start" not in removal.stage_seconds
    assert "new.txt" not in Index.open(ray_settings, embedder=embedder).documents()


@pytest.mark.ray
@pytest.mark.slow
def test_a_model_the_workers_cannot_load_is_one_clear_error(tmp_path, ray_cluster):
    root = tmp_path / "docs"
    docfactory.make_txt(root / "a.txt", "The Zephyr pump runs at 3400 rpm.\n")
    settings = Settings.load(
        env={}, overrides={"index_dir": tmp_path / "index", "embed_model": str(tmp_path / "no-model")}
    )
    with pytest.raises(ConfigError, match="could not be loaded"):
        ingest_folder_ray(root, settings)
    store = ChunkStore(settings.index_dir / DB_NAME, readonly=True)
    try:
        assert "generation" not in store.get_meta() and store.count_chunks() == 0  # nothing committed
    finally:
        store.close()


# -- no Ray needed -------------------------------------------------------------------------


def test_the_cluster_is_split_between_parsing_and_embedding():
    # No GPU: half the CPUs embed, the rest parse; never more parsers than file batches.
    assert plan_actors(2, 0, files=100) == ActorPlan(1, 1, 1.0, 0)
    assert plan_actors(16, 0, files=100) == ActorPlan(8, 8, 1.0, 0)
    assert plan_actors(16, 0, files=5).parse_actors == 2
    # GPUs: one embedder per GPU, each holding one; the CPUs parse.
    assert plan_actors(16, 4, files=1000) == ActorPlan(12, 4, 1.0, 1)
    # One CPU: two half-CPU actors rather than one that waits forever for a free CPU.
    assert plan_actors(1, 0, files=10) == ActorPlan(1, 1, 0.5, 0)


def test_a_workers_one_sentence_error_is_recovered_from_rays_text():
    text = (
        "ray.exceptions.ActorDiedError: The actor died because of an error raised in its creation task\n"
        "Traceback (most recent call last):\n  ...\n"
        "rag.errors.ConfigError: Embedding model 'x' could not be loaded (OSError); give a local model path.\n"
    )
    error = _find_rag_error(RuntimeError(text))
    assert isinstance(error, ConfigError) and str(error).startswith("Embedding model 'x'")
    assert _find_rag_error(RuntimeError("some other failure")) is None
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = ConfigError("the original")
    assert str(_find_rag_error(wrapped)) == "the original"
