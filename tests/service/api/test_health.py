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
