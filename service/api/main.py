"""The FastAPI application."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.deps import ModelHolder
from service.api.routes import classify, health
from service.bundle import resolve_model_path
from service.core.config import Settings, get_settings
from service.predictor import Predictor

log = logging.getLogger(__name__)


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each bad field named as a dotted path, e.g. ``items.0.text``."""
    errors = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """Build the app; loads the model (``settings.model`` or models/current) unless given one."""
    settings = settings or get_settings()
    if predictor is None:
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        predictor = Predictor.from_path(
            resolve_model_path(settings.model, settings.models_dir),
            device=settings.device,
            batch_size=settings.batch_size,
            max_length=settings.max_length,
            review_margin=settings.review_margin,
            evidence=settings.evidence,
        )
    app = FastAPI(
        title="cxthemes",
        version="0.1.0",
        description="Themes and sentiment of customer feedback, in ~100 languages.",
    )
    app.state.settings = settings
    app.state.model = ModelHolder(predictor)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(health.router)
    app.include_router(classify.router)
    log.info("serving model %s", predictor.model_version)
    return app
