"""The local causal LM run by ONNX Runtime GenAI on a CPU.

The same transformers model (by default SmolLM2-135M-Instruct from its GGUF), exported once to
ONNX with ``onnxruntime-genai``'s model builder, checked against transformers and cached under
``settings.model_cache_dir``. A server that answers with it imports neither torch nor
transformers: on these 2 cores it is ready in ~3 s instead of ~12 s and reads a prompt ~1.6x
faster (``python -m bench.serve_bench``). The export (first start only) converts the GGUF with
transformers as before and runs the builder in a child process.

``generator_runtime`` picks it: ``auto`` (the default) uses it on a CPU for model families the
builder knows and falls back to transformers, with a warning, when the export fails; ``onnx``
makes it mandatory; ``transformers`` never uses it. GPUs always use transformers.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rag.config import Settings
from rag.embedding import pick_device
from rag.errors import ConfigError, GenerationError
from rag.generation.base import GenerationResult, Message, StopSequences, TextStream, find_stop
from rag.generation.prompt_cache import PromptCache
from rag.generation.transformers_lm import (
    DEFAULT_MODEL, ConvertedModelCache, ModelSource, TransformersGenerator, _TextDeltas, cycles,
    repeats_itself, resolve_model,
)

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "transformers")
PRECISION = "fp32"                 # the builder's int4 changes answers; not measured yet
EXPORT_MARK = "export.json"
# The export is accepted when, on each probe prompt, ONNX Runtime's next-token logits match
# transformers' to this (absolute; logits of SmolLM2 are of order 10) and pick the same token.
LOGIT_TOLERANCE = 1e-2
PROBES = (
    [{"role": "system", "content": "Answer from the passage and cite it as [1]."},
     {"role": "user", "content": "Passage [1]: The lighthouse was built in 1874.\n\nQuestion: When was it built?"}],
    [{"role": "user", "content": "长城位于中国北方，全长约两万公里。长城有多长？"}],
)
BUILDER_TIMEOUT_S = 1800


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
    installed = importlib.util.find_spec("onnxruntime_genai") is not None
    local = _weights_on_disk(settings.generator_model)
    if setting == "onnx":
        if not cpu:
            raise ConfigError("generator_runtime 'onnx' runs on a CPU only; set device to cpu or the runtime to transformers.")
        if not installed:
            raise ConfigError("generator_runtime 'onnx' needs onnxruntime-genai; run: pip install onnxruntime-genai onnx-ir")
        if not local:
            raise ConfigError(f"generator_runtime 'onnx' needs the model's files on disk; '{settings.generator_model}' "
                              "is neither the packaged default, a .gguf file nor a local folder.")
        return "onnx"
    if settings.generator_quantize != "none":
        return "transformers"        # dynamic int8 is a torch feature
    return "onnx" if cpu and installed and local else "transformers"


def _weights_on_disk(name: str) -> bool:
    if name == DEFAULT_MODEL:
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
    return f"{base}-ortgenai{builder}-{PRECISION}"


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
            (tmp / EXPORT_MARK).write_text(json.dumps({
                "source": str(hf_folder), "key": key, "precision": PRECISION, "created": time.time(), **findings,
            }, indent=1), encoding="utf-8")
            final = self.root / key
            if final.exists() and not (final / EXPORT_MARK).is_file():
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / EXPORT_MARK).is_file():   # else another process finished first
                    raise
            return final
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_builder(hf_folder: Path, out: Path) -> None:
    """``onnxruntime_genai.models.builder`` on a transformers model folder, in a child process
    (it imports torch and transformers and holds a second copy of the weights while it works)."""
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_folder), "-o", str(out),
               "-p", PRECISION, "-e", "cpu", "-c", str(out / ".builder-cache")]
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
            raise ConfigError(f"The ONNX export disagrees with transformers (largest logit difference {difference:.3g}); "
                              "it is not used.")
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
    return folder, AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval(), AutoTokenizer.from_pretrained(folder)


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
    def from_folder(cls, folder: Path) -> "ChatTemplate":
        config: dict = {}
        if (folder / "tokenizer_config.json").is_file():
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        source = config.get("chat_template")
        if isinstance(source, list):        # named templates: take the default one
            source = next((t.get("template") for t in source if t.get("name") == "default"), None)
        if not source and (folder / "chat_template.jinja").is_file():
            source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        special = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
        return cls(source, special)

    def render(self, messages: Sequence[Message]) -> str:
        if self._template is None:    # a base model: a plain transcript it can continue
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
            return "\n\n".join(lines) + "\n\nAssistant:"
        return self._template.render(messages=list(messages), add_generation_prompt=True, **self.special)


def _raise_template_error(message: str) -> None:
    raise GenerationError(f"The model's chat template refused the conversation: {message}")


# -- the generator ------------------------------------------------------------------------------


class _Session:
    """One ``onnxruntime_genai.Generator`` (a key/value cache and its token sequence), shaped
    for :class:`~rag.generation.prompt_cache.PromptCache`."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.computed = 0          # tokens whose keys/values are in the cache

    def get_seq_length(self) -> int:
        return self.computed

    def crop(self, length: int) -> None:
        """Keep the first ``length`` tokens (a negative ``length`` drops that many at the end)."""
        keep = self.computed + length if length < 0 else length
        self.generator.rewind_to(keep)
        self.computed = keep


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


