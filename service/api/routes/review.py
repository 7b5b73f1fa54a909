"""The review queue: recorded items flagged for review, as Label Studio tasks
(``GET /v1/review``), until a person resolves them (``POST /v1/review/resolve``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import (
    AUTH_ERRORS,
    INVALID_INPUT,
    STORE_UNAVAILABLE,
    AdminScope,
    KeyFirstRoute,
    StoreDep,
)
from service.api.schemas import ItemId
from service.labelstudio import label_config, review_task

# The key is checked before a body is parsed (see KeyFirstRoute).
router = APIRouter(
    prefix="/v1/review",
    tags=["review"],
    dependencies=[AdminScope],
    responses=AUTH_ERRORS,
    route_class=KeyFirstRoute,
)


class ReviewQueue(BaseModel):
    total: int = Field(
        ..., description="Items flagged for review in the store (open ones, by default)."
    )
    tasks: list[dict[str, Any]] = Field(
        ..., description="Label Studio tasks, most uncertain first, with pre-annotations."
    )


@router.get("", response_model=ReviewQueue, responses={**INVALID_INPUT, **STORE_UNAVAILABLE})
async def review_queue(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    # Bounded: the databases' integers are 64-bit (a larger offset was a 500, not a 422).
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    include_resolved: Annotated[
        bool, Query(description="Also list items a person has already resolved.")
    ] = False,
) -> ReviewQueue:
    """Items the model was unsure of and no one has resolved yet, ordered by how close a
    theme score lies to its threshold (a label there teaches the model most). Texts are
    present only when the store keeps them (``store_text``)."""
    total, rows = await run_in_threadpool(store.review_queue, limit, offset, include_resolved)
    return ReviewQueue(total=total, tasks=[review_task(r) for r in rows])


class ReviewResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[ItemId] = Field(
        ..., min_length=1, max_length=1000, description="Recorded item ids (1 to 1,000)."
    )
    resolved: bool = Field(
        True, description="true: take the items out of the queue; false: put them back."
    )


class ReviewResolution(BaseModel):
    changed: int = Field(..., description="Items whose state changed.")
    unchanged: list[str] = Field(
        ..., description="Recorded ids already in the asked state, or never flagged."
    )
    not_found: list[str] = Field(
        ..., description="Ids not in the store (never recorded, or erased)."
    )
    remaining: int = Field(..., description="Flagged items still open after this request.")


@router.post(
    "/resolve", response_model=ReviewResolution, responses={**INVALID_INPUT, **STORE_UNAVAILABLE}
)
async def resolve_reviews(store: StoreDep, body: ReviewResolveRequest) -> ReviewResolution:
    """Mark reviewed items as resolved, so the queue moves on to the next ones (after their
    labels are imported, say); idempotent. Recording an item again keeps its resolution."""
    ids = [str(i) for i in body.ids]  # the store keys on the id's text, as recording does
    result = await run_in_threadpool(store.resolve_reviews, ids, body.resolved)
    return ReviewResolution(**dataclasses.asdict(result))


@router.get(
    "/label-config",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "Label Studio XML."}},
)
def review_label_config(request: Request) -> Response:
    """The Label Studio labelling interface for the served taxonomy (XML)."""
    return Response(label_config(request.app.state.taxonomy), media_type="application/xml")
