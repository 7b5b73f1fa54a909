"""POST /v1/classify and GET /healthz on the tiny bundle."""

import pytest
from fastapi.testclient import TestClient

from service.api.main import create_app
from service.core.config import Settings


@pytest.fixture(scope="module")
def client(tiny_bundle, tmp_path_factory):
    settings = Settings(
        model=str(tiny_bundle),
        max_items_per_request=5,
        max_text_chars=200,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('db') / 'api.db'}",
    )
    with TestClient(create_app(settings), base_url="http://localhost") as c:
        yield c


def test_classify_returns_rows_in_order(client):
    body = {
        "items": [
            {"id": "a", "text": "The bot never said it was a bot."},
            {"id": 7, "text": "退款太慢了", "metadata": {"channel": "app", "lang": "zh"}},
        ]
    }
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200
    data = r.json()
    assert data["model_version"] == "tiny-test"
    assert [row["id"] for row in data["results"]] == ["a", 7]
    row = data["results"][1]
    assert row["lang"] == "zh" and row["model_version"] == "tiny-test"
    assert set(row["scores"]) >= {"privacy_data", "personalization"} and row["sentiment"] in (
        "negative",
        "neutral",
        "positive",
    )


def test_same_text_same_answer_as_predictor(client, tiny_bundle):
    from service.predictor import Predictor

    text = "Prices went up again and support hung up on me."
    api = client.post("/v1/classify", json={"items": [{"id": "x", "text": text}]}).json()[
        "results"
    ][0]
    direct = Predictor.from_path(tiny_bundle).predict([text])[0]
    assert api["scores"] == direct.scores and api["themes"] == direct.themes


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [{"id": "a", "text": "   "}]}, "items.0.text"),
        ({"items": [{"id": "a"}]}, "items.0.text"),
        ({"items": []}, "items"),
        ({"items": [{"id": "a", "text": 5}]}, "items.0.text"),
        ({"items": [{"id": "a", "text": "x", "colour": "red"}]}, "items.0.colour"),
        ({}, "items"),
    ],
)
def test_bad_bodies_get_422_naming_the_field(client, body, field):
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["detail"]]


