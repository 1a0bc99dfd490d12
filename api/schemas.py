"""Request bodies, validated with one clear sentence per mistake (see :mod:`api.errors`)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.errors import ApiError
from rag.config import ANSWER_MODES, Settings

MAX_TOP_K = 50
MAX_HISTORY = 40
MAX_MESSAGES = MAX_HISTORY + 24  # the OpenAI endpoint: history, the question, and system messages


_BAD_CHARACTER = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_text(value: Any, info: ValidationInfo) -> Any:
    """Text fields hold only characters one can send as UTF-8 and show: no lone surrogates, no control characters.

    A lone surrogate (JSON "\\ud800") cannot be encoded, and would fail deep inside the tokenizer.
    """
    texts = (
        [value]
        if isinstance(value, str)
        else [v for v in value if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )
    for text in texts:
        bad = _BAD_CHARACTER.search(text)
        if bad is None:
            continue
        code = ord(bad.group())
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError(
                f"The field '{info.field_name}' holds invalid Unicode (a lone surrogate, "
                f"U+{code:04X}); send valid UTF-8 text."
            )
        raise ValueError(f"The field '{info.field_name}' holds a control character (U+{code:04X}); remove it.")
    return value


AnswerMode = Literal[ANSWER_MODES]  # type: ignore[valid-type]   # "generate" | "quote"


class Filters(BaseModel):
    """Which documents retrieval may draw from."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source: str | list[str] | None = Field(None, description="glob(s) over document paths, e.g. 'policies/*.md'")
    file_type: str | list[str] | None = Field(None, description="file extension(s) without the dot, e.g. 'pdf'")
    exclude: str | list[str] | None = Field(
        None, description="glob(s) over document paths to leave out, e.g. 'drafts/*'"
    )

    _text = field_validator("source", "file_type", "exclude")(check_text)

    def to_pipeline(self) -> dict[str, Any] | None:
        values = {key: value for key, value in self.model_dump().items() if value}
        return values or None


class Turn(BaseModel):
    """One earlier message of the conversation."""

    model_config = ConfigDict(strict=True)

    role: Literal["user", "assistant"]
    content: str

    _text = field_validator("content")(check_text)


def _check_top_k(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_TOP_K:
        raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, not {value}.")
    return value


class AskRequest(BaseModel):
    """``POST /ask``. Strict: ``"stream": 0`` or ``"top_k": "3"`` are refused, not guessed at."""

    model_config = ConfigDict(strict=True)

    question: str = Field(
        ...,
        min_length=1,
        description="the question, in English or Chinese (at most max_question_chars characters, 2000 by default)",
    )
    top_k: int | None = Field(
        None, description=f"passages handed to the generator (1-{MAX_TOP_K}); default from settings"
    )
    filters: Filters | None = None
    history: list[Turn] | None = Field(
        None,
        max_length=MAX_HISTORY,
        description="earlier turns; a follow-up question is rewritten into a standalone query",
    )
    stream: bool = Field(False, description="answer as Server-Sent Events")
    answer_mode: AnswerMode | None = Field(
        None,
        description="'generate': the model writes the answer; 'quote': the passage sentence that best "
        "answers, word for word; default from settings",
    )

    _top_k = field_validator("top_k")(_check_top_k)
    _text = field_validator("question")(check_text)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: str
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _valid_text(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, list):
            check_text([part.get("text") for part in value if isinstance(part, dict)], info)
            return value
        return check_text(value, info)

    def text(self) -> str:
        """The message text; the text parts of a multi-part content list, joined."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the OpenAI body; ``top_k``, ``filters`` and
    ``answer_mode`` are extensions (the OpenAI client sends them with ``extra_body``).

    Sampling parameters (``temperature``, ``max_tokens``, ...) are accepted and ignored: the
    service's own settings decide how the grounded answer is generated.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=MAX_MESSAGES)
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
        raise ApiError(
            422,
            "The question is empty; send the question text in the 'question' field.",
            "empty_question",
            [{"loc": ["body", "question"], "msg": "empty", "type": "value_error"}],
        )
    if len(text) > settings.max_question_chars:
        raise ApiError(
            422,
            f"The question is {len(text)} characters long, "
            f"over the limit of {settings.max_question_chars}; shorten it.",
            "question_too_long",
            [{"loc": ["body", "question"], "msg": "too long", "type": "value_error"}],
        )
    return text


def check_history_size(history: list[Turn] | None, settings: Settings) -> None:
    """422 when the earlier turns together are longer than ``max_history_chars``."""
    total = sum(len(turn.content) for turn in history or [])
    if total > settings.max_history_chars:
        raise ApiError(
            422,
            f"The history is {total} characters long, over the limit of {settings.max_history_chars}; "
            "send fewer or shorter earlier turns.",
            "history_too_long",
            [{"loc": ["body", "history"], "msg": "too long", "type": "value_error"}],
        )


def check_messages_size(messages: list[ChatMessage], settings: Settings) -> None:
    """422 when the messages together are longer than ``max_history_chars`` plus one question."""
    total = sum(len(message.text()) for message in messages)
    limit = settings.max_history_chars + settings.max_question_chars
    if total > limit:
        raise ApiError(
            422,
            f"The messages are {total} characters long together, over the limit of {limit}; "
            "send fewer or shorter messages.",
            "messages_too_long",
            [{"loc": ["body", "messages"], "msg": "too long", "type": "value_error"}],
        )
