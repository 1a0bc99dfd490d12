"""The int8 ONNX Runtime document encoder: close to the fp32 model, the same answers from a real
index, recorded in the index, and refused when it strays."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embedding import FULL_PRECISION, SentenceTransformerEmbedder, resolve_model_path
from rag.errors import ConfigError
from rag.index import Index
from rag.ingestion import ingest_folder
from tests import docfactory

pytest.importorskip("onnxruntime")

# Chunk-sized passages, none of them the probes the quantised copy is checked on at build.
PASSAGES = [
    "The Eiffel Tower was finished in 1889 as the entrance arch to the World's Fair in Paris. "
    "It is 330 metres tall and was the tallest man-made structure in the world for 41 years, "
    "until the Chrysler Building in New York was completed in 1930.",
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into glucose and "
    "oxygen. It takes place in the chloroplasts, whose chlorophyll absorbs red and blue light "
    "and reflects green, which is why leaves look green to us.",
    "故宫又称紫禁城，是明清两代的皇家宫殿，位于北京中轴线的中心，占地面积约七十二万平方米，"
    "建筑面积约十五万平方米，有大小宫殿七十多座，房屋九千余间。",
    "员工出差期间每天可以报销四十五欧元的餐费，住宿费用在大多数城市每晚不超过一百二十欧元，"
    "所有发票须在出差结束后三十天内提交。",
]


@pytest.fixture(scope="module")
def int8():
    embedder = SentenceTransformerEmbedder(device="cpu", document_encoder="onnx-int8")
    embedder.warm_up_documents()
    return embedder


def test_int8_vectors_are_close_to_the_fp32_ones(int8, minilm):
    assert int8.document_encoder_name != FULL_PRECISION
    got = int8.embed_documents(PASSAGES)
    want = minilm.embed(PASSAGES)
    assert got.shape == want.shape == (len(PASSAGES), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = (got * want).sum(axis=1)
    assert cosines.min() >= 0.99, cosines
    # Each passage is still nearest to its own fp32 vector, by a wide margin.
    assert list((got @ want.T).argmax(axis=1)) == list(range(len(PASSAGES)))


def test_batches_sorted_by_length_come_back_in_the_order_given(int8, minilm):
    # Several batches of mixed lengths; activations are scaled per batch, so a text's vector
    # moves a little with its batch companions, never away from its own fp32 vector.
    fillers = [f"Line {n}: " + "word " * (n % 40) for n in range(150)]
    texts = fillers[:70] + PASSAGES + fillers[70:]
    whole = int8.embed_documents(texts)
    rows = [70 + i for i in range(len(PASSAGES))]
    fp32 = minilm.embed(PASSAGES)
    assert list((whole[rows] @ fp32.T).argmax(axis=1)) == list(range(len(PASSAGES)))
    alone = np.vstack([int8.embed_documents([t]) for t in PASSAGES])
    assert ((whole[rows] * alone).sum(axis=1)).min() >= 0.99
    assert int8.embed_documents([]).shape == (0, 384)
    assert np.allclose(int8.embed(PASSAGES[:1]), fp32[:1], atol=1e-5)  # embed() stays the fp32 model


def _folder(tmp_path):
    root = tmp_path / "docs"
    docfactory.make_txt(root / "tower.txt", PASSAGES[0])
    docfactory.make_txt(root / "plants.txt", PASSAGES[1])
    docfactory.make_txt(root / "palace.txt", PASSAGES[2])
    docfactory.make_txt(root / "travel.txt", PASSAGES[3])
    docfactory.make_md(
        root / "tea.md",
        "Tea",
        [],
        [
            (
                "Brewing",
                [
                    "Green tea is brewed with water at about 80 degrees; "
                    "boiling water scalds the leaves and makes it bitter."
                ],
            )
        ],
    )
    return root


QUESTIONS = {
    "When was the Eiffel Tower finished?": "tower.txt",
    "How do plants make sugar from light?": "plants.txt",
    "How hot should the water be for green tea?": "tea.md",
    "What is the daily meal allowance on business trips?": "travel.txt",
}


@pytest.mark.slow
def test_an_int8_index_answers_as_the_fp32_index_and_records_its_encoder(tmp_path):
    root = _folder(tmp_path)
    tops = {}
    for encoder in ("onnx-int8", "sentence-transformers"):
        settings = Settings.load(
            env={},
            overrides={
                "index_dir": tmp_path / encoder,
                "device": "cpu",
                "embed_model": "all-MiniLM-L6-v2",
                "document_encoder": encoder,
            },
        )
        report = ingest_folder(root, settings)
        index = Index.open(settings)
        assert index.meta["document_encoder"] == report.document_encoder
        tops[encoder] = {q: index.search(q, k=1, mode="dense")[0].chunk.source for q in QUESTIONS}
    assert tops["onnx-int8"] == tops["sentence-transformers"] == QUESTIONS
    assert (
        Index.open(Settings.load(env={}, overrides={"index_dir": tmp_path / "onnx-int8"}))
        .meta["document_encoder"]
        .startswith("onnxruntime-int8")
    )
    assert (
        Index.open(Settings.load(env={}, overrides={"index_dir": tmp_path / "sentence-transformers"})).meta[
            "document_encoder"
        ]
        == FULL_PRECISION
    )


@pytest.mark.slow
def test_a_copy_that_strays_is_refused(tmp_path, int8, monkeypatch):
    """With an impossible bar, the check at build refuses the copy: "auto" falls back to the
    fp32 model, "onnx-int8" says why it cannot run, and no file is left behind."""
    import rag.document_encoding as de
    from rag.query_encoding import cache_key

    model_dir = resolve_model_path("all-MiniLM-L6-v2")
    cache = tmp_path / "cache"
    target = cache / "query-encoders" / cache_key(Path(model_dir))
    target.mkdir(parents=True)
    source = de.OnnxQueryEncoder.exported(model_dir, None) / "model.onnx"  # the fp32 export, made once
    shutil.copy(source, target / "model.onnx")
    monkeypatch.setattr(de, "MIN_COSINE", 1.01)

    auto = SentenceTransformerEmbedder(device="cpu", cache_dir=cache)
    assert auto.document_encoder_name == FULL_PRECISION
    assert np.allclose(auto.embed_documents(PASSAGES[:1]), auto.embed(PASSAGES[:1]))
    with pytest.raises(ConfigError, match="onnx-int8"):
        SentenceTransformerEmbedder(device="cpu", cache_dir=cache, document_encoder="onnx-int8").warm_up_documents()
    assert sorted(p.name for p in target.iterdir()) == ["model.onnx"]


def test_document_encoder_setting_is_checked():
    with pytest.raises(ConfigError, match="document_encoder"):
        SentenceTransformerEmbedder(document_encoder="int4")
