"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import AUTH_ERRORS, MetricsScope, ModelDep, StoreDep, TelemetryDep
from service.api.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(model: ModelDep) -> Health:
    """The process is alive and has a model."""
    return Health(status="ok", model_version=model.predictor.model_version)


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(model: ModelDep, store: StoreDep, response: Response) -> Readiness:
    """Ready when the model is loaded and the store answers with a schema this code can use
    (migrated to its head, or newer during a rolling upgrade); 503 otherwise, ``store`` saying
    why."""
    try:
        # A store that answers but was never migrated (auto-migrate off, `db upgrade` not run
        # yet), or is behind, would fail every metrics request: not ready.
        store_state = await run_in_threadpool(store.schema_problem) or "ok"
    except Exception as exc:  # any failure to reach the store means not ready
        store_state = f"unreachable: {type(exc).__name__}"
    ready = store_state == "ok" and model.batcher.running
    if not ready:
        response.status_code = 503
    return Readiness(
        status="ready" if ready else "not_ready",
        model_version=model.predictor.model_version,
        store=store_state,
    )


# Probes that send HEAD (some load balancers and uptime checkers) get the same status code.
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)


@router.get(
    "/metrics",
    dependencies=[MetricsScope],
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **AUTH_ERRORS,
    },
)
def prometheus_metrics(telemetry: TelemetryDep, model: ModelDep) -> Response:
    """Prometheus text format: requests, latencies, batch sizes, items per theme."""
    telemetry.queue_items.set(model.batcher.queued_items)
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
