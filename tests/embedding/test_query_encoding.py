"""The ONNX Runtime query encoder gives the sentence-transformers vectors, and falls back cleanly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from rag.embedding import SentenceTransformerEmbedder, resolve_model_path
from rag.errors import ConfigError

pytest.importorskip("onnxruntime")

TEXTS = [
    "How long is the Great Wall of China?",
    "长城全长多少公里？",
    "SmolLM2 是一个小型语言模型 with 135M parameters.",
    "ok",
    "word " * 400,  # longer than the model's 256 tokens: both must truncate the same way
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.mark.slow
def test_onnx_queries_match_sentence_transformers(minilm, cache_dir):
    onnx = SentenceTransformerEmbedder(device="cpu", query_encoder="onnx", cache_dir=cache_dir)
    onnx.warm_up_queries()
    assert onnx._model is None, "answering queries must not load the sentence-transformers model"
    got = onnx.embed_queries(TEXTS)
    want = minilm.embed(TEXTS)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    for text in TEXTS[:3]:
        assert onnx.unknown_ratio(text) == pytest.approx(minilm.unknown_ratio(text))
    assert list((cache_dir / "query-encoders").iterdir()), "the export is cached"


def test_the_cached_export_is_reused(cache_dir, monkeypatch):
    import rag.query_encoding as qe

    SentenceTransformerEmbedder(device="cpu", query_encoder="onnx", cache_dir=cache_dir).warm_up_queries()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although a cached copy exists")

    monkeypatch.setattr(qe, "export", no_export)
    again = SentenceTransformerEmbedder(device="cpu", query_encoder="onnx", cache_dir=cache_dir)
    assert again.embed_queries(["a question"]).shape == (1, 384)


def _model_with_cls_pooling(tmp_path):
    """A copy of the default model whose pipeline pools the [CLS] token: not exportable here."""
    source = resolve_model_path("all-MiniLM-L6-v2")
    target = tmp_path / "cls-model"
    shutil.copytree(source, target)
    pooling = target / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    return target


def test_auto_falls_back_to_sentence_transformers_for_other_pooling(tmp_path):
    model = _model_with_cls_pooling(tmp_path)
    auto = SentenceTransformerEmbedder(str(model), device="cpu", query_encoder="auto", cache_dir=tmp_path / "cache")
    vectors = auto.embed_queries(["How long is the Great Wall?"])
    assert auto._queries is False and auto._model is not None
    assert np.abs(vectors - auto.embed(["How long is the Great Wall?"])).max() < 1e-6


def test_onnx_required_but_impossible_is_a_clear_error(tmp_path):
    model = _model_with_cls_pooling(tmp_path)
    strict = SentenceTransformerEmbedder(str(model), device="cpu", query_encoder="onnx", cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="cannot run under ONNX Runtime"):
        strict.warm_up_queries()


def test_unknown_query_encoder_setting_is_refused():
    with pytest.raises(ConfigError, match="query_encoder"):
        SentenceTransformerEmbedder(query_encoder="tensorrt")
