"""The old home of the Ray ingest, kept so its imports keep working: see :mod:`rag.ingestion.ray`."""

from rag.ingestion.ray import (
    CHUNKS_PER_BATCH,
    _FileTracker,
    _find_rag_error,
    _process_on_ray,
    ingest_folder_ray,
)
from rag.ingestion.ray_cluster import (
    FILES_PER_BATCH,
    LOCAL,
    ActorPlan,
    RaySession,
    _check_reachable,
    _host_port,
    plan_actors,
)
from rag.ingestion.ray_stages import EmbedBatch, ParseAndChunk, _columns, _deferred, _row

__all__ = [
    "CHUNKS_PER_BATCH",
    "FILES_PER_BATCH",
    "LOCAL",
    "ActorPlan",
    "EmbedBatch",
    "ParseAndChunk",
    "RaySession",
    "_FileTracker",
    "_check_reachable",
    "_columns",
    "_deferred",
    "_find_rag_error",
    "_host_port",
    "_process_on_ray",
    "_row",
    "ingest_folder_ray",
    "plan_actors",
]
