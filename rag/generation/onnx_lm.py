"""The local causal LM run by ONNX Runtime GenAI on a CPU.

The same transformers model (by default SmolLM2-135M-Instruct from its GGUF), exported once to
ONNX with ``onnxruntime-genai``'s model builder, checked against transformers and cached under
``settings.model_cache_dir``. The model runs in a child process
(:mod:`rag.generation.onnx_worker`; onnxruntime-genai holds Python's lock while it reads a
prompt), which loads in parallel with the index. A server that answers with it imports neither
torch nor transformers. On these 2 cores (``python -m bench.serve_bench``, CMRC, one client),
against transformers: warm start 3.96 s instead of 12.3 s, first token after 0.84 s instead of
1.69 s, 45.8 tokens/s decoding instead of 11.4. The export (first start only) converts the
GGUF with transformers as before and runs the builder in another child process.

``generator_runtime`` picks it: ``auto`` (the default) uses it on a CPU for model families the
builder knows and falls back to transformers, with a warning, when the export fails; ``onnx``
makes it mandatory; ``transformers`` never uses it. GPUs always use transformers.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.embedding import pick_device
from rag.errors import ConfigError, GenerationError
from rag.generation.base import (
    GenerationResult,
    Message,
    TextDeltas,
    TextStream,
    answer_room,
    finished,
    threaded_stream,
)
from rag.generation.packaged import SPLIT_MODELS
from rag.generation.spans import Extraction, SpanChoice, nearness, to_extraction, word_edges
from rag.generation.transformers_lm import DEFAULT_MODEL, ModelSource, TransformersGenerator, resolve_model

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "transformers")
# The builder's int4 (MatMulNBits) read prompts more slowly than fp32 on these AVX2 cores (300
# tokens: 1.4 s against 1.0 s), besides changing answers.
PRECISION = "fp32"
# Reading a prompt computes next-token logits for its last position only, not for all of them
# (the vocabulary projection was ~a quarter of the work: 745 tokens in 1.28 s instead of 1.75 s).
BUILDER_OPTIONS = ("prune_lm_head=true",)
EXPORT_MARK = "export.json"
# The export is accepted when, on each probe prompt, ONNX Runtime's next-token logits match
# transformers' to this (absolute; logits of SmolLM2 are of order 10) and pick the same token.
LOGIT_TOLERANCE = 1e-2
PROBES = (
    [
        {"role": "system", "content": "Answer from the passage and cite it as [1]."},
        {"role": "user", "content": "Passage [1]: The lighthouse was built in 1874.\n\nQuestion: When was it built?"},
    ],
    [{"role": "user", "content": "长城位于中国北方，全长约两万公里。长城有多长？"}],
)
BUILDER_TIMEOUT_S = 1800
# How often a generation waiting for its turn in the model's process looks whether it was cancelled.
CANCEL_POLL_S = 0.25


def runtime_for(settings: Settings) -> str:
    """``"onnx"`` or ``"transformers"``: how ``settings.generator_model`` runs here.

    Decided without importing torch: ``auto`` takes ONNX Runtime when the device is a CPU,
    ``onnxruntime_genai`` is installed and the model is one whose weights are on disk (the
    packaged default, a ``.gguf`` file or a local folder)."""
    setting = settings.generator_runtime
    if setting not in RUNTIMES:
        raise ConfigError(f"generator_runtime must be one of {', '.join(RUNTIMES)}, not '{setting}'.")
    if setting == "transformers":
        return "transformers"
    cpu = pick_device(settings.device) == "cpu"
    # The model's process is fed through a pipe polled with select(), which Windows lacks for pipes.
    installed = importlib.util.find_spec("onnxruntime_genai") is not None and sys.platform != "win32"
    local = _weights_on_disk(settings.generator_model)
    if setting == "onnx":
        if not cpu:
            raise ConfigError(
                "generator_runtime 'onnx' runs on a CPU only; set device to cpu or the runtime to transformers."
            )
        if not installed:
            raise ConfigError(
                "generator_runtime 'onnx' needs onnxruntime-genai; run: pip install onnxruntime-genai onnx-ir"
            )
        if not local:
            raise ConfigError(
                f"generator_runtime 'onnx' needs the model's files on disk; '{settings.generator_model}' "
                "is neither the packaged default, a .gguf file nor a local folder."
            )
        return "onnx"
    if settings.generator_quantize != "none":
        return "transformers"  # dynamic int8 is a torch feature
    return "onnx" if cpu and installed and local else "transformers"


def _weights_on_disk(name: str) -> bool:
    if name == DEFAULT_MODEL or name in SPLIT_MODELS:
        return True
    path = Path(name).expanduser()
    return (path.suffix.lower() == ".gguf" and path.is_file()) or (path / "config.json").is_file()


# -- export -------------------------------------------------------------------------------------


def export_key(source: ModelSource) -> str:
    """Names the exported copy; changes with the weights, the builder version and the precision."""
    try:
        builder = importlib.metadata.version("onnxruntime-genai")
    except importlib.metadata.PackageNotFoundError:
        builder = "unknown"
    if source.cache_key:
        base = source.cache_key
    else:
        folder = Path(source.path)
        stamp = max((f.stat().st_mtime_ns for f in folder.iterdir() if f.is_file()), default=0)
        digest = hashlib.sha256(f"{folder.resolve()}|{stamp}".encode()).hexdigest()[:12]
        base = f"{folder.name}-{digest}"
    return f"{base}-ortgenai{builder}-{PRECISION}-last-logits"


class ExportCache:
    """ONNX exports of generators, one folder per :func:`export_key`, each written beside its
    final place and renamed into it once checked, so no reader ever sees half an export."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find(self, key: str) -> Path | None:
        path = self.root / key
        return path if (path / EXPORT_MARK).is_file() else None

    def build(self, key: str, hf_folder: Path, check: Callable[[Path], dict]) -> Path:
        """Export ``hf_folder``, run ``check`` on the result (it raises if the export is wrong;
        its findings are recorded) and move it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
        try:
            run_builder(hf_folder, tmp)
            findings = check(tmp)
            (tmp / EXPORT_MARK).write_text(
                json.dumps(
                    {
                        "source": str(hf_folder),
                        "key": key,
                        "precision": PRECISION,
                        "created": time.time(),
                        **findings,
                    },
                    indent=1,
                ),
                encoding="utf-8",
            )
            final = self.root / key
            if final.exists() and not (final / EXPORT_MARK).is_file():
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / EXPORT_MARK).is_file():  # else another process finished first
                    raise
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_builder(hf_folder: Path, out: Path) -> None:
    """``onnxruntime_genai.models.builder`` on a transformers model folder, in a child process
    (it imports torch and transformers and holds a second copy of the weights while it works)."""
    command = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        str(hf_folder),
        "-o",
        str(out),
        "-p",
        PRECISION,
        "-e",
        "cpu",
        "-c",
        str(out / ".builder-cache"),
        "--extra_options",
        *BUILDER_OPTIONS,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=BUILDER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"Exporting the generator to ONNX took over {BUILDER_TIMEOUT_S} s and was stopped.") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise ConfigError(f"Exporting the generator to ONNX failed: {lines[-1][:300] if lines else done.returncode}")
    shutil.rmtree(out / ".builder-cache", ignore_errors=True)
    if not (out / "genai_config.json").is_file():
        raise ConfigError(f"The ONNX export in {out} has no genai_config.json.")


def compare_with_transformers(model: Any, tokenizer: Any, export: Path) -> dict:
    """Next-token logits of the export against the transformers ``model`` on :data:`PROBES`;
    raises :class:`ConfigError` when they differ beyond :data:`LOGIT_TOLERANCE` or pick
    another token."""
    import numpy as np
    import onnxruntime_genai as og
    import torch

    onnx_model = og.Model(str(export))
    template = ChatTemplate.from_folder(export)
    worst = 0.0
    for messages in PROBES:
        prompt = template.render(messages)
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            expected = model(torch.tensor([ids])).logits[0, -1].float().numpy()
        params = og.GeneratorParams(onnx_model)
        params.set_search_options(max_length=len(ids) + 1, do_sample=False)
        generator = og.Generator(onnx_model, params)
        generator.append_tokens(ids)
        got = np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1)[: expected.shape[0]]
        difference = float(np.abs(got - expected).max())
        worst = max(worst, difference)
        if difference > LOGIT_TOLERANCE or int(got.argmax()) != int(expected.argmax()):
            raise ConfigError(
                f"The ONNX export disagrees with transformers (largest logit difference {difference:.3g}); "
                "it is not used."
            )
    return {"max_logit_difference": worst, "probes": len(PROBES)}


def transformers_folder(source: ModelSource, cache_dir: Path) -> tuple[Path, Any, Any]:
    """The model as a transformers folder (a GGUF is converted into the conversion cache
    first), with the model and tokenizer loaded for the export check."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.is_gguf:
        converter = TransformersGenerator(DEFAULT_MODEL, device="cpu", cache_dir=cache_dir)
        model, tokenizer, _ = converter._load_weights(source)
        folder = converter.cache.find(source.cache_key) if converter.cache else None
        if folder is None:
            raise ConfigError(f"The converted model could not be cached under {cache_dir}, so it cannot be exported.")
        return folder, model.float().eval(), tokenizer
    folder = Path(source.path)
    return (
        folder,
        AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval(),
        AutoTokenizer.from_pretrained(folder),
    )


