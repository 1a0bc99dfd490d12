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


def shared_path(*parts: str) -> Path:
    """A path under ../shared; tests that need it skip with a clear reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is not beside the repository)")
    return path
