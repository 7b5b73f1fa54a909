"""A training run owns its version: interrupted or failed runs leave nothing behind, two runs
of one version never share it, and a run that would train nothing is refused."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from service.cli import main
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def models(tmp_path, monkeypatch, request):
    from service.core.config import get_settings

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(folder))
    get_settings.cache_clear()  # settings are read once per process
    request.addfinalizer(get_settings.cache_clear)
    return folder


def _train_args(tiny_base, small_labels, version: str) -> list[str]:
    return [
        "train", "--base-model", str(tiny_base), "--labels", str(small_labels),
        "--max-steps", "2", "--max-length", "64", "--no-baselines", "--version", version,
    ]  # fmt: skip


def _tiny_config(tiny_base, small_labels, models_dir, version: str, **overrides) -> TrainConfig:
    """A two-step run of the tiny model without baselines."""
    settings = {"max_steps": 2, "max_length": 64, **overrides}
    return TrainConfig(
        base_model=str(tiny_base),
        labels=small_labels,
        models_dir=models_dir,
        baselines=False,
        version=version,
        **settings,
    )


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _strict_json(text: str):
    """JSON as other languages read it: NaN and Infinity are not numbers there."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# -- interrupted runs ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["checkpoint", "bundle"])
def test_an_interrupted_train_leaves_nothing_and_says_so_in_one_line(
    where, tiny_base, small_labels, models, monkeypatch, capsys
):
    if where == "checkpoint":  # Ctrl-C just after the Trainer saved its first checkpoint
        monkeypatch.setattr("training.train.LossProgressCallback.on_save", _interrupt)
    else:  # Ctrl-C while the bundle is being written (its .partial folder exists)
        monkeypatch.setattr("service.bundle.save_file", _interrupt)
    assert main(_train_args(tiny_base, small_labels, "cut")) == 130
    err = capsys.readouterr().err
    assert "cxthemes train: interrupted" in err and "Traceback" not in err
    # No checkpoints, lock, half-written bundle or model left; nothing became current.
    assert sorted(p.name for p in models.iterdir() if p.name != ".registry.lock") in (
        [],
        ["registry.json"],
    )
    assert not (models / "current").exists()

    # The same version trains afterwards, and leaves no work folder either.
    monkeypatch.undo()
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    assert main(_train_args(tiny_base, small_labels, "cut")) == 0
    assert (models / "cut" / "bundle.json").is_file()
    assert not (models / ".checkpoints").exists()


