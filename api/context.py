"""What every route needs, built once per app by :func:`api.app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from api.admission import Admission
from api.library import DocumentLibrary
from api.metrics import ApiMetrics
from api.service import AnswerService
from rag.config import Settings


@dataclass
class ApiContext:
    settings: Settings
    service: AnswerService
    library: DocumentLibrary
    metrics: ApiMetrics
    admission: Admission


def get_context(request: Request) -> ApiContext:
    """FastAPI dependency: the app's context."""
    return request.app.state.context
