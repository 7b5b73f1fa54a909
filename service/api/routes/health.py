"""GET /healthz: the process is alive and has a model."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import ModelDep
from service.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(model: ModelDep) -> Health:
    return Health(status="ok", model_version=model.predictor.model_version)