def test_invalid_json_is_422_not_500(client):
    r = client.post(
        "/v1/classify", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body"
    assert "invalid JSON" in r.json()["detail"][0]["message"]


def test_bad_created_at_names_the_field(client):
    body = {"items": [{"id": "a", "text": "ok", "metadata": {"created_at": "last tuesday"}}]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "items.0.metadata.created_at"


def test_truncation_setting_accepts_long_texts(make_client):
    client = make_client(max_text_chars=50, truncate_long_texts=True)
    r = client.post("/v1/classify", json={"items": [{"id": "long", "text": "slow app. " * 40}]})
    assert r.status_code == 200 and r.json()["results"][0]["id"] == "long"


def test_body_size_limit_gives_413_naming_the_body(make_client):
    client = make_client(max_body_bytes=2048)
    r = client.post("/v1/classify", json={"items": [{"id": "a", "text": "x" * 5000}]})
    assert r.status_code == 413 and r.json()["detail"]["field"] == "body"
    small = client.post("/v1/classify", json={"items": [{"id": "a", "text": "fine"}]})
    assert small.status_code == 200


def test_limits_give_413_naming_the_item(client):
    too_many = {"items": [{"id": i, "text": "hi"} for i in range(6)]}
    r = client.post("/v1/classify", json=too_many)
    assert r.status_code == 413 and r.json()["detail"]["field"] == "items"
    too_long = {"items": [{"id": "ok", "text": "fine"}, {"id": "big", "text": "x" * 201}]}
    r = client.post("/v1/classify", json=too_long)
    assert r.status_code == 413
    assert r.json()["detail"]["field"] == "items.1.text" and r.json()["detail"]["id"] == "big"


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "model_version": "tiny-test"}


def test_openapi_documents_classify(client):
    schema = client.get("/openapi.json").json()
    assert "/v1/classify" in schema["paths"]


def test_api_passes_use_the_api_batch_size(make_client):
    """The API's forward passes are at most api_batch_size rows (short texts share rows),
    not the scoring batch size, and a request bigger than one pass is still answered whole,
    each text scored once."""
    client = make_client(api_batch_size=3, batch_size=64)
    predictor = client.app.state.model.predictor
    assert predictor.batch_size == 3
    rows: list[int] = []
    texts: list[int] = []

    def record(_module, _args, kwargs):
        rows.append(kwargs["input_ids"].shape[0])
        segments = kwargs.get("segment_ids")
        texts.append(rows[-1] if segments is None else int(segments.max()) + 1)

    predictor.bundle.model.register_forward_pre_hook(record, with_kwargs=True)
    items = [{"id": str(i), "text": f"Too expensive, order {i} was late."} for i in range(20)]
    r = client.post("/v1/classify", json={"items": items})
    assert r.status_code == 200
    assert [x["id"] for x in r.json()["results"]] == [i["id"] for i in items]
    assert len(rows) >= 2 and max(rows) <= 3 and sum(texts) == 20


def test_classify_makes_no_thread_pool_hops(client, monkeypatch):
    """Without ``record`` the request is answered on the event loop and the model thread
    alone: FastAPI runs a plain ``def`` dependency in its thread pool, and those hops (five
    per request) cost the API throughput on a 2-core machine."""
    import anyio.to_thread

    hops = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        hops.append(getattr(func, "__name__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    r = client.post("/v1/classify", json={"items": [{"id": "a", "text": "Too expensive."}]})
    assert r.status_code == 200
    assert hops == []


def test_classify_solves_no_dependencies_and_still_declares_its_security(client, monkeypatch):
    """POST /v1/classify is the hot path: FastAPI solves no dependency for it (KeyFirstRoute
    checks the key itself, the services come from app state), yet its OpenAPI operation still
    names both key schemes, as a scope dependency would have."""
    import fastapi.routing

    solved = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args, **kwargs):
        dependant = kwargs.get("dependant") or args[0]
        solved.extend(dep.call for dep in dependant.dependencies)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    r = client.post("/v1/classify", json={"items": [{"id": "a", "text": "Too expensive."}]})
    assert r.status_code == 200
    assert solved == []
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/classify"]["post"]
    assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}


def test_a_reload_during_a_batch_records_with_the_model_that_predicted(
    make_client, tiny_bundle, tmp_path
):
    """Recording reads the taxonomy version and thresholds of the model that made the
    predictions, not of one swapped in by a reload between the batch and its recording."""
    import json
    import shutil

    from sqlalchemy import select

    from service.predictor import Predictor
    from service.store.records import review_margin
    from service.store.tables import feedback

    client = make_client()
    holder = client.app.state.model
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    meta = json.loads((other / "bundle.json").read_text())
    meta.update(version="tiny-other", thresholds=dict.fromkeys(meta["thresholds"], 0.999))
    (other / "bundle.json").write_text(json.dumps(meta))
    newer = Predictor.from_path(other)
    old = holder.predictor
    predict = old.predict

    def predict_then_reload(texts, langs=None):
        out = predict(texts, langs)
        holder.predictor = newer  # what POST /v1/admin/reload does
        return out

    old.predict = predict_then_reload
    body = {"record": True, "items": [{"id": "r1", "text": "Prices went up again."}]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200 and r.json()["model_version"] == old.model_version
    with client.app.state.store.engine.connect() as connection:
        row = connection.execute(select(feedback).where(feedback.c.id == "r1")).one()
    scores = r.json()["results"][0]["scores"]
    assert row.review_margin == pytest.approx(review_margin(scores, old.bundle.thresholds))
    assert row.review_margin != pytest.approx(review_margin(scores, newer.bundle.thresholds))
