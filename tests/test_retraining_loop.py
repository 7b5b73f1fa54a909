"""The retraining loop on the tiny model, end to end: import labels, train challengers,
compare, refuse a worse one, promote a better one, reload the running API, roll back."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from service.cli import main
from service.core.config import Settings, get_settings
from service.registry import current_version, read_registry


@pytest.fixture
def workspace(small_labels, tmp_path, monkeypatch):
    labels = tmp_path / "labels"
    labels.mkdir()
    shutil.copy(small_labels, labels / "items.jsonl")
    models = tmp_path / "models"
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    monkeypatch.setenv("CXTHEMES_LABELS_DIR", str(labels))
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    get_settings.cache_clear()
    yield labels, models
    get_settings.cache_clear()


def train(tiny_base, version, *extra):
    args = ["train", "--base-model", str(tiny_base), "--version", version, "--lr", "1e-3"]
    args += ["--epochs", "1", "--max-length", "64", "--no-baselines", *extra]
    assert main(args) == 0


def variant(models, source, version, broken_themes):
    """A copy of ``source`` whose thresholds never fire for ``broken_themes``: exactly as good
    on the other themes, F1 0 on those. (A tiny model trained on a few hundred items is too
    noisy to be reliably better or worse by training alone.)"""
    shutil.copytree(models / source, models / version)
    meta = json.loads((models / version / "bundle.json").read_text())
    meta["version"] = version
    for theme in broken_themes:
        meta["thresholds"][theme] = 1.01
    (models / version / "bundle.json").write_text(json.dumps(meta))


def test_the_whole_loop(workspace, tiny_base, tmp_path, capsys):
    labels, models = workspace
    # A first model becomes current by itself.
    train(tiny_base, "first")
    assert current_version(models) == "first"

    # New labels come in.
    new = tmp_path / "new.jsonl"
    new.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {
                    "text": "The subscription doubled in price overnight",
                    "lang": "en",
                    "themes": ["pricing_value"],
                    "sentiment": "negative",
                },
                {
                    "text": "客服机器人一直绕圈子，我只想找人工",
                    "lang": "zh",
                    "themes": ["human_support"],
                    "sentiment": "negative",
                },
            ]
        )
    )
    assert main(["labels", "import", str(new), "--by", "tester"]) == 0
    assert len(list((labels / "imported").glob("*.jsonl"))) == 1

    # Retrain on the new labels: a challenger, not current.
    train(tiny_base, "better")
    assert current_version(models) == "first"
    # The champion misses three themes that "better" finds; "worse" misses all of them.
    from service.registry import set_current_version
    from service.taxonomy import load_taxonomy

    themes = load_taxonomy().theme_ids
    variant(models, "better", "champion", themes[:3])
    variant(models, "better", "worse", themes)
    set_current_version(models, "champion", "promote", forced=True)
    capsys.readouterr()

    assert main(["models", "compare", "champion", "better"]) == 0
    table = capsys.readouterr().out
    assert "| **macro F1** |" in table and "| champion | better | change |" in table
    assert "95% interval |" in table and "paired bootstrap" in table

    assert main(["models", "promote", "worse"]) == 1
    assert "refused: macro F1" in capsys.readouterr().err
    assert current_version(models) == "champion"

    # A running API serves the champion until it is told to reload.
    settings = Settings(models_dir=models, database_url=f"sqlite:///{tmp_path / 'api.db'}")
    from service.api.main import create_app

    with TestClient(create_app(settings), base_url="http://localhost") as client:
        body = {"items": [{"id": "1", "text": "Too expensive"}]}
        assert client.post("/v1/classify", json=body).json()["model_version"] == "champion"

        assert main(["models", "promote", "better"]) == 0
        assert current_version(models) == "better"
        assert client.post("/v1/classify", json=body).json()["model_version"] == "champion"
        r = client.post("/v1/admin/reload")
        assert r.json() == {"model_version": "better", "previous": "champion", "changed": True}
        assert client.post("/v1/classify", json=body).json()["model_version"] == "better"

        # A model that fails to load is refused; the old one keeps serving.
        assert main(["models", "promote", "worse", "--force"]) == 0
        (models / "worse" / "model.safetensors").write_bytes(b"corrupt")
        refused = client.post("/v1/admin/reload")
        assert refused.status_code == 409 and "still serving better" in refused.text
        assert client.post("/v1/classify", json=body).json()["model_version"] == "better"

        # Roll back (twice: worse -> better -> champion) and reload.
        assert main(["models", "rollback"]) == 0
        assert current_version(models) == "better"
        assert main(["models", "rollback"]) == 0
        assert current_version(models) == "champion"
        assert client.post("/v1/admin/reload").json()["model_version"] == "champion"

    # A damaged bundle cannot be promoted, even by force: it is evaluated first.
    capsys.readouterr()
    assert main(["models", "promote", "worse", "--force"]) == 2
    assert "could not be loaded" in capsys.readouterr().err
    assert current_version(models) == "champion"

    history = read_registry(models)["history"]
    actions = [e["action"] for e in history]
    assert actions == ["train", "promote", "promote", "promote", "rollback", "rollback"]
    assert [e["forced"] for e in history[1:4]] == [True, False, True]
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "| current | champion |" in listing and "promote (forced)" in listing


def test_promote_refuses_a_bundle_outside_the_models_folder(workspace, tiny_base, tmp_path, capsys):
    """The registry names models by their folder in the models folder: a bundle given by a path
    elsewhere was taken for the same-named folder there, which was then promoted instead."""
    _, models = workspace
    train(tiny_base, "first")
    elsewhere = tmp_path / "colleague" / "cx-ana"
    shutil.copytree(models / "first", elsewhere)
    shutil.copytree(models / "first", models / "cx-ana")  # same name, another bundle
    capsys.readouterr()
    assert main(["models", "promote", str(elsewhere), "--force"]) == 2
    err = capsys.readouterr().err
    assert "is not in the models folder" in err and str(elsewhere) in err
    assert current_version(models) == "first"
    # By its name, or by its path inside the models folder, it is promoted.
    assert main(["models", "promote", str(models / "cx-ana"), "--force"]) == 0
    assert current_version(models) == "cx-ana"
