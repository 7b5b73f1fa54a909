"""POST /v1/admin/reload: serve the registry's current model without a restart."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from service.api.deps import AUTH_ERRORS, AdminScope
from service.api.schemas import ErrorResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"])
log = logging.getLogger(__name__)


class ReloadResult(BaseModel):
    model_version: str
    previous: str
    changed: bool


async def reload_model(app) -> ReloadResult:
    """Load the current model beside the served one and swap them. Requests already in a
    batch finish on the old model; later batches use the new one. A model that fails to load
    or to answer is refused and the old one stays."""
    from service.api.main import load_predictor
    from service.bundle import bundle_taxonomy

    lock: asyncio.Lock = app.state.reload_lock
    async with lock:
        holder = app.state.model
        previous = holder.predictor.model_version
        settings = app.state.settings

        def load():
            predictor = load_predictor(settings)  # smoke-tested: one that cannot answer fails
            return predictor, bundle_taxonomy(predictor.bundle, settings.taxonomy_path)

        try:
            predictor, taxonomy = await run_in_threadpool(load)
        except Exception as exc:  # any failure keeps the old model
            log.error("reload refused", extra={"error": f"{type(exc).__name__}: {exc}"})
            raise HTTPException(
                409,
                detail={
                    "message": f"the model failed to load ({type(exc).__name__}: {exc}); "
                    f"still serving {previous}"
                },
            ) from None
        holder.predictor = predictor  # one reference swap: the next batch reads the new one
        app.state.taxonomy = taxonomy
        telemetry = app.state.telemetry
        telemetry.model_info.clear()
        telemetry.model_info.labels(predictor.model_version).set(1)
        log.info(
            "model reloaded", extra={"model_version": predictor.model_version, "previous": previous}
        )
        return ReloadResult(
            model_version=predictor.model_version,
            previous=previous,
            changed=predictor.model_version != previous,
        )


@router.post(
    "/reload",
    response_model=ReloadResult,
    dependencies=[AdminScope],
    responses={
        **AUTH_ERRORS,
        409: {
            "model": ErrorResponse,
            "description": "The new model failed to load; the old one is served.",
        },
    },
)
async def reload(request: Request) -> ReloadResult:
    """Load the registry's current model (or ``CXTHEMES_MODEL``) and serve it from now on."""
    return await reload_model(request.app)