class OnnxGenerator:
    """A causal LM run by ONNX Runtime GenAI, behind the
    :class:`~rag.generation.base.Generator` protocol. Loads on :meth:`warm_up` or first use;
    generations run one at a time, as with transformers."""

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: Path | None = None, context_tokens: int = 2048,
                 max_new_tokens: int = 128, temperature: float = 0.0, stop: Sequence[str] | None = None,
                 prompt_cache_slots: int = 4, fallback: TransformersGenerator | None = None) -> None:
        self.name = model
        self.cache_dir = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "rag-service"
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = list(stop or [])
        self.prompt_cache_slots = prompt_cache_slots
        self.fallback = fallback
        self.device = "cpu"
        self.load_info: dict[str, Any] = {}
        self._delegate: TransformersGenerator | None = None
        self._model = None
        self._tokenizer = None
        self._template: ChatTemplate | None = None
        self._window = context_tokens
        self._prompt_cache: PromptCache | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, fallback: TransformersGenerator | None = None) -> "OnnxGenerator":
        return cls(settings.generator_model, settings.model_cache_dir, settings.context_tokens, settings.max_new_tokens,
                   settings.temperature, settings.stop, settings.prompt_cache_slots, fallback)

    # -- loading --------------------------------------------------------------------------------

    def warm_up(self) -> None:
        if self._load() is None:
            return self._delegate.warm_up()
        self.generate([{"role": "user", "content": "Hi"}], max_new_tokens=1)

    def _load(self) -> Any:
        """The loaded ONNX model, or ``None`` when the transformers fallback took over."""
        if self._model is None and self._delegate is None:
            with self._load_lock:
                if self._model is None and self._delegate is None:
                    started = time.perf_counter()
                    try:
                        folder, origin = self._export()
                        self._open(folder)
                    except (ConfigError, GenerationError, OSError, RuntimeError, ValueError) as exc:
                        if self.fallback is None:
                            raise
                        log.warning("The generator runs with transformers instead of ONNX Runtime: %s", exc)
                        self._delegate = self.fallback
                        return None
                    self.load_info = {"origin": origin, "seconds": round(time.perf_counter() - started, 2),
                                      "device": "cpu", "runtime": "onnxruntime-genai", "quantized": "none"}
                    log.info("Loaded generator %s from %s in %.1f s (ONNX Runtime, CPU)", self.name, origin,
                             self.load_info["seconds"])
        return self._model

    def _export(self) -> tuple[Path, str]:
        source = resolve_model(self.name)
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
        import onnxruntime_genai as og
        from tokenizers import Tokenizer

        config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))["model"]
        self._model = og.Model(str(folder))
        self._og = og
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._template = ChatTemplate.from_folder(folder)
        self._window = min(self.context_tokens, int(config.get("context_length") or self.context_tokens))
        self._prompt_cache = PromptCache(self._new_session, self.prompt_cache_slots)

    def _new_session(self, temperature: float = 0.0) -> _Session:
        params = self._og.GeneratorParams(self._model)
        if temperature > 0:
            params.set_search_options(max_length=self._window, do_sample=True, temperature=temperature, top_p=0.95)
        else:
            params.set_search_options(max_length=self._window, do_sample=False)
        return _Session(self._og.Generator(self._model, params))

    # -- the Generator protocol -----------------------------------------------------------------

    @property
    def context_window(self) -> int:
        if self._load() is None:
            return self._delegate.context_window
        return self._window

    def count_tokens(self, text: str) -> int:
        if self._load() is None:
            return self._delegate.count_tokens(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def render(self, messages: Sequence[Message]) -> str:
        if self._load() is None:
            return self._delegate.render(messages)
        return self._template.render(messages)

    def generate(self, messages: Sequence[Message], max_new_tokens: int | None = None,
                 stop: Sequence[str] | None = None, temperature: float | None = None) -> GenerationResult:
        if self._load() is None:
            return self._delegate.generate(messages, max_new_tokens, stop, temperature)
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        with self._run_lock:
            ids = self._decode_loop(run)
        return self._finish(run, self._tokenizer.decode(ids, skip_special_tokens=True))

    def stream(self, messages: Sequence[Message], max_new_tokens: int | None = None,
               stop: Sequence[str] | None = None, temperature: float | None = None) -> TextStream:
        if self._load() is None:
            return self._delegate.stream(messages, max_new_tokens, stop, temperature)
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        deltas = _TextDeltas(self._tokenizer)
        state: dict[str, Exception] = {}

        def work() -> None:
            try:
                with self._run_lock:
                    if not run.cancel.is_set():
                        self._decode_loop(run, deltas.add)
            except Exception as exc:  # noqa: BLE001 - handed to the reading thread
                state["error"] = exc
            finally:
                deltas.end()

        thread = threading.Thread(target=work, name="generate", daemon=True)
        thread.start()
        stopper = StopSequences(run.stop)

        def pieces():
            for piece in deltas:
                shown = stopper.feed(piece)
                if shown:
                    yield shown
                if stopper.stopped:
                    run.cancel.set()
                    break
            tail = stopper.flush()
            if tail:
                yield tail
            thread.join()
            if "error" in state:
                raise GenerationError(f"The model failed while generating ({state['error']}).") from state["error"]

        def finish(text: str) -> GenerationResult:
            thread.join()
            return self._finish(run, text, stopped=stopper.stopped)

        return TextStream(pieces(), finish, on_close=run.cancel.set)

    # -- internals ------------------------------------------------------------------------------

    def _prepare(self, messages: Sequence[Message], max_new_tokens: int | None, stop: Sequence[str] | None,
                 temperature: float | None) -> _Run:
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        ids = self._tokenizer.encode(self.render(messages), add_special_tokens=False).ids
        room = self._window - len(ids)
        if room <= 0:
            raise GenerationError(
                f"The prompt takes {len(ids)} tokens but the model reads at most {self._window}; "
                "shorten the question or the conversation, or lower top_k."
            )
        wanted = self.max_new_tokens if max_new_tokens is None else max_new_tokens
        return _Run(ids=ids, max_new_tokens=max(1, min(wanted, room)), stop=list(self.stop if stop is None else stop),
                    temperature=self.temperature if temperature is None else temperature, cancel=threading.Event())

    def _decode_loop(self, run: _Run, emit: Callable[[list[int]], None] | None = None) -> list[int]:
        """Read the prompt (after the part a cached session holds) and pick tokens until the end
        of the turn, a stop sequence, a loop, the length limit or cancellation. Returns the new
        token ids, the end-of-turn token excluded."""
        sampling = run.temperature > 0
        if sampling:
            session, run.cached_tokens = self._new_session(run.temperature), 0
        else:
            session, run.cached_tokens = self._prompt_cache.lease(run.ids)
        new: list[int] = []
        try:
            session.generator.append_tokens(run.ids[run.cached_tokens:])
            session.computed = len(run.ids)
            while len(new) < run.max_new_tokens and not run.cancel.is_set():
                session.generator.generate_next_token()
                # The token just picked is in the sequence, but the model reads it only when
                # asked for the next one.
                session.computed = session.generator.token_count() - 1
                if session.generator.is_done():         # end of turn (or the window is full)
                    break
                token = int(session.generator.get_next_tokens()[0])
                new.append(token)
                if emit is not None:
                    emit([token])
                if self._should_stop(run, new):
                    break
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises plain RuntimeErrors
            raise GenerationError(f"The model failed while generating ({str(exc)[:200]}).") from exc
        run.completion_tokens = len(new)
        if not sampling:
            if session.generator.token_count() > session.computed:
                session.crop(session.computed)
            self._prompt_cache.keep(session, run.ids + new)
        return new

    def _should_stop(self, run: _Run, new: list[int]) -> bool:
        """A loop (see :func:`cycles`, :func:`repeats_itself`) or a stop sequence."""
        if cycles(new):
            return True
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        if repeats_itself(text):
            return True
        if run.stop and find_stop(text, run.stop) is not None:
            run.stopped = True
            return True
        return False

    def _finish(self, run: _Run, text: str, stopped: bool | None = None) -> GenerationResult:
        if stopped is None:
            cut = find_stop(text, run.stop)
            stopped = cut is not None
            if cut is not None:
                text = text[:cut]
        reason = "length" if run.completion_tokens >= run.max_new_tokens and not stopped else "stop"
        return GenerationResult(text=text, prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
                                finish_reason=reason, cached_tokens=run.cached_tokens)
