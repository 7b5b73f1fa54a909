"""Recording through /v1/classify and reading aggregates back, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest

from service.taxonomy import load_taxonomy
from tests.service.store.test_store import item

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


# -- review fixes: window-only figures, whole periods, CSV safety, content negotiation ---------
def record(client, *items) -> None:
    client.app.state.store.record(list(items), "1")


def test_summary_group_by_covers_the_window_only(client):
    record(
        client,
        item("in1", ["pricing_value"], "2026-11-26T10:00:00Z", channel="app"),
        item("in2", ["pricing_value"], "2026-11-27T10:00:00Z", channel="email"),
        # Outside the window, though in its ISO week and its month.
        item("week", ["product_quality"], "2026-11-23T10:00:00Z", channel="app"),
        item("month", ["service_quality"], "2026-11-05T10:00:00Z", channel="chat"),
    )
    params = {"start": "2026-11-25", "end": "2026-11-28", "limit": 50}
    data = client.get("/v1/metrics/summary", params={**params, "group_by": "channel"}).json()
    assert data["feedback_count"] == 2
    assert [t["theme"] for t in data["top_themes"]] == ["pricing_value"]
    groups = {g["group"]: g for g in data["groups"]}
    assert {g: v["feedback_count"] for g, v in groups.items()} == {"app": 1, "email": 1}
    app = {t["theme"]: t for t in groups["app"]["themes"]}
    assert [t["theme"] for t in groups["app"]["themes"]][: len(THEMES)] == THEMES
    assert app["pricing_value"]["count"] == 1 and app["pricing_value"]["share"] == 1.0
    assert app["product_quality"]["count"] == 0
    assert client.get("/v1/metrics/summary", params=params).json()["groups"] is None
    r = client.get(
        "/v1/metrics/summary",
        params={**params, "group_by": "channel"},
        headers={"Accept": "text/csv"},
    )
    rows = [row for row in csv.DictReader(io.StringIO(r.text)) if row["list"] == "group"]
    totals = {row["group"]: row["count"] for row in rows if not row["theme"]}
    assert totals == {"app": "1", "email": "1"}


def test_trend_lists_every_period_of_the_window_empty_ones_too(client):
    record(
        client,
        item("a", ["pricing_value"], "2026-11-03T10:00:00Z"),
        item("b", ["pricing_value"], "2026-11-17T10:00:00Z", channel="email"),
    )
    params = {"start": "2026-11-02", "end": "2026-11-23", "interval": "week"}
    periods = client.get("/v1/metrics/themes", params=params).json()["periods"]
    assert [(p["period"], p["feedback_count"]) for p in periods] == [
        ("2026-11-02", 1),
        ("2026-11-09", 0),
        ("2026-11-16", 1),
    ]
    assert {t["count"] for t in periods[1]["themes"]} == {0}
    # A change needs feedback in both periods.
    assert all(t["count_change"] is None for p in periods[1:] for t in p["themes"])
    days = client.get(
        "/v1/metrics/themes", params={"start": "2026-11-01", "end": "2026-11-20", "interval": "day"}
    ).json()["periods"]
    assert len(days) == 19
    grouped = client.get("/v1/metrics/themes", params={**params, "group_by": "channel"}).json()
    assert [(p["period"], p["group"], p["feedback_count"]) for p in grouped["periods"]] == [
        ("2026-11-02", "app", 1),
        ("2026-11-02", "email", 0),
        ("2026-11-09", "app", 0),
        ("2026-11-09", "email", 0),
        ("2026-11-16", "app", 0),
        ("2026-11-16", "email", 1),
    ]


def test_a_trend_of_too_many_periods_is_refused(make_client):
    client = make_client()
    window = {"start": "2000-01-01", "end": "2026-01-01"}
    r = client.get("/v1/metrics/themes", params={**window, "interval": "day"})
    assert r.status_code == 422 and [e["field"] for e in r.json()["detail"]] == ["interval"]
    r = client.get("/v1/metrics/themes", params={**window, "interval": "month"})
    assert r.status_code == 200 and len(r.json()["periods"]) == 26 * 12


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(make_client):
    client = make_client()
    record(
        client,
        item("f1", ["pricing_value"], "2026-11-03T10:00:00Z", channel="=1+2"),
        item("f2", [], "2026-11-10T10:00:00Z", channel="=1+2"),
        item("f3", ["pricing_value"], "2026-11-10T10:00:00Z", channel="@SUM(A1)"),
        item("f4", ["pricing_value"], "2026-11-10T10:00:00Z", channel="+cmd"),
    )
    params = {"start": "2026-11-02", "end": "2026-11-16", "group_by": "channel"}
    r = client.get("/v1/metrics/themes", params=params, headers={"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["group"] for row in rows} == {"'=1+2", "'@SUM(A1)", "'+cmd"}
    # Numbers are left as they are: the second week's pricing change in the '=1+2' group.
    change = next(
        row["count_change"]
        for row in rows
        if row["group"] == "'=1+2" and row["period"] == "2026-11-09"
        if row["theme"] == "pricing_value"
    )
    assert change == "-1"
    summary = client.get("/v1/metrics/summary", params=params, headers={"Accept": "text/csv"}).text
    assert "'@SUM(A1)" in summary and ",@SUM" not in summary


def test_csv_only_when_accept_ranks_it_above_json(make_client):
    client = make_client()
    cases = {
        "text/csv": True,
        "text/csv;q=0.9, application/json;q=0.5": True,
        "text/*": True,
        "application/json, text/csv;q=0": False,
        "application/json;q=1.0, text/csv;q=0.1": False,
        "text/csv, application/json": False,  # a tie
        "*/*": False,
        "": False,
    }
    for accept, wants_csv in cases.items():
        r = client.get(
            "/v1/metrics/summary", params={"start": "2026-11-01"}, headers={"Accept": accept}
        )
        assert r.headers["content-type"].startswith("text/csv") == wants_csv, accept


def test_a_theme_of_an_older_taxonomy_can_be_asked_for(client):
    old = item("o", ["billing_legacy"], "2026-11-03T10:00:00Z")
    old.prediction.scores["billing_legacy"] = 0.9
    record(client, old)
    params = {"start": "2026-11-02", "end": "2026-11-09"}
    listed = client.get("/v1/metrics/themes", params=params).json()["periods"][0]["themes"]
    assert {"billing_legacy": 1}.items() <= {t["theme"]: t["count"] for t in listed}.items()
    r = client.get("/v1/metrics/themes", params={**params, "theme": "billing_legacy"})
    assert r.status_code == 200
    assert [(t["theme"], t["count"]) for t in r.json()["periods"][0]["themes"]] == [
        ("billing_legacy", 1)
    ]
    r = client.get("/v1/metrics/examples", params={**params, "theme": "billing_legacy"})
    assert r.status_code == 200
    for unknown in ("nope", ""):
        r = client.get("/v1/metrics/themes", params={**params, "theme": unknown})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "theme", unknown


def test_examples_cover_the_same_whole_days_as_the_figures(make_client):
    client = make_client(store_text=True)
    record(client, item("a", ["pricing_value"], "2026-11-03T10:00:00Z"))
    window = {"start": "2026-11-03T12:00:00Z", "end": "2026-11-04T00:00:00Z"}
    summary = client.get("/v1/metrics/summary", params=window).json()
    assert summary["feedback_count"] == 1
    examples = client.get("/v1/metrics/examples", params={**window, "theme": "pricing_value"})
    assert [e["id"] for e in examples.json()["examples"]] == ["a"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql-icu"])
def test_examples_tied_in_score_and_time_come_in_code_point_order(make_client, request, backend):
    """Under a linguistic collation (PostgreSQL with ICU en-US, as most servers run) ids sort
    "_x", "a-1", "A-9"...: the same data showed other examples than on SQLite."""
    url = None
    if backend == "postgresql-icu":
        from tests.conftest import _empty_postgres

        url = request.getfixturevalue("postgres_icu_url")
        _empty_postgres(url)
    client = make_client(store_text=True, **({"database_url": url} if url else {}))
    ids = ["a-1", "A-9", "_x", "B-2", "b-1", "Z"]
    record(client, *(item(i, ["pricing_value"], "2026-11-03T10:00:00Z") for i in ids))
    params = {"theme": "pricing_value", "start": "2026-11-03", "end": "2026-11-04", "limit": 3}
    examples = client.get("/v1/metrics/examples", params=params).json()["examples"]
    assert [e["id"] for e in examples] == sorted(ids)[:3] == ["A-9", "B-2", "Z"]


def test_a_trend_of_too_many_period_and_group_rows_is_refused(make_client, monkeypatch):
    """Every period is listed for every group: 50 segments over 1,000 days answered 68 MB in
    8 s. The rows are counted before they are built."""
    monkeypatch.setattr("service.api.routes.metrics.MAX_TREND_ROWS", 20)
    client = make_client()
    record(
        client,
        *(item(f"i{c}", ["speed_availability"], "2026-11-03T10:00:00Z", channel=c) for c in "abc"),
    )
    window = {"start": "2026-11-01", "end": "2026-11-11"}  # 10 days
    r = client.get(
        "/v1/metrics/themes", params={**window, "interval": "day", "group_by": "channel"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "group_by"
    assert (
        "10 periods for each of 3 groups (30 rows), more than 20"
        in r.json()["detail"][0]["message"]
    )
    r = client.get("/v1/metrics/themes", params={**window, "interval": "day"})
    assert r.status_code == 200 and len(r.json()["periods"]) == 10
    r = client.get(
        "/v1/metrics/themes", params={**window, "interval": "week", "group_by": "channel"}
    )
    assert r.status_code == 200 and len(r.json()["periods"]) == 3 * 3  # weeks from Oct 26


def test_trend_csv_keeps_the_sentiments_of_an_older_taxonomy(make_client):
    """The JSON lists a sentiment the served taxonomy no longer has; the CSV's sentiment
    columns must too, or they no longer add up to the count."""
    client = make_client()
    record(
        client,
        item("n", ["pricing_value"], "2026-11-03T10:00:00Z", sentiment="negative"),
        item("m", ["pricing_value"], "2026-11-03T11:00:00Z", sentiment="mixed"),
    )
    params = {"start": "2026-11-02", "end": "2026-11-09", "theme": "pricing_value"}
    r = client.get("/v1/metrics/themes", params=params, headers={"Accept": "text/csv"})
    (row,) = list(csv.DictReader(io.StringIO(r.text)))
    sentiment = {k: int(v) for k, v in row.items() if k.startswith("sentiment_")}
    assert sentiment["sentiment_mixed"] == 1 and sum(sentiment.values()) == int(row["count"]) == 2
