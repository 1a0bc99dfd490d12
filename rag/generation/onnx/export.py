"""The model exported once to ONNX with ``onnxruntime-genai``'s model builder, checked against
transformers and cached under ``settings.model_cache_dir``.

The export converts a GGUF with transformers first (:mod:`rag.generation.weights`) and runs the
builder in a child process. It is accepted only when, on each of :data:`PROBES`, ONNX Runtime's
next-token logits match transformers' within :data:`LOGIT_TOLERANCE` and pick the same token.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.generation.onnx.chat_template import ChatTemplate
from rag.generation.transformers_lm import TransformersGenerator
from rag.generation.weights import DEFAULT_MODEL, ModelSource

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
        """The checked export named ``key``, or ``None`` when there is none yet."""
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
        folder = converter.cache.find(source.cache_key) if converter.cache and source.cache_key else None
        if folder is None:
            raise ConfigError(f"The converted model could not be cached under {cache_dir}, so it cannot be exported.")
        return folder, model.float().eval(), tokenizer
    folder = Path(source.path)
    return (
        folder,
        AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval(),
        AutoTokenizer.from_pretrained(folder),
    )