# -- prompts ------------------------------------------------------------------------------------


class ChatTemplate:
    """The model's Jinja chat template, rendered without transformers (same environment
    settings transformers uses: trimmed blocks, sandboxed)."""

    def __init__(self, source: str | None, special: dict[str, str]) -> None:
        self.source = source
        self.special = special
        self._template = None
        if source:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise_template_error
            env.globals["strftime_now"] = lambda fmt: time.strftime(fmt)
            env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
            self._template = env.from_string(source)

    @classmethod
    def from_folder(cls, folder: Path) -> ChatTemplate:
        config: dict = {}
        if (folder / "tokenizer_config.json").is_file():
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        source = config.get("chat_template")
        if isinstance(source, list):  # named templates: take the default one
            source = next((t.get("template") for t in source if t.get("name") == "default"), None)
        if not source and (folder / "chat_template.jinja").is_file():
            source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        special = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
        return cls(source, special)

    def render(self, messages: Sequence[Message]) -> str:
        if self._template is None:  # a base model: a plain transcript it can continue
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n\n".join(lines) + "\n\nAssistant:"
        return self._template.render(messages=list(messages), add_generation_prompt=True, **self.special)


def _raise_template_error(message: str) -> None:
    raise GenerationError(f"The model's chat template refused the conversation: {message}")


