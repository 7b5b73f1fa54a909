"""Prometheus metrics, request logging and the request-size limit (ASGI middlewares)."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.predictor import Prediction

log = logging.getLogger("service.api.access")


class _RequestIds:
    """Request ids unique within the process and, through a random prefix, across processes:
    32 hex digits like a UUID's, without a ``getrandom`` system call on every request."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prefix = secrets.token_hex(10)
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.reset)  # a forked worker gets its own prefix

# A client's X-Request-ID is logged and echoed only if it looks like an id (UUIDs, our hex ids,
# "svc:123", "trace-id.span"); anything else (free text, personal data, control characters) is
# replaced by one of ours. fullmatch: "$" would also accept a trailing newline.
_CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _request_id_for(headers: dict[bytes, bytes]) -> str:
    """The client's ``X-Request-ID`` if it is a plausible id, else a new one of ours."""
    sent = headers.get(b"x-request-id", b"")
    if _CLIENT_REQUEST_ID.fullmatch(sent):
        return sent.decode("ascii")
    return _request_ids.next()


# Prometheus label values must be bounded: any other method a client sends counts as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Telemetry:
    """The app's Prometheus metrics, in a registry of its own (one per app, so tests can build
    many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cxthemes_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "cxthemes_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "cxthemes_model_batch_size", "Texts per model call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "cxthemes_model_batch_duration_seconds",
            "Seconds per model call",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_items = Histogram(
            "cxthemes_request_items",
            "Items per classify request",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_items = Gauge("cxthemes_queue_items", "Texts waiting for the model", registry=r)
        self.items = Counter("cxthemes_items_classified", "Texts classified", registry=r)
        self.themes = Counter(
            "cxthemes_theme_assigned", "Texts assigned each theme", ["theme"], registry=r
        )
        self.sentiments = Counter(
            "cxthemes_sentiment", "Texts by sentiment", ["sentiment"], registry=r
        )
        self.review = Counter("cxthemes_needs_review", "Texts flagged for review", registry=r)
        self.recorded = Counter("cxthemes_items_recorded", "Items written to the store", registry=r)
        self.rejected = Counter(
            "cxthemes_requests_rejected", "Requests refused", ["reason"], registry=r
        )
        self.model_info = Gauge(
            "cxthemes_model_info", "The model being served", ["version"], registry=r
        )

    def observe_predictions(self, predictions: Iterable[Prediction]) -> None:
        for p in predictions:
            self.items.inc()
            self.sentiments.labels(p.sentiment).inc()
            for theme in p.themes:
                self.themes.labels(theme).inc()
            if p.needs_review:
                self.review.inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)


class RequestLogMiddleware:
    """Logs one JSON line per request (method, route template, status, duration, request id)
    and counts it for Prometheus. Bodies and query strings are never logged."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = _request_id_for(headers)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # The template (/v1/feedback/{item_id}), not the path: bounded label values.
            route_name = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            label = method if method in _METHODS else "other"
            self.telemetry.requests.labels(label, route_name, str(status)).inc()
            self.telemetry.latency.labels(label, route_name).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route_name,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "key": scope.get("state", {}).get("key_name"),
                },
            )


class BodySizeLimitMiddleware:
    """413 for bodies over ``max_bytes``, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing unchanged.
                    raise HTTPException(413, detail=_too_large(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)


def _too_large(max_bytes: int) -> dict:
    return {"field": "body", "message": f"the request body exceeds {max_bytes} bytes"}


async def _send_413(send: Send, max_bytes: int) -> None:
    import json

    body = json.dumps({"detail": _too_large(max_bytes)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
