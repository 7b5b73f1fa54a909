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