# -- the generator ------------------------------------------------------------------------------


@dataclass
class _Run:
    ids: list[int]
    max_new_tokens: int
    stop: list[str]
    temperature: float
    cancel: threading.Event
    cached_tokens: int = 0
    completion_tokens: int = 0
    stopped: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.ids)


class _Worker:
    """The child process that runs the model (:mod:`rag.generation.onnx_worker`). It answers
    several generations at once; a thread hands each message it writes to the generation the
    message is about."""

    def __init__(self, folder: Path, window: int, slots: int, parallel: int) -> None:
        import rag

        env = dict(os.environ)
        root = str(Path(rag.__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rag.generation.onnx_worker", str(folder), str(window), str(slots), str(parallel)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=env,
        )
        self.ready: dict | None = None
        self._inboxes: dict[int, queue.Queue] = {}
        self._inboxes_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._gone: str | None = None  # why the process can take no more work

    def wait_ready(self) -> dict:
        """The process's ready message (read once; then the thread reading its output starts)."""
        if self.ready is None:
            first = self._read()
            if "error" in first:
                self.close()
                raise ConfigError(f"The generator process could not load the model: {first['error']}")
            self.ready = first
            threading.Thread(target=self._hand_out, name="generator-process-output", daemon=True).start()
        return self.ready

    def open(self) -> tuple[int, queue.Queue]:
        """A number for a new generation and the queue its messages will arrive in."""
        with self._inboxes_lock:
            if self._gone is not None:
                raise GenerationError(self._gone)
            number = next(self._numbers)
            self._inboxes[number] = queue.Queue()
            return number, self._inboxes[number]

    def release(self, number: int) -> None:
        with self._inboxes_lock:
            self._inboxes.pop(number, None)

    def send(self, message: dict) -> None:
        try:
            with self._send_lock:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise GenerationError(f"The generator process is gone (exit code {self.process.poll()}).") from exc

    def _read(self) -> dict:
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise GenerationError(
                    f"The generator process ended unexpectedly (exit code {self.process.wait()}); "
                    "it is started again for the next question."
                )
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict):
                return message
            log.warning("Generator process: %s", line.rstrip()[:300])  # printed before it took over its output

    def _hand_out(self) -> None:
        """Put each message into its generation's queue until the process ends; then tell every
        generation still waiting that it has."""
        try:
            while True:
                message = self._read()
                with self._inboxes_lock:
                    inbox = self._inboxes.get(message.get("id"))
                if inbox is not None:
                    inbox.put(message)
        except GenerationError as exc:
            gone = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken pipe or a bad line: the process is of no more use
            gone = f"The generator process failed ({exc})."
            self.process.kill()
        with self._inboxes_lock:
            self._gone = gone
            for inbox in self._inboxes.values():
                inbox.put({"gone": gone})

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self._gone is None

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except Exception:  # noqa: BLE001 - closing is best effort; kill what does not stop
            self.process.kill()


