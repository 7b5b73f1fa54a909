"""Shared dependencies of the routes: settings, the model, the store, telemetry and API keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.observability import Telemetry
from service.batching import MicroBatcher
from service.core.config import Scope, Settings
from service.core.security import find_key, has_scope
from service.predictor import Predictor
from service.store import Store


class ModelHolder:
    """The served predictor and the micro-batcher that feeds it."""

    def __init__(self, predictor: Predictor, batcher: MicroBatcher) -> None:
        self.predictor = predictor
        self.batcher = batcher

    def predict(self, texts: list[str], langs: list[str | None]):
        # Read at call time so a reloaded predictor is picked up by the next batch.
        return self.predictor.predict(texts, langs=langs)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_model(request: Request) -> ModelHolder:
    return request.app.state.model


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_telemetry(request: Request) -> Telemetry:
    return request.app.state.telemetry


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ModelDep = Annotated[ModelHolder, Depends(get_model)]
StoreDep = Annotated[Store, Depends(get_store)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]

# Both header styles are accepted; declaring them makes the OpenAPI schema show the scheme.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def require_scope(scope: Scope | None) -> Callable:
    """A dependency that lets a request through when its key holds ``scope`` (``None``: any
    valid key). With no keys configured, everyone passes: the server then listens on loopback
    only (``cxthemes serve`` enforces that)."""

    def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_api_key_header)],
    ) -> None:
        settings: Settings = request.app.state.settings
        if not settings.api_keys:
            return
        presented = bearer.credentials if bearer else header_key
        key = find_key(presented, settings.api_keys) if presented else None
        if key is None:
            raise HTTPException(
                401,
                detail={"field": "authorization", "message": "a valid API key is required"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.key_name = key.name
        if scope is not None and not has_scope(key, scope):
            raise HTTPException(
                403,
                detail={
                    "field": "authorization",
                    "message": f"this key lacks the '{scope}' scope",
                },
            )

    return check


ClassifyScope = Depends(require_scope("classify"))
MetricsScope = Depends(require_scope("metrics"))
AdminScope = Depends(require_scope("admin"))
AnyKey = Depends(require_scope(None))
