"""GET /v1/review: recorded items flagged for review, as Label Studio tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from service.api.deps import AUTH_ERRORS, INVALID_INPUT, STORE_UNAVAILABLE, AdminScope, StoreDep
from service.labelstudio import label_config, review_task

router = APIRouter(
    prefix="/v1/review",
    tags=["review"],
    dependencies=[AdminScope],
    responses=AUTH_ERRORS,
)


class ReviewQueue(BaseModel):
    total: int = Field(..., description="Items flagged for review in the store.")
    tasks: list[dict[str, Any]] = Field(
        ..., description="Label Studio tasks, most uncertain first, with pre-annotations."
    )


@router.get("", response_model=ReviewQueue, responses={**INVALID_INPUT, **STORE_UNAVAILABLE})
async def review_queue(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    # Bounded: the databases' integers are 64-bit (a larger offset was a 500, not a 422).
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> ReviewQueue:
    """Items the model was unsure of, ordered by how close a theme score lies to its
    threshold (a label there teaches the model most). Texts are present only when the store
    keeps them (``store_text``)."""
    total, rows = await run_in_threadpool(store.review_queue, limit, offset)
    return ReviewQueue(total=total, tasks=[review_task(r) for r in rows])


@router.get(
    "/label-config",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}, "description": "Label Studio XML."}},
)
def review_label_config(request: Request) -> Response:
    """The Label Studio labelling interface for the served taxonomy (XML)."""
    return Response(label_config(request.app.state.taxonomy), media_type="application/xml")
