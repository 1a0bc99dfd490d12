"""Backends by name (rag/registry.py): short names, and a user's own class by import path,
checked against the interface, for embedders, generators and rerankers."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.embedding import embedder_class
from rag.errors import ConfigError
from rag.generation import GenerationResult, is_local, make_generator
from rag.registry import backend_class, is_import_path
from rag.reranking import make_reranker


class EchoGenerator:
    """A user's own generator: answers with the last message, reversed."""

    context_window = 512

    def __init__(self, reverse: bool = True) -> None:
        self.reverse = reverse

    @classmethod
    def from_settings(cls, settings):
        return cls(reverse=settings.temperature == 0.0)

    def warm_up(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, messages, max_new_tokens=None, stop=None, temperature=None):
        text = messages[-1]["content"]
        return GenerationResult(
            text=text[::-1] if self.reverse else text, prompt_tokens=len(text), completion_tokens=len(text)
        )

    def stream(self, messages, max_new_tokens=None, stop=None, temperature=None):
        yield self.generate(messages).text


class LengthReranker:
    """A user's own reranker: longer passages first."""

    name = "length"
    languages = None

    def warm_up(self) -> None:
        pass

    def score(self, query, passages):
        return [float(len(p)) for p in passages]


class NoScore:
    def warm_up(self) -> None:
        pass


def test_import_paths_are_told_from_model_names_and_file_paths(tmp_path):
    assert is_import_path("mypkg.backends:MyEmbedder")
    assert not is_import_path("sentence-transformers/all-MiniLM-L6-v2")
    assert not is_import_path("all-MiniLM-L6-v2")
    assert not is_import_path("C:/models/minilm")
    weird = tmp_path / "a:b"
    weird.mkdir()
    assert not is_import_path(str(weird))


def test_a_users_generator_by_import_path():
    generator = make_generator(Settings.load(env={}, overrides={"generator": "tests.test_registry:EchoGenerator"}))
    assert isinstance(generator, EchoGenerator) and generator.reverse is True
    assert generator.generate([{"role": "user", "content": "abc"}]).text == "cba"


def test_generator_names_and_errors():
    assert is_local(Settings.load(env={})) and is_local(Settings.load(env={}, overrides={"generator": "transformers"}))
    assert not is_local(Settings.load(env={}, overrides={"generator": "openai"}))
    with pytest.raises(ConfigError, match="Unknown generator 'gpt5'; choose one of: local, transformers, openai"):
        make_generator(Settings.load(env={}, overrides={"generator": "gpt5"}))
    with pytest.raises(ConfigError, match="lacks context_window, count_tokens, generate, stream of the generator"):
        make_generator(Settings.load(env={}, overrides={"generator": "tests.test_registry:NoScore"}))
    with pytest.raises(ConfigError, match="generator 'nowhere.at_all:Gen': cannot import nowhere.at_all:Gen"):
        make_generator(Settings.load(env={}, overrides={"generator": "nowhere.at_all:Gen"}))


def test_a_users_reranker_by_import_path():
    reranker = make_reranker(Settings.load(env={}, overrides={"reranker_model": "tests.test_registry:LengthReranker"}))
    assert reranker.score("q", ["short", "much longer"]) == [5.0, 11.0]
    with pytest.raises(ConfigError, match="reranker_model 'tests.test_registry:NoScore': .* lacks score"):
        make_reranker(Settings.load(env={}, overrides={"reranker_model": "tests.test_registry:NoScore"}))


def test_one_lookup_for_every_kind():
    registry = {"length": "tests.test_registry:LengthReranker"}
    assert backend_class("reranker_model", "length", registry, ("score",), "reranker") is LengthReranker
    assert backend_class("reranker_model", "some/model", registry, ("score",), "reranker") is None
    assert embedder_class("use-m3+minilm-l6").__name__ == "UseMiniLMEmbedder"
