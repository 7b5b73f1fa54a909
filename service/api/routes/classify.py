"""POST /v1/classify: themes and sentiment per item, optionally recorded in the store."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import (
    AUTH_ERRORS,
    ClassifyScope,
    KeyFirstRoute,
)
from service.api.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    ResultRow,
    ValidationErrorResponse,
)
from service.batching import QueueFull
from service.privacy import truncate_text
from service.store import RecordInput
from service.text import lstrip_invisible

# The key is checked before the body is parsed (see KeyFirstRoute).
router = APIRouter(prefix="/v1", tags=["classify"], route_class=KeyFirstRoute)
log = logging.getLogger(__name__)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    dependencies=[ClassifyScope],
    responses={
        **AUTH_ERRORS,
        413: {
            "model": ErrorResponse,
            "description": "Too many items, a text too long, or the body too large.",
        },
        422: {
            "model": ValidationErrorResponse,
            "description": "Invalid JSON or fields; each error names its field.",
        },
        503: {
            "model": ErrorResponse,
            "description": "The queue is full (see Retry-After), or recording failed.",
        },
    },
)
async def classify(
    body: ClassifyRequest,
    request: Request,
) -> ClassifyResponse:
    """Themes, sentiment, review flag and evidence for each item, in the request's order.

    With ``record: true`` each result is also stored under its id; sending an id again
    replaces what was stored for it.
    """
    # Read from app state at request time (a reloaded model is picked up), not through
    # dependencies: this hot path has none for FastAPI to solve, and at 32 clients on 2 cores
    # the event loop's time per request decides how fast answered clients rejoin the next
    # micro-batch (four dependencies cost about 15% of it, bench/RESULTS.md).
    state = request.app.state
    settings, model, store, telemetry = state.settings, state.model, state.store, state.telemetry
    if len(body.items) > settings.max_items_per_request:
        raise HTTPException(
            413,
            detail={
                "field": "items",
                "message": f"at most {settings.max_items_per_request} items per request, "
                f"got {len(body.items)}",
            },
        )
    texts = []
    for k, item in enumerate(body.items):
        text = item.text
        if len(text) > settings.max_text_chars:
            if not settings.truncate_long_texts:
                raise HTTPException(
                    413,
                    detail={
                        "field": f"items.{k}.text",
                        "id": item.id,
                        "message": f"text has {len(text)} characters; "
                        f"the limit is {settings.max_text_chars}",
                    },
                )
            # Leading whitespace (or zero-width characters) is not the text: cut after it, or
            # a text that starts with enough of it would be cut to nothing visible (and fail
            # its whole micro-batch). Personal data cut in half would no longer be found by
            # masking: it is cut whole.
            text = truncate_text(lstrip_invisible(text), settings.max_text_chars)
        texts.append(text)
    langs = [(item.metadata.lang or None) if item.metadata else None for item in body.items]
    telemetry.request_items.observe(len(texts))
    try:
        predictions = await model.batcher.submit(texts, langs)
    except QueueFull as exc:
        telemetry.rejected.labels("queue_full").inc()
        raise HTTPException(
            503,
            detail={"message": str(exc)},
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    telemetry.observe_predictions(predictions)

    recorded = None
    if body.record:
        inputs = [
            RecordInput(
                id=item.id,
                text=text,
                prediction=p,
                metadata=item.metadata.model_dump(exclude_none=True) if item.metadata else {},
            )
            for item, text, p in zip(body.items, texts, predictions, strict=True)
        ]
        # The model that made these predictions, even if a reload happened meanwhile.
        version_made = predictions[0].model_version if predictions else ""
        taxonomy_version, thresholds = model.recording_context(version_made)
        try:
            recorded = await run_in_threadpool(store.record, inputs, taxonomy_version, thresholds)
        except SQLAlchemyError as exc:
            log.error("recording failed", extra={"error": type(exc).__name__})
            raise HTTPException(
                503,
                detail={
                    "field": "record",
                    "message": "the metrics store is unavailable; nothing was recorded",
                },
                headers={"Retry-After": "5"},
            ) from None
        telemetry.recorded.inc(recorded)
    rows = [ResultRow(**p.as_row(item.id)) for item, p in zip(body.items, predictions, strict=True)]
    # The version that produced these answers, even if a reload happened meanwhile.
    version = predictions[0].model_version if predictions else model.predictor.model_version
    return ClassifyResponse(
        model_version=version,
        results=rows,
        recorded=recorded,
    )
