"""Request and response bodies of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.text import has_visible_text


def _as_utc(value: datetime) -> datetime:
    # The store keeps naive UTC; answers carry the offset so they are RFC 3339 date-times.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A datetime in a response: naive values are UTC and are sent with their offset (``Z``)."""


class FieldError(BaseModel):
    field: str = Field(..., description="The invalid field as a dotted path, e.g. items.0.text.")
    message: str


class ValidationErrorResponse(BaseModel):
    """422: the request's JSON or fields are invalid; each error names its field."""

    detail: list[FieldError]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str
    field: str | None = Field(None, description="The field at fault, where there is one.")


class ErrorResponse(BaseModel):
    """Every other error: a message, and the field at fault where there is one."""

    detail: ErrorDetail


class ItemMetadata(BaseModel):
    """Where and when the feedback came from; free keys are kept too (PII masked if recorded)."""

    model_config = ConfigDict(extra="allow")

    channel: str | None = Field(None, max_length=200, examples=["app_review"])
    segment: str | None = Field(None, max_length=200, examples=["enterprise"])
    created_at: datetime | None = Field(
        None,
        description="When the customer wrote it (ISO 8601; no offset means UTC). Absent: when "
        "the item was first recorded (sending its id again keeps that date).",
    )
    lang: str | None = Field(
        None,
        max_length=32,
        pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$",
        description="ISO 639 code or BCP 47 tag (en, zh-CN) if known; else detected. "
        "Only the language counts: en-US is en.",
        examples=["zh"],
    )

    @field_validator("created_at")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            try:
                value.astimezone(UTC)  # as the store keeps it
            except OverflowError:
                raise ValueError("created_at is out of range once converted to UTC") from None
        return value

    @model_validator(mode="after")
    def _unicode(self) -> ItemMetadata:
        # Python's JSON parser takes NaN and Infinity; JSON (and PostgreSQL's json) does not.
        if _non_finite(self.model_extra):
            raise ValueError("metadata holds NaN or Infinity, which JSON does not allow")
        _check_unicode(json.dumps(self.model_dump(mode="json"), ensure_ascii=False), "metadata")
        return self


def _non_finite(value: Any) -> bool:
    """True when a float NaN or infinity is anywhere inside ``value``."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def _check_unicode(value: str, what: str) -> None:
    """JSON can escape half of a UTF-16 surrogate pair ("\\ud800"): not a character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} holds a lone surrogate (a \\ud800-\\udfff escape without its pair), "
            "which is not valid Unicode"
        ) from None


def id_type(value: Any, handler: ValidatorFunctionWrapHandler) -> str | int:
    """An item id is a string or an integer: one error at ``...id``, not one per member of the
    union (``id.str``, ``id.int``); JSON ``true`` is refused (it would become the id 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("id_type", "id must be a string or an integer")
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("id_type", "id must be a string or an integer") from None


def check_id(value: str | int) -> str | int:
    """An item id the store can key on: 1 to 255 characters, no NUL, valid Unicode."""
    if isinstance(value, str) and not (0 < len(value) <= 255):
        raise ValueError("id must have 1 to 255 characters")
    if isinstance(value, int) and not -(10**254) < value < 10**255:
        raise ValueError("id must have 1 to 255 characters (digits)")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("id must not contain NUL characters")
        _check_unicode(value, "id")
    return value


ItemId = Annotated[str | int, WrapValidator(id_type), AfterValidator(check_id)]


class ClassifyItem(BaseModel):
    """One feedback text to classify."""

    model_config = ConfigDict(extra="forbid")

    id: ItemId = Field(..., description="The caller's id for the text; echoed back.")
    text: str = Field(..., description="The feedback text, in any language.")
    metadata: ItemMetadata | None = Field(
        None, description="Free keys such as channel, segment, created_at, lang."
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not has_visible_text(value):  # zero-width, control characters...: nothing to classify
            raise ValueError("text must not be empty or only whitespace or invisible characters")
        _check_unicode(value, "text")
        return value


class ClassifyRequest(BaseModel):
    """A batch of texts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "id": "t-1",
                            "text": "The bot kept looping, I just wanted a human.",
                            "metadata": {
                                "channel": "chat",
                                "segment": "consumer",
                                "created_at": "2026-11-20T09:30:00Z",
                            },
                        },
                        {"id": "t-2", "text": "退款等了三个星期，客服一直说在处理。"},
                    ],
                    "record": False,
                }
            ]
        },
    )

    items: list[ClassifyItem] = Field(..., min_length=1)
    record: bool = Field(
        False, description="Store the results in the metrics store (idempotent by id)."
    )


