"""Request bodies, validated with one clear sentence per mistake (see :mod:`api.errors`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.config import ANSWER_MODES, Settings

from api.errors import ApiError

MAX_TOP_K = 50
MAX_HISTORY = 40


AnswerMode = Literal[ANSWER_MODES]  # type: ignore[valid-type]   # "generate" | "quote"


class Filters(BaseModel):
    """Which documents retrieval may draw from."""

    model_config = ConfigDict(extra="forbid")

    source: str | list[str] | None = Field(None, description="glob(s) over document paths, e.g. 'policies/*.md'")
    file_type: str | list[str] | None = Field(None, description="file extension(s) without the dot, e.g. 'pdf'")
    exclude: str | list[str] | None = Field(None, description="glob(s) over document paths to leave out, e.g. 'drafts/*'")

    def to_pipeline(self) -> dict[str, Any] | None:
        values = {key: value for key, value in self.model_dump().items() if value}
        return values or None


class Turn(BaseModel):
    """One earlier message of the conversation."""

    role: Literal["user", "assistant"]
    content: str


def _check_top_k(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_TOP_K:
        raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, not {value}.")
    return value


class AskRequest(BaseModel):
    """``POST /ask``."""

    question: str = Field(..., description="the question, in English or Chinese")
    top_k: int | None = Field(None, description=f"passages handed to the generator (1-{MAX_TOP_K}); default from settings")
    filters: Filters | None = None
    history: list[Turn] | None = Field(None, max_length=MAX_HISTORY,
                                       description="earlier turns; a follow-up question is rewritten into a standalone query")
    stream: bool = Field(False, description="answer as Server-Sent Events")
    answer_mode: AnswerMode | None = Field(
        None, description="'generate': the model writes the answer; 'quote': the passage sentence that best "
                          "answers, word for word; default from settings")

    _top_k = field_validator("top_k")(_check_top_k)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message text; the text parts of a multi-part content list, joined."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the OpenAI body; ``top_k``, ``filters`` and
    ``answer_mode`` are extensions (the OpenAI client sends them with ``extra_body``).

    Sampling parameters (``temperature``, ``max_tokens``, ...) are accepted and ignored: the
    service's own settings decide how the grounded answer is generated.
    """

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    top_k: int | None = None
    filters: Filters | None = None
    answer_mode: AnswerMode | None = None

    _top_k = field_validator("top_k")(_check_top_k)


def check_question(question: str, settings: Settings) -> str:
    """The question, stripped; 422 when it is empty or longer than ``max_question_chars``."""
    text = question.strip()
    if not text:
        raise ApiError(422, "The question is empty; send the question text in the 'question' field.", "empty_question",
                       [{"loc": ["body", "question"], "msg": "empty", "type": "value_error"}])
    if len(text) > settings.max_question_chars:
        raise ApiError(
            422,
            f"The question is {len(text)} characters long, over the limit of {settings.max_question_chars}; shorten it.",
            "question_too_long",
            [{"loc": ["body", "question"], "msg": "too long", "type": "value_error"}],
        )
    return text
