"""The FastAPI application: routers, middlewares, the model, the micro-batcher and the store."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from service.api.deps import ModelHolder
from service.api.observability import BodySizeLimitMiddleware, RequestLogMiddleware, Telemetry
from service.api.routes import (
    admin,
    classify,
    dashboard,
    feedback,
    health,
    metrics,
    model,
    review,
    themes,
)
from service.batching import MicroBatcher
from service.bundle import bundle_taxonomy, resolve_model_path
from service.core.config import Settings, get_settings
from service.fresh_thread import run_on_fresh_thread
from service.predictor import Predictor, apply_torch_threads, predictor_options
from service.store import Store, StoreValueError

log = logging.getLogger(__name__)

# Without API keys the API serves loopback only (``cxthemes serve`` enforces it): requests must
# name it too, so a web page whose name re-resolves to 127.0.0.1 (DNS rebinding) cannot use it.
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each bad field named as a dotted path, e.g. ``items.0.text``."""
    errors = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            errors.append({"field": "body", "message": f"invalid JSON: {e.get('msg')}"})
            continue
        loc = [str(p) for p in e["loc"] if p not in ("body", "query", "path")]
        errors.append({"field": ".".join(loc) or "body", "message": e["msg"]})
    return JSONResponse(status_code=422, content={"detail": errors})


async def _http_error(request: Request, exc: StarletteHTTPException):
    """FastAPI's own answer, with a bare string detail (Starlette's 404 and 405) given the
    documented shape ``{"message": ...}``; except for a body it could not parse as JSON at all
    (bytes that are not UTF-8, nesting too deep for the parser): FastAPI says 400 with a bare
    string; we say 422 naming the body, as for any other invalid JSON."""
    if exc.status_code == 400 and exc.__cause__ is not None:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            reason = "the body is not UTF-8"
        elif isinstance(cause, RecursionError):
            reason = "nested too deeply"
        else:
            reason = "the body cannot be parsed"
        return JSONResponse(
            status_code=422,
            content={"detail": [{"field": "body", "message": f"invalid JSON: {reason}"}]},
        )
    if isinstance(exc.detail, str):
        exc = HTTPException(exc.status_code, {"message": exc.detail}, exc.headers)
    return await http_exception_handler(request, exc)


def _route(request: Request) -> str:
    """The matched route's template (``/v1/feedback/{item_id}``), as the access log has it: the
    path itself may hold personal data (an item id that is an email)."""
    return getattr(request.scope.get("route"), "path", None) or "unmatched"


def _store_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    # Visible, retryable, and the process stays up: the pool reconnects when the store is back.
    log.error("metrics store error", extra={"route": _route(request), "error": type(exc).__name__})
    return JSONResponse(
        status_code=503,
        content={"detail": {"message": "the metrics store is unavailable"}},
        headers={"Retry-After": "5"},
    )


def _store_refused(request: Request, exc: StoreValueError | DataError) -> JSONResponse:
    """500 without Retry-After: the store refused a value (too long for its column...), so the
    same request would fail again; a 503 would have clients retry it forever."""
    log.error(
        "metrics store refused a value",
        extra={"route": _route(request), "error": type(exc.__cause__ or exc).__name__},
    )
    return JSONResponse(
        status_code=500,
        content={
            "detail": {
                "message": "the metrics store refused a value (too long for its column, or out "
                "of range); retrying will not help"
            }
        },
    )


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"route": _route(request)})
    return JSONResponse(status_code=500, content={"detail": {"message": "internal error"}})


def load_predictor(settings: Settings) -> Predictor:
    """The predictor for ``settings.model`` (or models/current), loaded and smoke-tested (a
    model that cannot answer is not served; the call also warms it up) on a thread that ends
    with the load, so the micro-batch thread's model calls are the process's only OpenMP
    team (see :mod:`service.fresh_thread`)."""
    apply_torch_threads(settings)

    def load() -> Predictor:
        predictor = Predictor.from_path(
            resolve_model_path(settings.model, settings.models_dir),
            **predictor_options(settings, api=True),
        )
        predictor.smoke_test()
        return predictor

    return run_on_fresh_thread(load)


