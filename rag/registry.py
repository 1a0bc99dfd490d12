"""Backends by name: a short name from a registry, or ``"package.module:Class"`` for a class
of the user's own, checked against the interface it must implement.

Embedders (``embed_model``), generators (``generator``) and rerankers (``reranker_model``) are
all chosen this way, so a new backend is one new file plus one registry line, and a user's
own needs no edit of ours. A registry maps a name to ``"module:Class"``; the module is imported
only when that backend is chosen. A class may offer ``from_settings(settings)``; otherwise it
is built with no arguments.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rag.errors import ConfigError


def is_import_path(name: str) -> bool:
    """Whether ``name`` reads as ``"module:Class"`` (and not as a file path such as ``C:\\x``)."""
    if name.count(":") != 1 or Path(name).exists():
        return False
    module, _, cls = name.partition(":")
    return bool(module) and bool(cls) and all(part.isidentifier() for part in module.split(".")) and cls.isidentifier()


def backend_class(
    setting: str, name: str, registry: Mapping[str, str], members: Sequence[str], interface: str
) -> type | None:
    """The class that ``name`` chooses for ``setting``, or ``None`` when ``name`` is neither a
    registry name nor an import path (the caller then treats it as a model name or path).

    Raises :class:`ConfigError` when the class cannot be imported or lacks any of ``members``
    (``interface`` names the protocol in that message)."""
    target = registry.get(name)
    if target is None:
        if not is_import_path(name):
            return None
        target = name
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{setting} '{name}': cannot import {target} ({exc}).") from exc
    missing = [m for m in members if not hasattr(cls, m)]
    if missing:
        raise ConfigError(f"{setting} '{name}': {target} lacks {', '.join(missing)} of the {interface} interface.")
    return cls


def build(cls: type, settings: Any) -> Any:
    """An instance of a backend class: ``cls.from_settings(settings)`` when it has one."""
    factory = getattr(cls, "from_settings", None)
    return factory(settings) if factory is not None else cls()
