"""Shared dependencies of the routes: settings, the model, the store, telemetry and API keys."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, Security, params
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.observability import Telemetry
from service.api.schemas import ErrorResponse, ValidationErrorResponse
from service.batching import MicroBatcher
from service.core.config import Scope, Settings
from service.core.security import find_key, has_scope
from service.predictor import Predictor
from service.store import Store


class ModelHolder:
    """The served predictor and the micro-batcher that feeds it."""

    def __init__(self, predictor: Predictor, batcher: MicroBatcher) -> None:
        # What recording needs of each model served so far (a few floats per version, not the
        # model): a reload between a batch and its recording must not store one model's
        # predictions with another's taxonomy version and thresholds.
        self._recording: dict[str, tuple[str, dict[str, float]]] = {}
        self.predictor = predictor
        self.batcher = batcher

    @property
    def predictor(self) -> Predictor:
        return self._predictor

    @predictor.setter
    def predictor(self, predictor: Predictor) -> None:
        self._recording[predictor.model_version] = _recording_of(predictor)
        self._predictor = predictor  # one reference swap: the next batch reads the new one

    def recording_context(self, model_version: str) -> tuple[str, dict[str, float]]:
        """The taxonomy version and thresholds of the model that made ``model_version``'s
        predictions (the current model's if that version is unknown)."""
        return self._recording.get(model_version) or _recording_of(self._predictor)

    def predict(self, texts: list[str], langs: list[str | None]):
        # Read at call time so a reloaded predictor is picked up by the next batch.
        return self.predictor.predict(texts, langs=langs)


def _recording_of(predictor: Predictor) -> tuple[str, dict[str, float]]:
    bundle = predictor.bundle
    return bundle.meta.get("taxonomy_version", ""), dict(bundle.thresholds)


# Every dependency is `async def`: they only read app state, and FastAPI runs a plain `def`
# dependency in its thread pool, five thread hops per request (see test_classify).
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_model(request: Request) -> ModelHolder:
    return request.app.state.model


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_telemetry(request: Request) -> Telemetry:
    return request.app.state.telemetry


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ModelDep = Annotated[ModelHolder, Depends(get_model)]
StoreDep = Annotated[Store, Depends(get_store)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]


# Both header styles are accepted; declaring them makes the OpenAPI schema show the scheme.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
# The operation security FastAPI declares for a require_scope dependency: either scheme.
KEY_SECURITY = [{_bearer.scheme_name: []}, {_api_key_header.scheme_name: []}]
# Where a KeyFirstRoute's operation names the scopes its key needs (an OpenAPI extension).
SCOPES_EXTENSION = "x-api-key-scopes"


def require_scope(scope: Scope | None) -> Callable:
    """A dependency that lets a request through when its key holds ``scope`` (``None``: any
    valid key). With no keys configured, everyone passes: the server then listens on loopback
    only (``cxthemes serve`` enforces that)."""

    async def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_api_key_header)],
    ) -> None:
        authorize(request, bearer.credentials if bearer else header_key, scope)

    check.required_scope = scope  # type: ignore[attr-defined]  # read by KeyFirstRoute
    return check


def authorize(request: Request, presented: str | None, scope: Scope | None) -> None:
    """401 unless ``presented`` is a configured key, 403 unless it holds ``scope``."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys:
        return
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


def _presented_key(request: Request) -> str | None:
    """The key as the two security schemes read it: a Bearer token, else X-API-Key."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials
    return request.headers.get("x-api-key")


class KeyFirstRoute(APIRoute):
    """A route that checks the API key itself, before FastAPI reads the request body. FastAPI
    parses the body before it runs any dependency, so without this a client with no key had
    its JSON parsed (up to the body limit) and got a 422 for bad JSON instead of its 401.

    Its scope dependencies (``dependencies=[ClassifyScope]``) are therefore not solved per
    request: they become the operation's security requirement in the OpenAPI schema, as
    FastAPI would have written it, and the check runs once, here. Solving them (the check and
    its two security schemes) and the services dependency took about 15% of the event loop's
    time per ``/v1/classify`` request (bench/RESULTS.md). The scopes are also
    kept in the operation's ``x-api-key-scopes``: a FastAPI that copies a route when its
    router is included builds the copy from the route's dependencies (now without them) and
    its ``openapi_extra``, and the copy must still check the key."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[params.Depends] | None = None,
        openapi_extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        extra = dict(openapi_extra or {})
        scopes: list[Scope | None] = list(extra.get(SCOPES_EXTENSION, []))
        solved: list[params.Depends] = []
        for dep in dependencies or []:
            if hasattr(dep.dependency, "required_scope"):
                scopes.append(dep.dependency.required_scope)
            else:
                solved.append(dep)
        self.required_scopes = list(dict.fromkeys(scopes))
        if self.required_scopes:
            extra = {"security": KEY_SECURITY, **extra, SCOPES_EXTENSION: self.required_scopes}
        super().__init__(path, endpoint, dependencies=solved, openapi_extra=extra or None, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = self.required_scopes

        async def key_first(request: Request) -> Response:
            for scope in scopes:
                authorize(request, _presented_key(request), scope)
            return await handler(request)

        return key_first


# What the routes document besides their answer, so the OpenAPI schema lists every status code
# and error body a client can get (the fuzz tests hold the app to it).
AUTH_ERRORS: dict[int | str, dict] = {
    401: {"model": ErrorResponse, "description": "No valid API key (keys are configured)."},
    403: {"model": ErrorResponse, "description": "The key lacks the scope this endpoint needs."},
}
INVALID_INPUT: dict[int | str, dict] = {
    422: {"model": ValidationErrorResponse, "description": "Invalid fields; each one is named."},
}
STORE_UNAVAILABLE: dict[int | str, dict] = {
    503: {"model": ErrorResponse, "description": "The metrics store is unavailable; retry."},
}

ClassifyScope = Depends(require_scope("classify"))
MetricsScope = Depends(require_scope("metrics"))
AdminScope = Depends(require_scope("admin"))
AnyKey = Depends(require_scope(None))
