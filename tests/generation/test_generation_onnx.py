"""The generator on ONNX Runtime GenAI: the real SmolLM2-135M-Instruct export (made once per
machine and cached, like the GGUF conversion), its own process, and the same answers as
transformers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embedding import gpu_driver_present, pick_device
from rag.errors import ConfigError, GenerationError
from rag.generation import make_generator
from rag.generation.onnx_lm import ChatTemplate, OnnxGenerator, compare_with_transformers, runtime_for
from rag.generation.transformers_lm import TransformersGenerator
from tests.generators import GROUNDED, SMOLLM2, shared_onnx, shared_smollm2

REPO = Path(__file__).resolve().parents[2]
CHINESE = [
    {"role": "system", "content": "只根据资料回答，并用 [1] 标注来源。"},
    {"role": "user", "content": "资料 [1]：长城位于中国北方，全长约两万一千公里。\n\n问题：长城全长多少公里？"},
]
needs_cpu_only = pytest.mark.skipif(gpu_driver_present(), reason="a GPU driver is present: auto picks transformers")


@pytest.fixture(scope="session")
def onnx_lm():
    generator = shared_onnx()
    yield generator
    generator.close()


# --- choosing the runtime, without torch ---------------------------------------------------


@needs_cpu_only
def test_auto_runs_the_default_model_on_onnx_runtime_on_a_cpu():
    assert runtime_for(Settings.load(env={})) == "onnx"
    assert isinstance(make_generator(Settings.load(env={})), OnnxGenerator)
    assert runtime_for(Settings.load(env={}, overrides={"generator_runtime": "transformers"})) == "transformers"
    assert runtime_for(Settings.load(env={}, overrides={"generator_quantize": "int8"})) == "transformers"
    # A hub name has no files on disk to export: transformers (auto) or a clear error (onnx).
    hub = {"generator_model": "HuggingFaceTB/SmolLM2-360M-Instruct"}
    assert runtime_for(Settings.load(env={}, overrides=hub)) == "transformers"
    with pytest.raises(ConfigError, match="on disk"):
        runtime_for(Settings.load(env={}, overrides={**hub, "generator_runtime": "onnx"}))
    assert runtime_for(Settings.load(env={}, overrides={"device": "cuda"})) == "transformers"  # GPUs: transformers
    with pytest.raises(ConfigError, match="CPU only"):
        runtime_for(Settings.load(env={}, overrides={"generator_runtime": "onnx", "device": "cuda"}))
    with pytest.raises(ConfigError, match="generator_runtime"):
        runtime_for(Settings.load(env={}, overrides={"generator_runtime": "tensorrt"}))


def test_gpu_driver_files_decide_whether_torch_is_asked(tmp_path):
    assert not gpu_driver_present([str(tmp_path / "nvidiactl")]) or sys.platform != "linux"
    (tmp_path / "nvidiactl").write_text("")
    assert gpu_driver_present([str(tmp_path / "nvidiactl")])
    assert pick_device("auto", cuda_available=False) == "cpu" and pick_device("cuda:1") == "cuda:1"


@needs_cpu_only
def test_picking_the_device_and_building_the_generator_import_no_torch():
    code = (
        "import sys; from rag.config import Settings; from rag.generation import make_generator; "
        "from rag.embedding import pick_device; g = make_generator(Settings.load(env={})); "
        "print(pick_device('auto'), type(g).__name__, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["cpu", "OnnxGenerator", "False", "False"], out.stderr[-2000:]


# --- the export -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_export_was_checked_against_transformers_and_is_reused(onnx_lm):
    folder = Path(onnx_lm._folder)
    record = json.loads((folder / "export.json").read_text())
    assert record["probes"] == 2 and record["max_logit_difference"] < 1e-2
    again = OnnxGenerator.from_settings(Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu"}))
    try:
        again.count_tokens("x")
        assert again._origin.startswith("cache ")
    finally:
        again.close()


@pytest.mark.slow
def test_the_export_check_rejects_a_model_that_answers_differently(onnx_lm):
    """The check itself: the real export against the real transformers model passes, and
    against the same model with its logits shifted token by token it fails."""
    reference = shared_smollm2()
    model, tokenizer = reference._model, reference._tokenizer
    found = compare_with_transformers(model, tokenizer, onnx_lm._folder)
    assert found["max_logit_difference"] < 1e-2

    class Shifted:
        def __call__(self, ids):
            out = model(ids)
            out.logits[..., : out.logits.shape[-1] // 2] += 5.0
            return out

    with pytest.raises(ConfigError, match="disagrees with transformers"):
        compare_with_transformers(Shifted(), tokenizer, onnx_lm._folder)


@pytest.mark.slow
def test_auto_falls_back_to_transformers_when_the_builder_cannot_export(tmp_path, caplog):
    """A GPT-2 model (an architecture the builder does not know): ``auto`` warns and answers
    with transformers; ``onnx`` fails with the builder's reason."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from rag.embedding import resolve_model_path

    folder = tmp_path / "tiny-gpt2"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    settings = Settings.load(
        env={}, overrides={"generator_model": str(folder), "model_cache_dir": str(tmp_path / "c"), "device": "cpu"}
    )
    generator = make_generator(settings)
    assert isinstance(generator, OnnxGenerator)
    with caplog.at_level(logging.WARNING):
        result = generator.generate([{"role": "user", "content": "Hi"}], max_new_tokens=2)
    assert isinstance(generator._delegate, TransformersGenerator) and result.completion_tokens <= 2
    assert "instead of ONNX Runtime" in caplog.text
    strict = make_generator(
        Settings.load(
            env={},
            overrides={
                "generator_model": str(folder),
                "model_cache_dir": str(tmp_path / "c"),
                "generator_runtime": "onnx",
            },
        )
    )
    with pytest.raises(ConfigError, match="Exporting the generator to ONNX failed"):
        strict.count_tokens("x")
    assert not list((tmp_path / "c" / "generators-onnx").glob("*/export.json")), "a failed export is not cached"


