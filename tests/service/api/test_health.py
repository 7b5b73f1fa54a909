"""Readiness, the Prometheus endpoint, the taxonomy, the model card, and a store outage."""

from __future__ import annotations

from service.store import Store


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
    with TestClient(create_app(Settings(model=str(tiny_bundle)), store=dead)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        body = {"items": [{"id": "a", "text": "The refund took weeks."}]}
        assert client.post("/v1/classify", json=body).status_code == 200
        r = client.post("/v1/classify", json={**body, "record": True})
        assert r.status_code == 503 and r.json()["detail"]["field"] == "record"
        assert r.headers["retry-after"]
        assert client.get("/v1/metrics/summary").status_code == 503