class OnnxGenerator:
    """A causal LM run by ONNX Runtime GenAI, behind the
    :class:`~rag.generation.base.Generator` protocol. Loads on :meth:`warm_up` or first use.
    Up to ``parallel`` generations run at once, interleaved token by token in the model's
    process (a new prompt is read first); transformers runs one at a time."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        cache_dir: Path | None = None,
        context_tokens: int = 2048,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        prompt_cache_slots: int = 4,
        parallel: int = 4,
        fallback: TransformersGenerator | None = None,
    ) -> None:
        self.name = model
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "rag-service"
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = list(stop or [])
        self.prompt_cache_slots = prompt_cache_slots
        self.parallel = max(1, parallel)
        self.fallback = fallback
        self.device = "cpu"
        self.load_info: dict[str, Any] = {}
        self._delegate: TransformersGenerator | None = None
        self._folder: Path | None = None
        self._origin = ""
        self._started = 0.0
        self._worker: _Worker | None = None
        self._tokenizer = None
        self._template: ChatTemplate | None = None
        self._window = context_tokens
        self._load_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, fallback: TransformersGenerator | None = None) -> OnnxGenerator:
        return cls(
            settings.generator_model,
            settings.model_cache_dir,
            settings.context_tokens,
            settings.max_new_tokens,
            settings.temperature,
            settings.stop,
            settings.prompt_cache_slots,
            settings.generator_parallel,
            fallback,
        )

    # -- loading --------------------------------------------------------------------------------

    def begin_loading(self) -> None:
        """Start loading the model in its process and return at once (the answer pipeline loads
        its index meanwhile)."""
        self._load()

    def warm_up(self) -> None:
        if self._ready_worker() is None:
            return self._delegate.warm_up()
        self.generate([{"role": "user", "content": "Hi"}], max_new_tokens=1)

    def close(self) -> None:
        """Stop the model's process (it also stops by itself when this process ends)."""
        with self._load_lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def _load(self) -> bool:
        """Export if needed, read the tokenizer and start the model's process; ``False`` when the
        transformers fallback took over."""
        if self._folder is None and self._delegate is None:
            with self._load_lock:
                if self._folder is None and self._delegate is None:
                    self._started = time.perf_counter()
                    try:
                        folder, self._origin = self._export()
                        self._open(folder)
                    except (ConfigError, GenerationError, OSError, RuntimeError, ValueError) as exc:
                        self._give_up(exc)
        return self._delegate is None

    def _give_up(self, exc: Exception) -> None:
        if self.fallback is None:
            raise exc
        log.warning("The generator runs with transformers instead of ONNX Runtime: %s", exc)
        self._delegate = self.fallback

    def _export(self) -> tuple[Path, str]:
        source = resolve_model(self.name, self.cache_dir)
        key = export_key(source)
        cache = ExportCache(self.cache_dir / "generators-onnx")
        found = cache.find(key)
        if found is not None:
            return found, f"cache {found}"
        log.info("Exporting generator %s to ONNX (once; it is cached in %s)...", self.name, cache.root)
        folder, model, tokenizer = transformers_folder(source, self.cache_dir)
        built = cache.build(key, folder, lambda export: compare_with_transformers(model, tokenizer, export))
        return built, f"{folder} (exported, cached in {built})"

    def _open(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["model"]
        self._window = min(self.context_tokens, int(config.get("context_length") or self.context_tokens))
        self._worker = _Worker(folder, self._window, self.prompt_cache_slots, self.parallel)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._template = ChatTemplate.from_folder(folder)
        eos = config.get("eos_token_id")
        self._stop_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        self._folder = folder

    def _ready_worker(self) -> _Worker | None:
        """The model's process, loaded (started again if it died); ``None`` when the fallback
        took over."""
        if not self._load():
            return None
        with self._load_lock:
            if self._delegate is not None:
                return None
            if self._worker is None or not self._worker.alive:
                log.warning("Starting the generator process again.")
                self._worker = _Worker(self._folder, self._window, self.prompt_cache_slots, self.parallel)
            try:
                ready = self._worker.wait_ready()
            except (ConfigError, GenerationError) as exc:
                self._worker = None
                if self.load_info:  # it worked before: report, retry next time
                    raise GenerationError(str(exc)) from exc
                self._give_up(exc)
                return None
            if not self.load_info:
                self.load_info = {
                    "origin": self._origin,
                    "seconds": round(time.perf_counter() - self._started, 2),
                    "device": "cpu",
                    "runtime": "onnxruntime-genai",
                    "quantized": "none",
                    "process_load_seconds": ready.get("seconds"),
                }
                log.info(
                    "Loaded generator %s from %s in %.1f s (ONNX Runtime, CPU, in process %d)",
                    self.name,
                    self._origin,
                    self.load_info["seconds"],
                    self._worker.process.pid,
                )
            return self._worker

    # -- the Generator protocol -----------------------------------------------------------------

    @property
    def context_window(self) -> int:
        if not self._load():
            return self._delegate.context_window
        return self._window

    def count_tokens(self, text: str) -> int:
        if not self._load():
            return self._delegate.count_tokens(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def render(self, messages: Sequence[Message]) -> str:
        if not self._load():
            return self._delegate.render(messages)
        return self._template.render(messages)

    def generate(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> GenerationResult:
        if self._ready_worker() is None:
            return self._delegate.generate(messages, max_new_tokens, stop, temperature)
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        ids = self._decode_loop(run)
        return self._finish(run, self._tokenizer.decode(ids, skip_special_tokens=True))

    def stream(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> TextStream:
        if self._ready_worker() is None:
            return self._delegate.stream(messages, max_new_tokens, stop, temperature)
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        deltas = TextDeltas(self._tokenizer)

        def work() -> None:
            try:
                if not run.cancel.is_set():
                    self._decode_loop(run, deltas.add)
            finally:
                deltas.end()

        return threaded_stream(
            work, deltas, run.stop, run.cancel, lambda text, stopped: self._finish(run, text, stopped)
        )

    def extract(
        self,
        messages: Sequence[Message],
        texts: Sequence[str],
        prefix: str = "",
        method: str = "span",
        starts: int = 4,
        max_tokens: int = 16,
        no_answer: str = "",
        near: str = "",
    ) -> Extraction | None:
        """The span of ``texts`` the model most likely answers ``messages`` with, its reply
        opened with ``prefix`` (:mod:`rag.generation.spans`); ``None`` for empty texts. With
        ``no_answer``, that word is scored too (``Extraction.no_answer_logprob``); with
        ``near`` (the question), spans next to its words rank higher."""
        if self._ready_worker() is None:
            return self._delegate.extract(messages, texts, prefix, method, starts, max_tokens, no_answer, near)
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        ids = self._tokenizer.encode(self.render(messages) + prefix, add_special_tokens=False).ids
        answer_room(len(ids), self._window, max_tokens)
        encoded = [self._tokenizer.encode(text, add_special_tokens=False) for text in texts]
        edges = [word_edges(text, e.offsets) for text, e in zip(texts, encoded)]
        done = self._call(
            {
                "op": "extract",
                "ids": ids,
                "texts": [e.ids for e in encoded],
                "stop_ids": self._stop_ids,
                "method": method,
                "starts": starts,
                "max_tokens": max_tokens,
                "edges": edges,
                "no_answer": self._tokenizer.encode(no_answer, add_special_tokens=False).ids if no_answer else None,
                "prior": [nearness(text, e.offsets, near) for text, e in zip(texts, encoded)] if near else None,
            }
        )
        span = done.get("span")
        choice = (
            None
            if span is None
            else SpanChoice(
                int(span[0]),
                int(span[1]),
                int(span[2]),
                float(span[3]),
                float(span[4]),
                int(span[5]),
                None if span[6] is None else float(span[6]),
            )
        )
        return to_extraction(choice, [e.offsets for e in encoded], texts, len(ids), int(done.get("cached_tokens", 0)))

    def score(self, messages: Sequence[Message], continuation: str, prefix: str = "") -> tuple[float, int]:
        """log P(``continuation`` | the prompt opened with ``prefix``) and its length in tokens."""
        if self._ready_worker() is None:
            return self._delegate.score(messages, continuation, prefix)
        ids = self._tokenizer.encode(self.render(messages) + prefix, add_special_tokens=False).ids
        following = self._tokenizer.encode(continuation, add_special_tokens=False).ids
        answer_room(len(ids), self._window, len(following))
        done = self._call({"op": "score", "ids": ids, "continuation": following})
        return float(done["logprob"]), int(done["tokens"])

    # -- internals ------------------------------------------------------------------------------

    def _call(self, request: dict) -> dict:
        """Send one request that is answered by a single ``done`` message; returns it."""
        worker = self._ready_worker()
        if worker is None:
            raise GenerationError("The ONNX generator is not available.")
        number, inbox = worker.open()
        try:
            worker.send({**request, "id": number})
            message = inbox.get()
            if "done" in message:
                return message["done"]
            if "error" in message:
                raise GenerationError(f"The model failed while reading ({message['error']}).")
            raise GenerationError(message.get("gone") or "The generator process gave no answer.")
        finally:
            worker.release(number)

    def _prepare(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None,
        stop: Sequence[str] | None,
        temperature: float | None,
    ) -> _Run:
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        ids = self._tokenizer.encode(self.render(messages), add_special_tokens=False).ids
        wanted = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        return _Run(
            ids=ids,
            max_new_tokens=answer_room(len(ids), self._window, wanted),
            stop=list(self.stop if stop is None else stop),
            temperature=self.temperature if temperature is None else temperature,
            cancel=threading.Event(),
        )

    def _decode_loop(self, run: _Run, emit: Callable[[list[int]], None] | None = None) -> list[int]:
        """Have the model's process answer ``run``; returns the new token ids (the end-of-turn
        token excluded). Cancelling ``run`` stops it before its next token, also while it waits
        for its turn."""
        worker = self._ready_worker()
        if worker is None:
            raise GenerationError("The ONNX generator is not available.")
        number, inbox = worker.open()
        new: list[int] = []
        cancel_sent = False
        try:
            worker.send(
                {
                    "op": "generate",
                    "id": number,
                    "ids": run.ids,
                    "max_new_tokens": run.max_new_tokens,
                    "stop": run.stop,
                    "temperature": run.temperature,
                }
            )
            while True:
                if run.cancel.is_set() and not cancel_sent:
                    worker.send({"op": "cancel", "id": number})
                    cancel_sent = True
                try:
                    message = inbox.get(timeout=CANCEL_POLL_S)
                except queue.Empty:
                    continue
                if "token" in message:
                    new.append(int(message["token"]))
                    if emit is not None:
                        emit([new[-1]])
                elif "done" in message:
                    done = message["done"]
                    run.completion_tokens = int(done["completion_tokens"])
                    run.cached_tokens = int(done["cached_tokens"])
                    run.stopped = bool(done["stopped"])
                    return new
                elif "error" in message:
                    raise GenerationError(f"The model failed while generating ({message['error']}).")
                elif "gone" in message:
                    raise GenerationError(message["gone"])
        finally:
            worker.release(number)

    def _finish(self, run: _Run, text: str, stopped: bool | None = None) -> GenerationResult:
        return finished(
            text, run.stop, run.prompt_tokens, run.completion_tokens, run.max_new_tokens, run.cached_tokens, stopped
        )
