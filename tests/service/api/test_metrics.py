"""Recording through /v1/classify and reading aggregates back, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest

from service.taxonomy import load_taxonomy

THEMES = load_taxonomy().theme_ids


def _items(week_start: str, n: int, channel: str, prefix: str) -> list[dict]:
    return [
        {
            "id": f"{prefix}-{k}",
            "text": f"Order {k}: the app is slow and the price went up again.",
            "metadata": {"channel": channel, "created_at": f"{week_start}T1{k % 10}:00:00Z"},
        }
        for k in range(n)
    ]


@pytest.fixture
def client(make_client, store_url):
    return make_client(database_url=store_url)


def test_record_then_metrics_count_each_id_once(client):
    body = {"items": _items("2026-11-03", 4, "app", "w1"), "record": True}
    first = client.post("/v1/classify", json=body)
    assert first.status_code == 200 and first.json()["recorded"] == 4
    again = client.post("/v1/classify", json=body)  # the same ids: replaced, not added
    assert again.json()["recorded"] == 4
    client.post(
        "/v1/classify", json={"items": _items("2026-11-10", 3, "email", "w2"), "record": True}
    )
    r = client.get(
        "/v1/metrics/themes",
        params={"start": "2026-11-02", "end": "2026-11-16", "interval": "week"},
    )
    assert r.status_code == 200
    periods = r.json()["periods"]
    assert [(p["period"], p["feedback_count"]) for p in periods] == [
        ("2026-11-02", 4),
        ("2026-11-09", 3),
    ]
    assigned = client.post("/v1/classify", json={"items": _items("2026-11-03", 1, "a", "z")})
    theme_ids = [t["theme"] for t in periods[0]["themes"]]
    assert theme_ids[: len(THEMES)] == THEMES
    for p in periods:
        for t in p["themes"]:
            assert t["count"] == sum(t["sentiment"].values()) <= p["feedback_count"]
            assert t["share"] == pytest.approx(t["count"] / p["feedback_count"], abs=1e-6)
    # Every recorded text is the same template, so a theme the model assigns shows in both weeks.
    for theme in assigned.json()["results"][0]["themes"]:
        w1 = next(t for t in periods[0]["themes"] if t["theme"] == theme)
        w2 = next(t for t in periods[1]["themes"] if t["theme"] == theme)
        assert w1["count"] > 0 and w2["count"] > 0
        assert w2["share_change"] == pytest.approx(w2["share"] - w1["share"], abs=1e-6)


def test_group_by_and_csv(client):
    client.post(
        "/v1/classify",
        json={
            "items": _items("2026-11-03", 2, "app", "a") + _items("2026-11-04", 3, "email", "e"),
            "record": True,
        },
    )
    params = {
        "start": "2026-11-01",
        "end": "2026-12-01",
        "interval": "month",
        "group_by": "channel",
    }
    data = client.get("/v1/metrics/themes", params=params).json()
    assert {(p["group"], p["feedback_count"]) for p in data["periods"]} == {
        ("app", 2),
        ("email", 3),
    }
    r = client.get("/v1/metrics/themes", params=params, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2 * len(THEMES)
    assert {row["group"] for row in rows} == {"app", "email"}
    assert {row["period"] for row in rows} == {"2026-11-01"}


def test_summary_json_and_csv(client):
    client.post(
        "/v1/classify", json={"items": _items("2026-11-03", 2, "app", "old"), "record": True}
    )
    client.post(
        "/v1/classify", json={"items": _items("2026-11-10", 5, "app", "new"), "record": True}
    )
    r = client.get("/v1/metrics/summary", params={"start": "2026-11-09", "end": "2026-11-16"})
    assert r.status_code == 200
    data = r.json()
    assert data["feedback_count"] == 5 and data["previous_feedback_count"] == 2
    assert 0.0 <= data["review_share"] <= 1.0
    counts = [t["count"] for t in data["top_themes"]]
    assert counts == sorted(counts, reverse=True)
    csv_text = client.get(
        "/v1/metrics/summary",
        params={"start": "2026-11-09", "end": "2026-11-16"},
        headers={"Accept": "text/csv"},
    ).text
    assert csv_text.splitlines()[0].startswith("list,rank,theme,count")
    assert "overall,,,5" in csv_text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "year"}, "interval"),
        ({"group_by": "colour"}, "group_by"),
        ({"theme": "nope"}, "theme"),
        ({"start": "2026-12-01", "end": "2026-11-01"}, "start"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_bad_metrics_queries_name_the_field(make_client, params, field):
    r = make_client().get("/v1/metrics/themes", params=params)
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["detail"]]


def test_erasure(client):
    client.post("/v1/classify", json={"items": _items("2026-11-03", 2, "app", "x"), "record": True})
    assert client.delete("/v1/feedback/x-0").status_code == 204
    assert client.delete("/v1/feedback/x-0").status_code == 404
    data = client.get(
        "/v1/metrics/summary", params={"start": "2026-11-01", "end": "2026-11-08"}
    ).json()
    assert data["feedback_count"] == 1


def test_erasure_of_ids_with_a_slash_or_a_newline(client):
    for prefix in ("order/1", "a/b\nc"):
        body = {"items": _items("2026-11-03", 1, "app", prefix), "record": True}
        assert client.post("/v1/classify", json=body).json()["recorded"] == 1
    assert client.delete("/v1/feedback/order%2F1-0").status_code == 204
    assert client.delete("/v1/feedback/a%2Fb%0Ac-0").status_code == 204
    gone = client.delete("/v1/feedback/order%2F1-0")
    assert gone.status_code == 404
    assert gone.json() == {"detail": {"field": "item_id", "message": "no such recorded item"}}
    data = client.get(
        "/v1/metrics/summary", params={"start": "2026-11-01", "end": "2026-11-08"}
    ).json()
    assert data["feedback_count"] == 0
