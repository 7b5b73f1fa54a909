"""Request and response bodies of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ClassifyItem(BaseModel):
    """One feedback text to classify."""

    model_config = ConfigDict(extra="forbid")

    id: str | int = Field(..., description="The caller's id for the text; echoed back.")
    text: str = Field(..., description="The feedback text, in any language.")
    metadata: dict[str, Any] | None = Field(
        None, description="Free keys such as channel, segment, created_at, lang."
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty or only whitespace")
        return value


class ClassifyRequest(BaseModel):
    """A batch of texts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"id": "t-1", "text": "The bot kept looping, I just wanted a human."},
                        {"id": "t-2", "text": "退款等了三个星期，客服一直说在处理。"},
                    ]
                }
            ]
        },
    )

    items: list[ClassifyItem] = Field(..., min_length=1)
    record: bool = Field(False, description="Store the results in the metrics store.")


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


class Health(BaseModel):
    status: str
    model_version: str | None = None