# --- the same answers as transformers ---------------------------------------------------------


def test_chat_template_renders_as_transformers_does(onnx_lm):
    reference = shared_smollm2()
    template = ChatTemplate.from_folder(onnx_lm._folder)
    for messages in (
        GROUNDED,
        CHINESE,
        GROUNDED[1:],
        [
            GROUNDED[0],
            GROUNDED[1],
            {"role": "assistant", "content": "250 euros [1]."},
            {"role": "user", "content": "And in Paris?"},
        ],
    ):
        assert template.render(messages) == reference.render(messages)
    assert onnx_lm.count_tokens("长城 was 8,851 km long.") == reference.count_tokens("长城 was 8,851 km long.")


@pytest.mark.slow
def test_greedy_answers_match_transformers_in_english_and_chinese(onnx_lm):
    reference = shared_smollm2()
    for messages in (GROUNDED, CHINESE):
        ours, theirs = onnx_lm.generate(messages, max_new_tokens=24), reference.generate(messages, max_new_tokens=24)
        assert ours.text == theirs.text
        assert (ours.prompt_tokens, ours.completion_tokens) == (theirs.prompt_tokens, theirs.completion_tokens)
    assert "250" in onnx_lm.generate(GROUNDED, max_new_tokens=24).text


@pytest.mark.slow
def test_prompt_cache_reads_only_what_differs_and_changes_nothing(onnx_lm):
    other = [GROUNDED[0], {"role": "user", "content": GROUNDED[1]["content"].replace("London", "Paris")}]
    onnx_lm.generate(GROUNDED, max_new_tokens=12)
    cached = onnx_lm.generate(other, max_new_tokens=12)
    assert 20 <= cached.cached_tokens < cached.prompt_tokens
    plain = OnnxGenerator.from_settings(
        Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu", "prompt_cache_slots": 0})
    )
    try:
        fresh = plain.generate(other, max_new_tokens=12)
    finally:
        plain.close()
    assert fresh.cached_tokens == 0 and fresh.text == cached.text


@pytest.mark.slow
def test_streaming_stops_and_limits(onnx_lm):
    full = onnx_lm.generate(GROUNDED, max_new_tokens=24)
    stream = onnx_lm.stream(GROUNDED, max_new_tokens=24)
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == full.text
    assert stream.result.text == full.text and stream.result.completion_tokens == full.completion_tokens
    cut = onnx_lm.generate(GROUNDED, max_new_tokens=24, stop=["250"])
    assert cut.text == full.text[: full.text.index("250")] and cut.finish_reason == "stop"
    assert "".join(onnx_lm.stream(GROUNDED, max_new_tokens=24, stop=["250"])) == cut.text
    short = onnx_lm.generate([{"role": "user", "content": "Write a long story about a pump."}], max_new_tokens=3)
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    with pytest.raises(GenerationError, match="reads at most 2048"):
        onnx_lm.generate([{"role": "user", "content": "word " * 3000}])


@pytest.mark.slow
def test_closing_a_stream_early_stops_the_model(onnx_lm):
    stream = onnx_lm.stream([{"role": "user", "content": "Write a long story about a pump."}], max_new_tokens=200)
    next(stream)
    stream.close()
    started = time.perf_counter()
    result = onnx_lm.generate(GROUNDED, max_new_tokens=2)
    assert result.completion_tokens <= 2
    assert time.perf_counter() - started < 20, "the cancelled generation ran on"


# --- the model's process ------------------------------------------------------------------


