"""The review queue: flagged items, most uncertain first, as Label Studio tasks."""

from __future__ import annotations

import json

from service.cli import main
from service.core.config import get_settings
from tests.service.store.test_store import item


def test_review_queue_orders_by_uncertainty_and_exports_tasks(make_client, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'review.db'}"
    # A wide margin flags nearly everything, so the order is what is being tested.
    client = make_client(database_url=db, review_margin=0.5, store_text=True)
    items = [
        {"id": f"t{k}", "text": text + " Call me on +1 415 555 2671."}
        for k, text in enumerate(
            [
                "The bot kept looping, I want a person.",
                "Prices doubled.",
                "App is slow.",
                "Why does the AI need my contacts?",
                "Great service, thanks!",
            ]
        )
    ]
    assert client.post("/v1/classify", json={"items": items, "record": True}).status_code == 200
    r = client.get("/v1/review", params={"limit": 3})
    assert r.status_code == 200
    data = r.json()
    assert data["total"] >= 3 and len(data["tasks"]) == 3
    margins = [t["meta"]["review_margin"] for t in data["tasks"]]
    assert margins == sorted(margins)  # the most uncertain first
    task = data["tasks"][0]
    assert {"themes", "sentiment"} == {x["from_name"] for x in task["predictions"][0]["result"]}
    assert task["predictions"][0]["model_version"] == "tiny-test"
    assert "[PHONE]" in task["data"]["text"] and "555" not in task["data"]["text"]
    config = client.get("/v1/review/label-config").text
    assert '<Choices name="themes"' in config and 'value="privacy_data"' in config

    monkeypatch.setenv("CXTHEMES_DATABASE_URL", db)
    get_settings.cache_clear()
    try:
        assert main(["review", "export", "-o", str(tmp_path / "tasks.json"), "--limit", "2"]) == 0
    finally:
        get_settings.cache_clear()
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["id"] for t in tasks] == [t["data"]["id"] for t in data["tasks"][:2]]
    assert (tmp_path / "tasks.label-config.xml").is_file()


def test_review_task_times_are_utc_with_z(make_client):
    client = make_client()
    flagged = item("f", ["pricing_value"], "2026-11-03T10:00:00+08:00", review=True)
    client.app.state.store.record([flagged], "1")
    task = client.get("/v1/review").json()["tasks"][0]
    assert task["meta"]["created_at"] == "2026-11-03T02:00:00Z"


def test_resolving_reviews_drains_the_queue_and_can_reopen(make_client):
    client = make_client()
    store = client.app.state.store
    store.record(
        [item(f"q{k}", ["pricing_value"], "2026-11-03", review=True) for k in range(3)]
        + [item(7, ["pricing_value"], "2026-11-03", review=True)],
        "1",
    )
    assert client.get("/v1/review").json()["total"] == 4

    r = client.post("/v1/review/resolve", json={"ids": ["q0", 7, "nope"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"changed": 2, "unchanged": [], "not_found": ["nope"], "remaining": 2}
    queue = client.get("/v1/review").json()
    assert queue["total"] == 2
    assert sorted(t["data"]["id"] for t in queue["tasks"]) == ["q1", "q2"]
    everything = client.get("/v1/review", params={"include_resolved": True}).json()
    resolved = {t["data"]["id"]: t["meta"]["reviewed_at"] for t in everything["tasks"]}
    assert everything["total"] == 4 and resolved["q1"] is None
    assert resolved["q0"].endswith("Z") and resolved["7"].endswith("Z")

    r = client.post("/v1/review/resolve", json={"ids": ["q0"], "resolved": False})
    assert r.json()["changed"] == 1 and r.json()["remaining"] == 3


def test_resolve_refuses_bad_bodies_naming_the_field(make_client):
    client = make_client()
    for body, field in [
        ({"ids": []}, "ids"),
        ({"ids": ["a"] * 1001}, "ids"),
        ({"ids": [True]}, "ids.0"),
        ({"ids": ["x" * 256]}, "ids.0"),
        ({"ids": ["a"], "resolved": "maybe"}, "resolved"),
        ({"ids": ["a"], "extra": 1}, "extra"),
        ({}, "ids"),
    ]:
        r = client.post("/v1/review/resolve", json=body)
        assert r.status_code == 422, body
        locs = [e["field"] for e in r.json()["detail"]]
        assert field in locs, (body, locs)


def test_cli_resolves_the_annotated_tasks_of_a_label_studio_export(
    make_client, tmp_path, monkeypatch, capsys
):
    db = f"sqlite:///{tmp_path / 'review.db'}"
    client = make_client(database_url=db)
    client.app.state.store.record(
        [item(f"t{k}", ["pricing_value"], "2026-11-03", review=True) for k in range(3)], "1"
    )
    annotation = {
        "result": [
            {"from_name": "themes", "type": "choices", "value": {"choices": ["pricing_value"]}},
            {"from_name": "sentiment", "type": "choices", "value": {"choices": ["negative"]}},
        ]
    }
    export = [
        {"data": {"id": "t0", "text": "x"}, "annotations": [annotation]},
        {"data": {"id": "t1", "text": "y"}, "annotations": []},  # not labelled yet: stays open
    ]
    (tmp_path / "export.json").write_text(json.dumps(export))
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", db)
    get_settings.cache_clear()
    try:
        assert main(["review", "resolve", "--from", str(tmp_path / "export.json"), "t2"]) == 0
        out = capsys.readouterr()
        assert "resolved 2 items" in out.out and "1 items left" in out.out
        assert "1 tasks" in out.err and "not annotated" in out.err
        assert main(["review", "resolve", "--reopen", "t2"]) == 0
        assert "2 items left" in capsys.readouterr().out
        assert main(["review", "resolve"]) == 2
        assert "no ids" in capsys.readouterr().err
        # A typo in the store's path is an error, not a new empty store.
        missing = tmp_path / "typo.db"
        monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{missing}")
        get_settings.cache_clear()
        assert main(["review", "resolve", "t0"]) == 2
        assert not missing.exists()
    finally:
        get_settings.cache_clear()
    assert [t["data"]["id"] for t in client.get("/v1/review").json()["tasks"]] == ["t1", "t2"]
