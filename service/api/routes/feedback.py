"""DELETE /v1/feedback/{item_id}: erase a recorded item (right to erasure)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, register_url_convertor

from service.api.deps import AUTH_ERRORS, INVALID_INPUT, STORE_UNAVAILABLE, AdminScope, StoreDep
from service.api.schemas import ErrorResponse

router = APIRouter(prefix="/v1", tags=["feedback"])


class ItemIdConvertor(PathConvertor):
    """Any recorded id: "/" included (sent as %2F), as Starlette's "path" allows, and newlines
    too, which its ``.*`` does not match (such a path would get the router's bare 404)."""

    regex = r"[\s\S]*"


register_url_convertor("any_id", ItemIdConvertor())


@router.delete(
    "/feedback/{item_id:any_id}",
    status_code=204,
    response_class=Response,
    dependencies=[AdminScope],
    responses={
        **AUTH_ERRORS,
        404: {"model": ErrorResponse, "description": "No item with this id is recorded."},
        **INVALID_INPUT,
        **STORE_UNAVAILABLE,
    },
)
async def erase_feedback(
    store: StoreDep, item_id: Annotated[str, Path(min_length=1, max_length=255)]
) -> Response:
    """Delete everything recorded under ``item_id``: its themes, scores, metadata and text."""
    if not await run_in_threadpool(store.erase, item_id):
        raise HTTPException(404, detail={"field": "item_id", "message": "no such recorded item"})
    return Response(status_code=204)
