"""Adding a theme to the taxonomy and retraining works end to end; metrics recorded under
the older taxonomy stay readable."""

from __future__ import annotations

import json

import yaml
from fastapi.testclient import TestClient

from service.api.main import create_app
from service.core.config import Settings
from service.taxonomy import taxonomy_text
from training.train import TrainConfig, train


def test_a_new_theme_end_to_end(tiny_base, tiny_bundle, small_labels, tmp_path):
    data = yaml.safe_load(taxonomy_text())
    data["version"] = "2"
    data["themes"].append(
        {
            "id": "billing_errors",
            "name": {"en": "Billing errors", "zh": "计费错误"},
            "description": {"en": "Charged twice or wrongly.", "zh": "重复扣费或扣错。"},
            "report_figure": "(new in v2)",
        }
    )
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "items.jsonl").write_text(small_labels.read_text(encoding="utf-8"))
    with (labels / "billing.jsonl").open("w", encoding="utf-8") as fh:
        for k in range(60):
            fh.write(
                json.dumps(
                    {
                        "id": f"bill-{k}",
                        "lang": "en",
                        "sentiment": "negative",
                        "source": "written",
                        "text": f"Charged twice for invoice {k}, nobody fixes it ({k * 7})",
                        "themes": ["billing_errors"],
                    }
                )
                + "\n"
            )

    db = f"sqlite:///{tmp_path / 'store.db'}"
    body = {
        "record": True,
        "items": [
            {"id": "old-1", "text": "Too expensive", "metadata": {"created_at": "2026-11-03"}},
        ],
    }
    with TestClient(
        create_app(Settings(model=str(tiny_bundle), database_url=db)), base_url="http://localhost"
    ) as old:
        assert old.post("/v1/classify", json=body).status_code == 200

    bundle = train(
        TrainConfig(
            base_model=str(tiny_base),
            labels=labels,
            models_dir=tmp_path / "models",
            epochs=1,
            learning_rate=1e-3,
            max_length=64,
            version="v2-themes",
            baselines=False,
            taxonomy_path=taxonomy,
        )
    )
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["theme_ids"][-1] == "billing_errors" and meta["taxonomy_version"] == "2"
    assert (bundle / "taxonomy.yaml").is_file()

    with TestClient(
        create_app(Settings(model=str(bundle), database_url=db)), base_url="http://localhost"
    ) as new:
        themes = new.get("/v1/themes").json()
        assert themes["version"] == "2" and len(themes["themes"]) == 10
        result = new.post("/v1/classify", json={"items": [{"id": "n", "text": "charged twice"}]})
        assert "billing_errors" in result.json()["results"][0]["scores"]
        periods = new.get(
            "/v1/metrics/themes",
            params={"start": "2026-11-02", "end": "2026-11-08", "interval": "week"},
        ).json()["periods"]
        assert periods[0]["feedback_count"] == 1  # recorded under taxonomy v1, still there
        assert "billing_errors" in [t["theme"] for t in periods[0]["themes"]]
