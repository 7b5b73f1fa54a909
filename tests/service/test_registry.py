"""The model registry: atomic writes, rollback order, the registry winning over the link."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from itertools import pairwise
from pathlib import Path

import pytest

from service.bundle import BundleError, read_meta, resolve_model_path
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


# -- concurrent writers ----------------------------------------------------------------------
def _stub_models(folder: Path, versions: tuple[str, ...]) -> Path:
    """Bundles with only a bundle.json: all that promoting (not loading) reads."""
    folder.mkdir()
    for version in versions:
        (folder / version).mkdir()
        (folder / version / "bundle.json").write_text(json.dumps({"version": version}))
    return folder


def _promote_many(models: Path, version: str, n: int, errors) -> None:
    for i in range(n):
        try:
            set_current_version(models, version, "promote", reason=f"{version}-{i}")
        except Exception as exc:  # reported to the parent, which fails the test
            errors.put(f"writer {version}: {type(exc).__name__}: {exc}")


def _read_until(models: Path, done, errors) -> None:
    while not done.is_set():
        try:
            data = json.loads((models / "registry.json").read_text(encoding="utf-8"))
            assert isinstance(data["history"], list), data
            read_registry(models)
            resolve_model_path(None, models)
        except Exception as exc:
            errors.put(f"reader: {type(exc).__name__}: {exc}")


def test_concurrent_promotions_keep_every_event_and_a_readable_registry(tmp_path):
    """Two ``models promote`` (or a train and a rollback) at once: each read-modify-write of
    the registry is whole, no writer sees another's temporary file, and a reader always finds
    valid JSON."""
    versions, n = ("a", "b", "c"), 40
    models = _stub_models(tmp_path / "models", versions)
    set_current_version(models, "a", "train")
    ctx = multiprocessing.get_context("fork")
    errors, done = ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=_read_until, args=(models, done, errors))
    writers = [ctx.Process(target=_promote_many, args=(models, v, n, errors)) for v in versions]
    reader.start()
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
    done.set()
    reader.join(60)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, f"{len(found)} errors, e.g. {found[:5]}"
    assert all(p.exitcode == 0 for p in [*writers, reader])
    history = read_registry(models)["history"]
    assert len(history) == 1 + n * len(versions)
    reasons = {e.get("reason") for e in history}
    assert reasons >= {f"{v}-{i}" for v in versions for i in range(n)}
    # Each event's "previous" is the one before it: no write was lost between read and write.
    assert all(e["previous"] == prev["version"] for prev, e in pairwise(history))
    assert read_registry(models)["current"] == history[-1]["version"]
    assert (models / "current").resolve() == (models / history[-1]["version"]).resolve()
    assert not [f.name for f in models.iterdir() if f.name.endswith(".tmp")]


# -- a damaged registry.json -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"current": "a"}', "history"),
        (b'{"history": []}', "current"),
        (b'{"current": 5, "history": []}', "current"),
        (b'{"current": "a", "history": {}}', "history"),
        (b'{"current": "a", "history": [1]}', "history"),
        (b'{"current": "a", "history": [{"action": "promote"}]}', "history"),
    ],
)
def test_a_malformed_registry_is_an_error_naming_the_file(models, content, problem):
    (models / "registry.json").write_bytes(content)
    for call in (read_registry, current_version, list_models, rollback):
        with pytest.raises(BundleError, match=problem) as info:
            call(models)
        assert str(models / "registry.json") in str(info.value)
    with pytest.raises(BundleError, match=problem):
        set_current_version(models, "a", "promote")
    assert (models / "registry.json").read_bytes() == content  # left for a person to mend


# -- listing -----------------------------------------------------------------------------------
def test_one_malformed_bundle_does_not_hide_the_others(models, caplog):
    meta = read_meta(models / "a")
    del meta["version"]
    (models / "a" / "bundle.json").write_text(json.dumps(meta))
    meta = read_meta(models / "b")
    meta.update(created_at=None, metrics=["not", "a", "dict"], training_data=None)
    (models / "b" / "bundle.json").write_text(json.dumps(meta))
    (models / "broken").mkdir()
    (models / "broken" / "bundle.json").write_text("{not json")
    (models / "list").mkdir()
    (models / "list" / "bundle.json").write_text("[]")
    with caplog.at_level(logging.WARNING, logger="service.registry"):
        entries = list_models(models)
    assert sorted(e.version for e in entries) == ["a", "b", "c"]
    by_name = {e.version: e for e in entries}
    assert by_name["a"].recorded_version is None
    assert by_name["b"].created_at == "" and by_name["b"].macro_f1 is None
    assert by_name["b"].fingerprint == ""
    warned = caplog.text
    assert str(models / "broken") in warned and str(models / "list") in warned


def test_a_copied_bundle_is_listed_and_promoted_under_its_folder_name(models):
    """``cp -a a a-backup``: two folders recording the same version are two models."""
    shutil.copytree(models / "a", models / "a-backup")
    set_current_version(models, "a", "promote")
    entries = {e.version: e for e in list_models(models)}
    assert sorted(entries) == ["a", "a-backup", "b", "c"]
    assert entries["a-backup"].recorded_version == "a"
    assert [name for name, e in entries.items() if e.current] == ["a"]
    # Promoting the copy records its folder name, whatever its bundle.json says.
    event = set_current_version(models, "a-backup", "promote")
    assert event["version"] == current_version(models) == "a-backup"
    assert [e.version for e in list_models(models) if e.current] == ["a-backup"]
    assert resolve_model_path(None, models) == (models / "a-backup").resolve()
    assert rollback(models)["version"] == "a"


# -- models/current as a real folder ---------------------------------------------------------
def test_a_real_current_folder_is_refused_before_anything_changes(models):
    set_current_version(models, "a", "promote")
    set_current_version(models, "b", "promote")
    (models / "current").unlink()
    (models / "current").mkdir()  # e.g. copied with cp -rL or unpacked from an archive
    (models / "current" / "keep.txt").write_text("mine")
    before = (models / "registry.json").read_bytes()
    for promote in (
        lambda: set_current_version(models, "c", "promote"),
        lambda: rollback(models),
    ):
        with pytest.raises(BundleError, match="current is a directory, not a link; move it away"):
            promote()
    assert (models / "registry.json").read_bytes() == before
    assert (models / "current" / "keep.txt").read_text() == "mine"
    assert not [f.name for f in models.iterdir() if f.name.endswith(".tmp")]


def test_a_promotion_checked_against_a_champion_that_has_since_changed_is_refused(models):
    set_current_version(models, "a", "promote")
    set_current_version(models, "b", "promote")  # another promotion while "c" was compared to a
    with pytest.raises(BundleError, match="changed to b while c was compared with a"):
        set_current_version(models, "c", "promote", replacing="a")
    assert current_version(models) == "b"
    assert set_current_version(models, "c", "promote", replacing="b")["previous"] == "b"


def test_a_new_model_may_become_current_only_if_first_or_gated_against_the_champion(models):
    from service.registry import may_become_current

    assert may_become_current(models, None)  # the first model
    assert may_become_current(models, None, models / "b")
    assert not may_become_current(models, "a")  # a challenger: models promote compares it
    assert not may_become_current(models, "a", models / "b")
    assert may_become_current(models, "a", models / "a")
    (models.parent / "link").symlink_to(models / "a", target_is_directory=True)
    assert may_become_current(models, "a", models.parent / "link")  # the same folder


def test_promote_loads_each_bundle_once(cli_models, monkeypatch, small_labels):
    """Loading a bundle (weights and tokenizer) takes seconds: the comparison's loads are the
    load checks when the API loads bundles as the comparison does (backend torch)."""
    import service.bundle
    from service.cli import main
    from service.core.config import get_settings

    monkeypatch.setenv("CXTHEMES_BACKEND", "torch")
    get_settings.cache_clear()
    loaded = []
    real = service.bundle.load_bundle

    def counting(path, *args, **kwargs):
        loaded.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(service.bundle, "load_bundle", counting)
    set_current_version(cli_models, "a", "promote")
    assert main(["models", "promote", "b", "--labels", str(small_labels)]) == 0
    assert sorted(loaded) == ["a", "b"]
    assert current_version(cli_models) == "b"
    loaded.clear()  # with nothing to compare, the challenger is still loaded (as the API would)
    (cli_models / "registry.json").write_text('{"current": null, "history": []}')
    assert main(["models", "promote", "c", "--labels", str(small_labels)]) == 0
    assert loaded == ["c"]