@pytest.mark.slow
def test_the_caller_keeps_running_while_the_model_reads_a_long_prompt(onnx_lm):
    """The reason for the process: other threads (the server's event loop) are not frozen."""
    long = [{"role": "user", "content": "The lighthouse keeper wrote in his log every night. " * 120 + "Why?"}]
    gaps: list[float] = []
    finished = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not finished.is_set():
            time.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        result = onnx_lm.generate(long, max_new_tokens=4)
    finally:
        finished.set()
        ticker.join()
    assert result.prompt_tokens > 1000 and result.cached_tokens < 100
    assert max(gaps) < 0.5, f"the caller stalled for {max(gaps):.2f} s"


@pytest.mark.slow
def test_a_model_process_that_dies_fails_one_request_and_is_started_again(onnx_lm):
    stream = onnx_lm.stream([{"role": "user", "content": "Write a long story about a pump."}], max_new_tokens=200)
    next(stream)
    onnx_lm._worker.process.kill()
    with pytest.raises(GenerationError, match="ended unexpectedly"):
        list(stream)
    assert "250" in onnx_lm.generate(GROUNDED, max_new_tokens=24).text  # a new process
    onnx_lm._worker.process.kill()  # dead between requests:
    onnx_lm._worker.process.wait()
    assert "250" in onnx_lm.generate(GROUNDED, max_new_tokens=24).text  # restarted before use


# --- several answers at once ------------------------------------------------------------------

STORY = [{"role": "user", "content": "Write a long story about a pump."}]


def _short_during_long(generator: OnnxGenerator) -> dict:
    """Start a long answer, ask a short grounded question once its first token is out; when
    each answer's first token came and when it ended (``perf_counter``), and both results."""
    marks: dict = {}

    def ask(messages, max_new_tokens: int, name: str) -> None:
        stream = generator.stream(messages, max_new_tokens=max_new_tokens, stop=[])
        for _ in stream:
            marks.setdefault(f"{name} first", time.perf_counter())
        marks[f"{name} end"] = time.perf_counter()
        marks[name] = stream.result

    long = threading.Thread(target=ask, args=(STORY, 200, "long"))
    long.start()
    while "long first" not in marks:
        time.sleep(0.01)
    ask(GROUNDED, 24, "short")
    long.join()
    return marks


@pytest.mark.slow
def test_answers_written_at_once_are_the_answers_written_alone(onnx_lm):
    """Four questions at once (each with its own key/value cache in the model's process) get
    exactly the answers they get one at a time, in English and Chinese."""
    questions = [
        GROUNDED,
        CHINESE,
        [GROUNDED[0], {"role": "user", "content": GROUNDED[1]["content"].replace("London", "Paris")}],
        STORY,
    ]
    alone = [onnx_lm.generate(q, max_new_tokens=32).text for q in questions]
    together: dict[int, str] = {}
    threads = [
        threading.Thread(
            target=lambda i=i: together.__setitem__(i, onnx_lm.generate(questions[i], max_new_tokens=32).text)
        )
        for i in range(len(questions))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[i] for i in range(len(questions))] == alone


@pytest.mark.slow
def test_a_new_question_is_read_before_the_answer_under_way_goes_on(onnx_lm):
    """A question asked while a long answer is being written gets its first token, and its
    whole short answer, before the long one ends; with ``generator_parallel = 1`` it waits for
    the long answer instead."""
    marks = _short_during_long(onnx_lm)
    assert marks["long"].completion_tokens >= 80, "the long answer must still run when the short one comes"
    assert marks["short first"] < marks["short end"] < marks["long end"]
    assert "250" in marks["short"].text

    serial = OnnxGenerator.from_settings(
        Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu", "generator_parallel": 1})
    )
    try:
        serial.warm_up()
        marks = _short_during_long(serial)
        assert marks["long end"] < marks["short first"]
    finally:
        serial.close()


@pytest.mark.slow
def test_a_question_cancelled_while_it_waits_for_its_turn_never_runs(onnx_lm):
    """In the model's process's own protocol: with one answer at a time, a second generation
    cancelled while the first runs ends without a token, and the first goes on to its end."""
    serial = OnnxGenerator.from_settings(
        Settings.load(env={}, overrides={**SMOLLM2, "device": "cpu", "generator_parallel": 1})
    )
    try:
        serial.warm_up()
        worker = serial._worker
        ids = serial._prepare(STORY, 150, [], 0.0).ids
        (first, first_inbox), (second, second_inbox) = worker.open(), worker.open()
        for number in (first, second):
            worker.send(
                {"op": "generate", "id": number, "ids": ids, "max_new_tokens": 150, "stop": [], "temperature": 0}
            )
        assert "token" in first_inbox.get(timeout=30)
        worker.send({"op": "cancel", "id": second})
        assert second_inbox.get(timeout=30) == {
            "id": second,
            "done": {"completion_tokens": 0, "cached_tokens": 0, "stopped": False},
        }
        messages = [first_inbox.get(timeout=60)]
        while "done" not in messages[-1]:
            messages.append(first_inbox.get(timeout=60))
        assert messages[-1]["done"]["completion_tokens"] >= 100 and second_inbox.empty()
    finally:
        serial.close()