def create_app(
    settings: Settings | None = None,
    predictor: Predictor | None = None,
    store: Store | None = None,
) -> FastAPI:
    """Build the app: loads the model and opens (and migrates) the store unless given them."""
    settings = settings or get_settings()
    predictor = predictor or load_predictor(settings)
    store = store or Store.open(
        settings.database_url, store_text=settings.store_text, auto_migrate=settings.auto_migrate
    )
    telemetry = Telemetry()

    holder_ref: list[ModelHolder] = []
    batcher = MicroBatcher(
        lambda texts, langs: holder_ref[0].predict(texts, langs),
        max_items=settings.microbatch_max_items,
        max_wait_s=settings.microbatch_max_wait_ms / 1000,
        queue_max_items=settings.queue_max_items,
        on_batch=telemetry.observe_batch,
        queue_max_wait_s=settings.queue_max_wait_s,
        workers=settings.api_model_workers,
    )
    holder = ModelHolder(predictor, batcher)
    holder_ref.append(holder)
    batcher.start()

    @asynccontextmanager
    async def lifespan(app_: FastAPI):
        batcher.start()
        watcher = None
        if settings.watch_models_s > 0 and not settings.model:
            watcher = asyncio.create_task(_watch_registry(app_, settings.watch_models_s))
        yield
        if watcher is not None:
            watcher.cancel()
        batcher.stop()
        store.close()

    app = FastAPI(
        title="cxthemes",
        version="0.1.0",
        description=(
            "Themes and sentiment of customer feedback in ~100 languages, and aggregate theme "
            "metrics for dashboards. Send an API key as `Authorization: Bearer <key>` or "
            "`X-API-Key`; scopes: classify, metrics, admin."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.model = holder
    app.state.store = store
    app.state.telemetry = telemetry
    app.state.taxonomy = bundle_taxonomy(predictor.bundle, settings.taxonomy_path)
    app.state.reload_lock = asyncio.Lock()
    telemetry.model_info.labels(predictor.model_version).set(1)

    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _store_error)
    # The most specific handler wins: DataError is a SQLAlchemyError, but not an outage.
    app.add_exception_handler(DataError, _store_refused)
    app.add_exception_handler(StoreValueError, _store_refused)
    app.add_exception_handler(Exception, _unexpected_error)
    # Routes are matched in this order; the hot path, POST /v1/classify, comes first.
    for router in (classify, health, themes, model, metrics, feedback, review, admin, dashboard):
        app.include_router(router.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    # Added last = outermost: the size limit sees the body before anything parses it.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    if not settings.api_keys:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLogMiddleware, telemetry=telemetry)
    log.info("serving model", extra={"model_version": predictor.model_version})
    return app


async def _watch_registry(app: FastAPI, every_s: float) -> None:
    """Reload when the registry's current model changes (a promotion or a rollback), or when
    ``export-onnx`` changes what the served bundle records (a graph or a precision check that
    ``auto`` may now serve)."""
    from fastapi import HTTPException

    from service.api.routes.admin import reload_model
    from service.bundle import export_records_changed
    from service.registry import current_version

    settings = app.state.settings
    while True:
        await asyncio.sleep(every_s)
        try:
            wanted = current_version(settings.models_dir)
            # By folder, not by the version inside bundle.json: a copied bundle keeps the
            # version of the one it was copied from, and would be reloaded forever.
            bundle = app.state.model.predictor.bundle
            serving = Path(bundle.path).resolve()
            if wanted and (
                (Path(settings.models_dir) / wanted).resolve() != serving
                or export_records_changed(bundle)
            ):
                await reload_model(app)
        except HTTPException:
            pass  # refused: logged by reload_model, the old model stays
        except Exception:  # never let the watcher die
            log.exception("watching the model registry failed")
