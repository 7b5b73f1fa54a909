"""Readiness (store reachable and migrated), the Prometheus endpoint, the taxonomy, the model
card, a store outage, values the store refuses, and what error logs name."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError

from service.store import Store, StoreValueError


def test_readyz_ok_and_prometheus_counts(make_client):
    client = make_client()
    assert client.get("/readyz").json() == {
        "status": "ready",
        "model_version": "tiny-test",
        "store": "ok",
    }
    client.post("/v1/classify", json={"items": [{"id": i, "text": "slow"} for i in range(3)]})
    text = client.get("/metrics").text
    assert "cxthemes_items_classified_total 3.0" in text
    assert (
        'cxthemes_http_requests_total{method="POST",route="/v1/classify",status="200"} 1.0' in text
    )
    assert "cxthemes_model_batch_size_bucket" in text
    assert 'cxthemes_model_info{version="tiny-test"} 1.0' in text
    assert "cxthemes_request_items_sum 3.0" in text


def test_themes_and_model_card(make_client):
    client = make_client()
    themes = client.get("/v1/themes").json()
    assert len(themes["themes"]) == 9 and themes["sentiments"] == [
        "negative",
        "neutral",
        "positive",
    ]
    assert all(set(t["name"]) >= {"en", "zh"} for t in themes["themes"])
    card = client.get("/v1/model").json()
    assert card["version"] == "tiny-test"
    assert card["backend"] == "torch"  # the tiny bundle has no ONNX export
    assert set(card["thresholds"]) == {t["id"] for t in themes["themes"]}
    assert "files" not in card["training_data"]


def test_store_outage_classify_answers_recording_fails_visibly(make_client, tiny_bundle):
    from fastapi.testclient import TestClient

    from service.api.main import create_app
    from service.core.config import Settings

    # Port 1 on loopback: nothing listens, so every connection is refused at once.
    dead = Store.open("postgresql+psycopg://x:y@127.0.0.1:1/none", auto_migrate=False)
    app = create_app(Settings(model=str(tiny_bundle)), store=dead)
    with TestClient(app, base_url="http://localhost") as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        body = {"items": [{"id": "a", "text": "The refund took weeks."}]}
        assert client.post("/v1/classify", json=body).status_code == 200
        r = client.post("/v1/classify", json={**body, "record": True})
        assert r.status_code == 503 and r.json()["detail"]["field"] == "record"
        assert r.headers["retry-after"]
        assert client.get("/v1/metrics/summary").status_code == 503


def test_probes_answer_head(make_client):
    client = make_client()
    for path in ("/healthz", "/readyz"):
        r = client.head(path)
        assert r.status_code == 200 and r.content == b"", path


def test_framework_errors_have_the_documented_shape(make_client):
    client = make_client()
    r = client.get("/v1/metric/themes")
    assert r.status_code == 404 and r.json() == {"detail": {"message": "Not Found"}}
    r = client.put("/v1/themes")
    assert r.status_code == 405 and r.json() == {"detail": {"message": "Method Not Allowed"}}
    assert r.headers["allow"] == "GET"


def test_prometheus_method_label_is_bounded(make_client):
    client = make_client()
    for k in range(5):
        client.request(f"X{k:05d}", "/no-such-path")
    text = client.get("/metrics").text
    assert 'method="X' not in text
    assert 'cxthemes_http_requests_total{method="other",route="unmatched",status="404"} 5.0' in text


def test_readyz_is_not_ready_until_the_schema_is_migrated(make_client, tmp_path):
    from service.store.engine import create_store_engine, head_revision, migrate

    url = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    client = make_client(database_url=url, auto_migrate=False)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert r.json()["store"] == "schema missing: no migrations applied"
    engine = create_store_engine(url)
    migrate(engine, "0001")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert (
        r.json()["store"] == f"schema behind: at revision 0001, this code needs {head_revision()}"
    )
    migrate(engine)
    assert client.get("/readyz").json() == {
        "status": "ready",
        "model_version": "tiny-test",
        "store": "ok",
    }
    # A revision only newer code knows (a rolling upgrade's other replicas): still ready.
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999_from_newer_code'"))
    assert client.get("/readyz").status_code == 200
    engine.dispose()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_value_the_store_refuses_is_a_500_not_a_retryable_503(
    make_client, store_url, monkeypatch
):
    client = make_client(database_url=store_url)
    # A taxonomy version longer than its column: PostgreSQL refuses it on every write.
    holder = client.app.state.model
    monkeypatch.setattr(holder, "recording_context", lambda _version: ("v" * 33, {}))
    body = {"record": True, "items": [{"id": "a", "text": "The refund took weeks."}]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 500 and "retry-after" not in r.headers
    assert "refused a value" in r.json()["detail"]["message"]


def test_a_data_error_on_a_read_is_a_500_not_a_retryable_503(make_client, monkeypatch):
    client = make_client()

    def refuse(*_args, **_kwargs):
        raise DataError("SELECT ...", {}, Exception("value out of range"))

    monkeypatch.setattr(client.app.state.store, "review_queue", refuse)
    r = client.get("/v1/review")
    assert r.status_code == 500 and "retry-after" not in r.headers
    assert "refused a value" in r.json()["detail"]["message"]


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (OperationalError("DELETE ...", {}, Exception("database is locked")), 503),
        (StoreValueError("the metrics store refused a value: too long"), 500),
        (RuntimeError("boom"), 500),
    ],
)
def test_error_logs_name_the_route_template_not_the_path(
    make_client, monkeypatch, caplog, failure, status
):
    """The path holds the item id, which may be personal data; the template does not."""
    from fastapi.testclient import TestClient

    client = TestClient(
        make_client().app, base_url="http://localhost", raise_server_exceptions=False
    )

    def fail(_item_id):
        raise failure

    monkeypatch.setattr(client.app.state.store, "erase", fail)
    email = "jane.doe.erased@example.com"
    with caplog.at_level(logging.INFO):
        r = client.delete(f"/v1/feedback/{email}")
    assert r.status_code == status
    ours = [rec for rec in caplog.records if rec.name.startswith("service")]
    errors = [rec for rec in ours if rec.levelno >= logging.ERROR]
    assert [rec.route for rec in errors] == ["/v1/feedback/{item_id:any_id}"]
    assert not any(email in repr(vars(rec)) for rec in ours)
