"""The model registry: atomic writes, rollback order, the registry winning over the link."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from service.bundle import BundleError, resolve_model_path
from service.registry import (
    check_new_version,
    current_version,
    list_models,
    read_registry,
    rollback,
    set_current_version,
)


@pytest.fixture
def models(tiny_bundle, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for version in ("a", "b", "c"):
        shutil.copytree(tiny_bundle, folder / version)
        meta = json.loads((folder / version / "bundle.json").read_text())
        meta["version"] = version
        (folder / version / "bundle.json").write_text(json.dumps(meta))
    return folder


def test_promotions_and_rollbacks_walk_back_in_order(models):
    for version in ("a", "b", "c"):
        set_current_version(models, version, "promote")
    assert current_version(models) == "c"
    assert rollback(models)["version"] == "b"
    assert rollback(models)["version"] == "a"
    with pytest.raises(BundleError, match="nothing to roll back"):
        rollback(models)
    assert resolve_model_path(None, models) == (models / "a").resolve()
    assert (models / "current").resolve() == (models / "a").resolve()
    assert [e.version for e in list_models(models) if e.current] == ["a"]


def test_a_promotion_killed_midway_changes_nothing(models, monkeypatch):
    set_current_version(models, "a", "promote")
    before = (models / "registry.json").read_bytes()

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt  # killed just before the rename that would commit it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        set_current_version(models, "b", "promote")
    monkeypatch.undo()
    assert (models / "registry.json").read_bytes() == before
    assert resolve_model_path(None, models) == (models / "a").resolve()


def test_the_registry_wins_over_a_stale_link(models):
    set_current_version(models, "a", "promote")
    set_current_version(models, "b", "promote")
    # A kill between writing the registry and swapping the link leaves the old link.
    (models / "current").unlink()
    (models / "current").symlink_to("a")
    assert resolve_model_path(None, models) == (models / "b").resolve()


def test_incomplete_bundles_cannot_be_made_current(models):
    (models / "c" / "bundle.json").unlink()
    with pytest.raises(BundleError):
        set_current_version(models, "c", "promote")
    assert read_registry(models)["current"] is None


def test_a_model_is_named_by_path_or_by_version(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("b", models) == (models / "b").resolve()
    assert resolve_model_path(str(models / "c"), models) == (models / "c").resolve()
    # A path that exists wins over a version of the same name.
    (tmp_path / "b").mkdir()
    assert resolve_model_path("b", models) == (tmp_path / "b").resolve()
    with pytest.raises(BundleError, match="give a bundle's path or a version"):
        resolve_model_path("no-such-version", models)


@pytest.mark.parametrize(
    "version", [".", "..", "../elsewhere", "a/b", "current", "registry.json", "x.partial", "", "-x"]
)
def test_a_version_that_is_not_a_plain_id_is_refused(models, version):
    """Writing a bundle replaces its folder: "." would have deleted every model."""
    with pytest.raises(ValueError, match="not a version id"):
        check_new_version(models, version)


def test_a_version_naming_a_model_in_use_or_a_foreign_folder_is_refused(models):
    set_current_version(models, "a", "promote")
    set_current_version(models, "b", "promote")
    (models / "notes").mkdir()
    with pytest.raises(ValueError, match="is the current model"):
        check_new_version(models, "b")
    with pytest.raises(ValueError, match="rollback target"):
        check_new_version(models, "a")
    with pytest.raises(ValueError, match="the model this run reads"):
        check_new_version(models, "c", protected=("c",))
    with pytest.raises(ValueError, match="not a model bundle"):
        check_new_version(models, "notes")
    assert check_new_version(models, "c") == models / "c"  # never current: may be replaced
    assert check_new_version(models, "new-1.2_x") == models / "new-1.2_x"


@pytest.fixture
def cli_models(models, monkeypatch, request):
    from service.core.config import get_settings

    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    return models


def test_a_bundle_that_cannot_load_is_never_promoted_even_with_no_current(cli_models, capsys):
    from service.cli import main

    (cli_models / "b" / "model.safetensors").unlink()
    assert main(["models", "promote", "b", "--force"]) == 2
    assert "b could not be loaded" in capsys.readouterr().err
    assert current_version(cli_models) is None and not (cli_models / "current").exists()


def test_a_broken_current_model_does_not_block_promoting_a_working_one(cli_models, capsys):
    from service.cli import main

    set_current_version(cli_models, "a", "promote")
    (cli_models / "a" / "model.safetensors").unlink()
    assert main(["models", "promote", "b"]) == 0
    assert "the current model a cannot be loaded" in capsys.readouterr().err
    assert current_version(cli_models) == "b"
    assert "cannot be loaded" in read_registry(cli_models)["history"][-1]["reason"]
    # ... and rolling back to the broken one is refused, leaving b current.
    assert main(["models", "rollback"]) == 2
    assert "cannot roll back to a" in capsys.readouterr().err
    assert current_version(cli_models) == "b"
