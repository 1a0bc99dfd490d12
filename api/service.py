"""The answer pipeline as the server holds it: loaded once in the background, shared by requests.

The server starts answering ``/health`` at once (``loading``) while a thread warms the pipeline
up (index, embedder, generator). Requests that need the pipeline wait for the warm-up instead
of failing. With no index yet the state is ``no_index``; the warm-up is retried as soon as an
index appears (built by ``python -m ingest`` or by an upload), without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.errors import ApiError
from rag.config import Settings
from rag.errors import IndexMissingError, RagError
from rag.index import DB_NAME

log = logging.getLogger("api")

LOADING, READY, NO_INDEX, FAILED = "loading", "ready", "no_index", "error"
WARM_UP_WAIT_S = 300.0  # how long a request waits for a warm-up in progress


def default_pipeline_factory(settings: Settings):
    from rag.answering import AnswerPipeline

    return AnswerPipeline.from_settings(settings)


class AnswerService:
    """Owns the pipeline, its readiness, and the knowledge of when to (re)load it."""

    def __init__(self, settings: Settings, pipeline_factory: Callable[[Settings], Any] | None = None) -> None:
        self.settings = settings
        self._factory = pipeline_factory or default_pipeline_factory
        self.pipeline: Any = None
        self.state = LOADING
        self.error: str | None = None
        self.started_at = time.time()
        self.load_seconds: float | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def index_file(self) -> Path:
        return Path(self.settings.index_dir) / DB_NAME

    # -- loading --------------------------------------------------------------------------

    def start(self) -> None:
        """Begin warming up in a background thread (no-op while one is running)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self.state, self.error = LOADING, None
            self._done.clear()
            self._thread = threading.Thread(target=self._warm_up, name="warm-up", daemon=True)
            self._thread.start()

    def _warm_up(self) -> None:
        started = time.perf_counter()
        try:
            if self.pipeline is None:
                self.pipeline = self._factory(self.settings)
            # Loads the models even without an index, so answering starts as soon as one appears.
            self.pipeline.warm_up()
            if not self.index_file.is_file():
                raise IndexMissingError(_no_index_message(self.settings))
        except IndexMissingError:
            self.state, self.error = NO_INDEX, _no_index_message(self.settings)
            log.warning("%s", self.error)
        except RagError as exc:
            self.state, self.error = FAILED, str(exc)
            log.error("The answer pipeline failed to load: %s", exc)
        except Exception as exc:  # noqa: BLE001 - reported by /health; the server stays up
            self.state = FAILED
            self.error = f"The models failed to load ({exc.__class__.__name__}: {exc}); see the server log."
            log.exception("The answer pipeline failed to load")
        else:
            self.state, self.error = READY, None
            self.load_seconds = round(time.perf_counter() - started, 2)
            log.info("Ready to answer (loaded in %.1f s).", self.load_seconds)
        finally:
            self._done.set()

    def refresh(self) -> None:
        """Retry the warm-up if it failed for want of an index that now exists."""
        if self.state == NO_INDEX and self.index_file.is_file():
            self.start()

    # -- use ------------------------------------------------------------------------------

    def ready_pipeline(self) -> Any:
        """The pipeline if it is loaded and ready, else ``None`` (never waits)."""
        return self.pipeline if self.state == READY and self._done.is_set() else None

    def require(self, wait: float = WARM_UP_WAIT_S) -> Any:
        """The ready pipeline; waits for a warm-up in progress, raises a 503 otherwise."""
        self.refresh()
        if not self._done.wait(wait):
            raise ApiError(
                503,
                "The models are still loading; try again in a few seconds.",
                "loading",
                headers={"Retry-After": "5"},
            )
        if self.state == READY:
            return self.pipeline
        if self.state == NO_INDEX:
            raise ApiError(503, self.error or _no_index_message(self.settings), "no_index")
        raise ApiError(503, self.error or "The answer pipeline is not available; see the server log.", "not_ready")

    def _index(self) -> Any:
        """The index the ready pipeline searches (reloaded first if an ingest committed since)."""
        if self.state != READY or self.pipeline is None:
            return None
        try:
            return getattr(self.pipeline.retriever, "index", None)
        except RagError:
            return None

    def embedder(self) -> Any:
        """The loaded query embedder, so ingests from uploads do not load a second copy."""
        return getattr(self._index(), "embedder", None)

    def index_stats(self) -> dict[str, Any] | None:
        """The served index's statistics."""
        index = self._index()
        return index.stats() if index is not None else None

    def model_name(self) -> str:
        if self.pipeline is not None:
            return str(self.pipeline.model_name)
        if self.settings.generator == "openai":
            return self.settings.openai_model
        return self.settings.generator_model


def _no_index_message(settings: Settings) -> str:
    from api.paths import shown_path

    index_dir = shown_path(settings.index_dir, settings)
    return (
        f"No index found in {index_dir}; build one with: python -m ingest DOCS_FOLDER --index-dir {index_dir} "
        "(or upload documents with POST /documents)."
    )