def test_a_failed_train_removes_its_checkpoints(tiny_base, small_labels, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("training.train.LossProgressCallback.on_save", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(_tiny_config(tiny_base, small_labels, tmp_path, "failed"))
    assert not (tmp_path / ".checkpoints").exists()
    assert not (tmp_path / "failed").exists() and not (tmp_path / "failed.partial").exists()


def test_an_interrupted_distill_leaves_nothing(tiny_bundle, small_labels, models, monkeypatch):
    monkeypatch.setattr("training.train.LossProgressCallback.on_save", _interrupt)
    args = ["distill", "--teacher", str(tiny_bundle), "--labels", str(small_labels)]
    args += ["--layers", "1", "--max-steps", "2", "--version", "cut-student"]
    assert main(args) == 130
    assert not (models / ".checkpoints").exists()
    assert not (models / "cut-student").exists()
    assert not (models / "cut-student.partial").exists()


# -- one run per version ------------------------------------------------------------------------
def test_a_second_run_of_a_version_being_trained_fails_at_once(
    tiny_base, tiny_bundle, small_labels, models, capsys
):
    from training.train import version_run

    with version_run(models, "v9") as work_dir:  # as another process training v9 holds it
        (work_dir / "checkpoint-1").mkdir(parents=True)
        assert main(_train_args(tiny_base, small_labels, "v9")) == 2
        assert (
            "cxthemes train: error: version v9 is being trained by another process; "
            "wait for it to finish or choose another --version\n"
        ) in capsys.readouterr().err
        # distill writes to the same place, so it is refused the same version too
        args = ["distill", "--teacher", str(tiny_bundle), "--labels", str(small_labels)]
        assert main([*args, "--layers", "1", "--max-steps", "2", "--version", "v9"]) == 2
        assert "version v9 is being trained by another process" in capsys.readouterr().err
        # the other run's checkpoints are untouched, and nothing was written over its model
        assert (work_dir / "checkpoint-1").is_dir()
        assert not (models / "v9").exists()
    assert not (models / ".checkpoints").exists()  # the holder's work folder and lock: gone


def test_a_killed_run_does_not_keep_its_version_locked(tmp_path):
    from training.train import version_run

    holder = textwrap.dedent(
        f"""
        import os, sys
        from training.train import version_run
        with version_run({str(tmp_path)!r}, "v9") as work_dir:
            work_dir.mkdir(parents=True)
            print("held", flush=True)
            sys.stdin.readline()
            os._exit(9)  # dies holding it: no clean-up runs
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        busy = pytest.raises(ValueError, match="being trained by another process")
        with busy, version_run(tmp_path, "v9"):
            pass
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(60) == 9
    finally:
        if proc.poll() is None:
            proc.kill()
    with version_run(tmp_path, "v9") as work_dir:  # the kernel released the dead run's lock
        assert work_dir.is_dir()  # its leftovers are there until this run ends...
    assert not (tmp_path / ".checkpoints").exists()  # ...and then they are removed


# -- runs that would train nothing ----------------------------------------------------------------
@pytest.mark.parametrize("change", [{"epochs": 0}, {"epochs": -1.0}, {"batch_size": 0}], ids=str)
def test_a_run_that_would_train_nothing_is_refused(change, tiny_base, small_labels, tmp_path):
    # No step limit: the epochs decide.
    config = _tiny_config(tiny_base, small_labels, tmp_path, "nothing", max_steps=-1, **change)
    with pytest.raises(ValueError, match="epochs must be more than 0|batch size must be"):
        train(config)
    assert list(tmp_path.iterdir()) == []


def test_bundle_json_never_holds_nan_or_infinity(tiny_base, small_labels, tmp_path, monkeypatch):
    # A dev score that is not a number (a diverged run): bundle.json records none, not NaN
    # or -Infinity, which are not JSON.
    def nan_selection(eval_pred):
        return {"theme_macro_f1": 0.0, "sentiment_macro_f1": 0.0, "selection": float("nan")}

    monkeypatch.setattr("training.train._selection_metrics", nan_selection)
    path = train(_tiny_config(tiny_base, small_labels, tmp_path, "nan", make_current=False))
    meta = _strict_json((path / "bundle.json").read_text("utf-8"))
    assert meta["best_dev_selection"] is None


@pytest.mark.parametrize("max_steps", [0, -2])
def test_a_step_limit_that_is_not_positive_is_refused(max_steps, tiny_base, small_labels, tmp_path):
    # The Trainer takes any limit of 0 or less as none and trains by epochs instead; only -1
    # (the default) means "no limit".
    config = _tiny_config(tiny_base, small_labels, tmp_path, "steps", max_steps=max_steps)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        train(config)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "distill"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_the_cli_refuses_a_step_limit_that_is_not_positive(command, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--max-steps", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"cxthemes {command}: error: argument --max-steps: must be at least 1" in err


def test_a_first_model_does_not_replace_one_made_current_while_it_trained(
    tiny_base, small_labels, tmp_path
):
    """Two first `train` runs at once: each began with no current model, so each may become
    current, but the one that ends second was never compared with the first and stays a
    challenger; a run told the model it may replace (`replacing`) still replaces it."""
    from service.registry import current_version

    first = train(_tiny_config(tiny_base, small_labels, tmp_path, "first", replacing=None))
    assert current_version(tmp_path) == first.name
    second = train(_tiny_config(tiny_base, small_labels, tmp_path, "second", replacing=None))
    assert (second / "bundle.json").is_file()
    assert current_version(tmp_path) == "first"
    third = train(_tiny_config(tiny_base, small_labels, tmp_path, "third", replacing="first"))
    assert current_version(tmp_path) == third.name
    assert "replacing" not in json.loads((third / "bundle.json").read_text())["hyperparameters"]