class ResultRow(BaseModel):
    """The model's answer for one text."""

    id: str | int
    themes: list[str] = Field(..., description="Themes whose score reached their threshold.")
    scores: dict[str, float] = Field(..., description="Every theme's probability.")
    sentiment: str
    sentiment_scores: dict[str, float]
    needs_review: bool = Field(
        ..., description="A score lies near its threshold, or the language is unevaluated."
    )
    review_reasons: list[str] = Field(
        default_factory=list,
        description="Why review is needed: score_near_threshold, language_not_evaluated.",
    )
    evidence: dict[str, str] = Field(
        ..., description="Per assigned theme, the sentence that carries it most."
    )
    lang: str | None = None
    model_version: str


class ClassifyResponse(BaseModel):
    """Results in the order of the request's items."""

    model_version: str
    results: list[ResultRow]
    recorded: int | None = Field(
        None, description="Items written to the store when record was true (repeated ids once)."
    )


class Health(BaseModel):
    status: str
    model_version: str | None = None


class Readiness(BaseModel):
    status: str = Field(..., description="ready or not_ready")
    model_version: str | None = None
    store: str = Field(..., description="ok, or why the store cannot be reached")


class ThemeInfo(BaseModel):
    id: str
    name: dict[str, str] = Field(..., description="By language: en, zh.")
    description: dict[str, str]
    report_figure: str = Field(..., description="The survey figure this theme mirrors.")


class TaxonomyOut(BaseModel):
    version: str
    themes: list[ThemeInfo]
    sentiments: list[str]


class ModelCard(BaseModel):
    """The served model's bundle metadata and its card."""

    model_config = ConfigDict(protected_namespaces=())

    version: str
    backend: str | None = Field(
        None, description="How this server runs it: torch, torch-bf16, onnx-fp32 or onnx-int8."
    )
    created_at: str | None = None
    base_model: str | None = None
    taxonomy_version: str | None = None
    theme_ids: list[str]
    sentiment_labels: list[str]
    thresholds: dict[str, float]
    languages: list[str] = Field(default_factory=list, description="Evaluated languages.")
    training_data: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(
        default_factory=dict, description="Test-split figures: model and both baselines."
    )
    card: str | None = Field(None, description="The model card (Markdown).")


class ThemeMetric(BaseModel):
    theme: str
    count: int = Field(..., description="Items mentioning the theme.")
    share: float = Field(..., description="count / items in the period (0..1).")
    sentiment: dict[str, int] = Field(..., description="Items mentioning it, by sentiment.")
    count_change: int | None = Field(None, description="Against the previous period.")
    share_change: float | None = Field(
        None, description="Against the previous period, in share points (0..1 scale)."
    )


class PeriodMetrics(BaseModel):
    period: date = Field(..., description="First day of the period (UTC).")
    group: str | None = Field(None, description="The group_by value; null: not set.")
    feedback_count: int
    review_share: float = Field(..., description="Share of items flagged for review.")
    themes: list[ThemeMetric]


class ThemeMetricsResponse(BaseModel):
    start: UtcDateTime
    end: UtcDateTime
    interval: str
    group_by: str | None
    theme: str | None
    periods: list[PeriodMetrics]


class GroupMetrics(BaseModel):
    group: str | None = Field(None, description="The group_by value; null: not set.")
    feedback_count: int
    review_share: float = Field(..., description="Share of items flagged for review.")
    themes: list[ThemeMetric] = Field(..., description="Every theme; no change figures.")


class SummaryResponse(BaseModel):
    start: UtcDateTime
    end: UtcDateTime
    feedback_count: int
    previous_feedback_count: int = Field(..., description="In the window just before.")
    review_share: float
    top_themes: list[ThemeMetric] = Field(..., description="By count, most first.")
    rising_themes: list[ThemeMetric] = Field(
        ..., description="Share gained against the previous window, most first."
    )
    groups: list[GroupMetrics] | None = Field(
        None, description="With group_by: each group's figures over the window only."
    )
