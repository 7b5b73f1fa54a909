"""Request ids: unique within a process, with a prefix of their own in each process; a
client's own id is kept only if it looks like one."""

from __future__ import annotations

import logging
import re

import pytest

from service.api.observability import _RequestIds


def test_request_ids_are_unique_hex_of_uuid_length():
    ids = _RequestIds()
    seen = [ids.next() for _ in range(10_000)]
    assert len(set(seen)) == len(seen)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in seen)


def test_each_process_gets_its_own_prefix():
    # reset() is what a forked worker runs (os.register_at_fork); a spawned one builds anew.
    ids = _RequestIds()
    first = ids.next()
    ids.reset()
    second = ids.next()
    assert first[:20] != second[:20]
    assert _RequestIds().next()[:20] not in (first[:20], second[:20])


def _echoing_app():
    """The request-log middleware around an app that answers 200 to any path."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from service.api.observability import RequestLogMiddleware, Telemetry

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict:
        return {}

    app.add_middleware(RequestLogMiddleware, telemetry=Telemetry())
    return TestClient(app, base_url="http://localhost")


@pytest.mark.parametrize(
    "sent",
    [
        "3f2b8c1e-4a5d-4e6f-9a7b-1c2d3e4f5a6b",  # a UUID
        "98817ec04dab01ae98a6000000000000",  # one of ours, passed on by a proxy
        "svc:checkout.req_42-retry",
        "x" * 64,
    ],
)
def test_a_request_id_that_looks_like_one_is_kept(sent, caplog):
    client = _echoing_app()
    with caplog.at_level(logging.INFO, logger="service.api.access"):
        r = client.get("/ping", headers={"X-Request-ID": sent})
    assert r.headers["x-request-id"] == sent
    assert [rec.request_id for rec in caplog.records if rec.name == "service.api.access"] == [sent]


@pytest.mark.parametrize(
    "sent",
    [
        "jane.doe@example.com",  # personal data
        "x" * 65,
        "two words",
        "id\twith\ttabs",
        "näme",  # latin-1 on the wire
        "' OR 1=1 --",
    ],
)
def test_any_other_request_id_is_replaced_by_one_of_ours(sent, caplog):
    client = _echoing_app()
    with caplog.at_level(logging.INFO, logger="service.api.access"):
        r = client.get("/ping", headers={"X-Request-ID": sent.encode("latin-1")})
    assert r.status_code == 200
    ours = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", ours)
    logged = [rec for rec in caplog.records if rec.name == "service.api.access"]
    assert [rec.request_id for rec in logged] == [ours]
    assert not any(sent in repr(vars(rec)) for rec in caplog.records)


def test_an_empty_request_id_gets_one_of_ours():
    r = _echoing_app().get("/ping", headers={"X-Request-ID": ""})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
