from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import ConfigError


def test_layers_override_in_order(tmp_path):
    config = tmp_path / "rag.toml"
    config.write_text('chunk_tokens = 128\ntop_k = 7\nindex_dir = "from-file"\n')
    env = {"RAG_TOP_K": "9", "RAG_INDEX_DIR": "from-env", "RAG_API_KEYS": "a, b"}
    settings = Settings.load(config, env=env, overrides={"index_dir": "from-cli", "workers": None})
    assert settings.chunk_tokens == 128  # file beats default
    assert settings.top_k == 9  # env beats file
    assert settings.index_dir == Path("from-cli")  # CLI beats env
    assert settings.workers == 1  # a flag not given keeps the lower layer
    assert settings.api_keys == ["a", "b"]


def test_config_file_from_env_and_rag_table(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[rag]\nrerank = true\n")
    assert Settings.load(env={"RAG_CONFIG": str(config)}).rerank is True


@pytest.mark.parametrize(
    "values, fragment",
    [({"top_k": "many"}, "top_k"), ({"rerank": "maybe"}, "rerank"), ({"no_such": 1}, "Unknown setting")],
)
def test_bad_values_are_one_clear_sentence(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_mapping(values)


def test_missing_and_broken_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("chunk_tokens = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(broken, env={})


def test_secrets_are_masked():
    settings = Settings.from_mapping({"api_keys": ["k1"], "openai_api_key": "sk"})
    shown = settings.to_dict()
    assert shown["api_keys"] == "***" and shown["openai_api_key"] == "***"


@pytest.mark.parametrize(
    "name, value",
    [
        ("answer_mode", "summarise"),
        ("reader_method", "beam"),
        ("query_encoder", "tensorrt"),
        ("use_gpu", "maybe"),
        ("generator_runtime", "tensorrt"),
        ("generator_quantize", "int4"),
        ("device", "gpu"),
    ],
)
def test_choice_settings_are_checked_when_settings_load(name, value):
    """A typo in a choice fails when the settings load, naming the choices, from any layer."""
    with pytest.raises(ConfigError, match=rf"Setting '{name}' must be .* not '{value}'"):
        Settings.load(env={f"RAG_{name.upper()}": value})
    with pytest.raises(ConfigError, match=rf"Setting '{name}'"):
        Settings.load(env={}).replace(**{name: value})
    assert Settings.load(env={}, overrides={"device": "cuda:1"}).device == "cuda:1"
