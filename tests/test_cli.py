"""The cxthemes command line: labels check, score, evaluate, and clear errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main
from service.core.config import get_settings
from tests.conftest import LABELS, read_jsonl


def test_labels_check_passes_on_the_repository_data(capsys):
    assert main(["labels", "check", "--labels", str(LABELS)]) == 0
    out = capsys.readouterr().out
    assert "labels check passed" in out and "privacy_data" in out and "splits:" in out


def test_labels_check_fails_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {"id": "1", "text": "ok text", "lang": "en", "themes": [], "sentiment": "neutral"}
        )
        + "\n"
        + json.dumps(
            {"id": "2", "text": "other", "lang": "en", "themes": ["bogus"], "sentiment": "neutral"}
        )
        + "\n"
    )
    assert main(["labels", "check", "--labels", str(bad)]) == 1
    assert f"{bad}:2: unknown theme ids ['bogus']" in capsys.readouterr().err


def test_score_command(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "1", "text": "Great price"}\n{"id": "2", "text": ""}\n')
    assert (
        main(
            [
                "score",
                str(src),
                "-o",
                str(tmp_path / "out.jsonl"),
                "--model",
                str(tiny_bundle),
                "-q",
            ]
        )
        == 0
    )
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["1"]
    err = capsys.readouterr().err
    assert "row 2: empty text" in err and "scored 1 rows" in err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "1", "text": "x"}\n')
    code = main(
        ["score", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tmp_path / "nope")]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_evaluate_json(tiny_bundle, small_labels, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_bundle),
                "--labels",
                str(small_labels),
                "--json",
                "--no-baselines",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["model_version"] == "tiny-test" and "model" in result["metrics"]
    assert set(result["metrics"]["model"]["per_theme"]) == set(result["theme_ids"])


def test_freeze_splits_refuses_to_move_frozen_splits(tmp_path, capsys):
    out = tmp_path / "splits.tsv"
    out.write_text("# frozen\n")
    assert main(["labels", "freeze-splits", "--out", str(out)]) == 2
    assert "must not move" in capsys.readouterr().err
    assert out.read_text() == "# frozen\n"


def test_freeze_splits_writes_a_manifest(small_labels, tmp_path):
    out = tmp_path / "splits.tsv"
    assert main(["labels", "freeze-splits", "--labels", str(small_labels), "--out", str(out)]) == 0
    rows = [line.split("\t") for line in out.read_text().splitlines() if not line.startswith("#")]
    assert len(rows) > 100
    assert {split for _, split in rows} == {"train", "dev", "test"}


def test_distill_command_names_a_missing_unlabelled_file(tiny_bundle, tmp_path, capsys):
    missing = tmp_path / "feedback.csv"
    code = main(["distill", "--teacher", str(tiny_bundle), "--unlabelled", str(missing)])
    assert code == 2 and f"{missing}: no such file" in capsys.readouterr().err


def test_distill_command_trains_a_student(
    tiny_bundle, small_labels, tmp_path, capsys, monkeypatch, request
):
    from service.core.config import get_settings

    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    get_settings.cache_clear()  # settings are read once per process
    request.addfinalizer(get_settings.cache_clear)
    unlabelled = []
    for k in range(2):  # two files after one --unlabelled, as a shell glob gives them
        path = tmp_path / f"feedback_{k}.csv"
        path.write_text("text\n" + "".join(f"text {k} {n}\n" for n in range(5)), "utf-8")
        unlabelled.append(str(path))
    code = main(
        [
            "distill",
            "--teacher",
            str(tiny_bundle),
            "--also-teacher",  # the same model averaged with itself: a valid ensemble
            str(tiny_bundle),
            "--labels",
            str(small_labels),
            "--unlabelled",
            *unlabelled,
            "--layers",
            "1",
            "--ffn",
            "24",
            "--max-steps",
            "2",
            "--version",
            "cli-student",
            "--no-current",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "student bundle:" in out and "cli-student" in out
    assert "## Distillation" in out
    meta = json.loads((tmp_path / "models" / "cli-student" / "bundle.json").read_text("utf-8"))
    assert meta["distillation"]["unlabelled_texts"] == 10
    assert meta["distillation"]["student_ffn"] == 24
    assert meta["distillation"]["extra_teachers"] == ["tiny-test"]


def test_distill_if_missing_skips_only_when_a_student_of_those_layers_exists(
    tiny_bundle, tmp_path, capsys, monkeypatch, request
):
    """`make student` runs `distill --if-missing`: it must distil once, then do nothing, also
    once its student is current (a student of the student would lose more)."""
    from service.registry import set_current_version
    from training import distill

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    calls = []
    monkeypatch.setattr(distill, "distill", lambda config: calls.append(config) or None)

    def student(name: str, layers_kept: list[int]) -> None:
        shutil.copytree(tiny_bundle, models / name)
        meta_file = models / name / "bundle.json"
        meta = json.loads(meta_file.read_text("utf-8"))
        meta["version"] = name
        meta["distillation"] = {"teacher": "teacher", "layers_kept": layers_kept}
        meta_file.write_text(json.dumps(meta), "utf-8")

    shutil.copytree(tiny_bundle, models / "teacher")
    meta_file = models / "teacher" / "bundle.json"
    meta_file.write_text(
        json.dumps(json.loads(meta_file.read_text("utf-8")) | {"version": "teacher"}), "utf-8"
    )
    set_current_version(models, "teacher", "train")
    student("teacher-student2", [0, 1])  # other layers: does not count

    assert main(["distill", "--if-missing", "--layers", "1"]) == 0
    assert len(calls) == 1 and calls[0].student_layers == 1

    student("teacher-student1", [1])
    assert main(["distill", "--if-missing", "--layers", "1"]) == 0
    out = capsys.readouterr().out
    assert "teacher-student1 is already a 1-layer student of it (a challenger" in out
    assert "not distilling" in out and len(calls) == 1
    assert main(["distill", "--layers", "1"]) == 0  # without the flag it distils again
    assert len(calls) == 2

    set_current_version(models, "teacher-student1", "promote")
    assert main(["distill", "--if-missing", "--layers", "2"]) == 0
    assert "teacher-student1 is itself a student (of teacher)" in capsys.readouterr().out
    assert len(calls) == 2


def test_freeze_splits_add_new_records_only_the_missing_items(small_labels, tmp_path, capsys):
    out = tmp_path / "splits.tsv"
    args = ["labels", "freeze-splits", "--labels", str(small_labels), "--out", str(out)]
    assert main([*args, "--add-new"]) == 2  # nothing frozen yet
    assert "freeze the splits first" in capsys.readouterr().err
    assert main(args) == 0
    rows = out.read_text().splitlines()
    out.write_text("\n".join(rows[:-10]) + "\n")  # as if the last 10 items came later
    assert main([*args, "--add-new"]) == 0
    assert "10 new items" in capsys.readouterr().out
    after = dict(r.split("\t") for r in out.read_text().splitlines()[1:])
    before = dict(r.split("\t") for r in rows[1:])
    assert after.keys() == before.keys()  # the 10 are back (with their hash split)
    assert all(after[k] == s for k, s in list(before.items())[:-10])  # the others did not move


def test_the_cli_caps_onednn_primitive_cache_unless_the_operator_set_it(monkeypatch):
    import os

    import pytest

    from service.cli import ONEDNN_CACHE_DEFAULT

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    with pytest.raises(SystemExit):  # set before the arguments are even parsed
        main(["--version-that-does-not-exist"])
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == ONEDNN_CACHE_DEFAULT
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
    with pytest.raises(SystemExit):
        main(["--version-that-does-not-exist"])
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8"


def test_serve_shortens_openmp_spinning_unless_the_operator_set_it(monkeypatch):
    from service.cli import SERVE_GOMP_SPINCOUNT, set_serving_environment

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    set_serving_environment()
    assert os.environ["GOMP_SPINCOUNT"] == SERVE_GOMP_SPINCOUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "123")
    set_serving_environment()
    assert os.environ["GOMP_SPINCOUNT"] == "123"


def test_serve_sets_its_environment_before_torch_is_imported():
    # libgomp reads GOMP_SPINCOUNT once, when torch loads it: `serve` must get there first.
    code = (
        "import sys, service.cli as c; "
        "c.set_serving_environment = lambda: print('torch' in sys.modules) or sys.exit(0); "
        "c.main(['serve', '--port', '1']); print('not called')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "False"


def test_score_applies_the_torch_threads_setting(tiny_bundle, tmp_path, monkeypatch, capsys):
    import torch

    from service.predictor import Predictor

    seen = []
    predict = Predictor.predict

    def spy(self, texts, langs=None):
        seen.append(torch.get_num_threads())
        return predict(self, texts, langs)

    monkeypatch.setattr(Predictor, "predict", spy)
    from service.core.config import get_settings

    monkeypatch.setenv("CXTHEMES_TORCH_THREADS", "1")
    get_settings.cache_clear()  # read once per process; this test changes the environment
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,Slow app\n", encoding="utf-8")
    before = torch.get_num_threads()
    try:
        code = main(["score", str(src), "--model", str(tiny_bundle), "-q"])
    finally:
        torch.set_num_threads(before)
        monkeypatch.delenv("CXTHEMES_TORCH_THREADS")
        get_settings.cache_clear()
    assert code == 0, capsys.readouterr().err
    assert seen and set(seen) == {1}


def test_db_rebuild_rollup_restores_deleted_rollup_rows(tmp_path, monkeypatch, request, capsys):
    from sqlalchemy import delete, select

    from service.core.config import get_settings
    from service.predictor import Prediction
    from service.store import RecordInput, Store
    from service.store.tables import daily_counts

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", url)
    get_settings.cache_clear()  # settings are read once per process
    request.addfinalizer(get_settings.cache_clear)
    store = Store.open(url)
    themes = ["pricing_value", "human_support"]
    items = [
        RecordInput(
            id=f"t-{k}",
            text="some feedback",
            prediction=Prediction(
                themes=themes[: k % 3],
                scores={t: 0.9 for t in themes},
                sentiment="negative",
                sentiment_scores={"negative": 0.8, "neutral": 0.1, "positive": 0.1},
                needs_review=k == 0,
                evidence={},
                model_version="m-1",
                lang="en",
                review_reasons=[],
            ),
            metadata={"channel": "chat", "created_at": f"2026-11-0{k + 1}T09:00:00Z"},
        )
        for k in range(4)
    ]
    store.record(items, "1")

    def rollup() -> list[tuple]:
        with store.engine.connect() as c:
            return sorted(tuple(r) for r in c.execute(select(daily_counts)).all())

    before = rollup()
    assert before
    with store.engine.begin() as c:
        c.execute(delete(daily_counts))
    assert rollup() == []
    assert main(["db", "rebuild-rollup"]) == 0
    assert f"{len(before)} rows from 4 recorded items" in capsys.readouterr().out
    assert rollup() == before
    store.close()


def test_db_rebuild_rollup_refuses_a_store_without_schema(tmp_path, monkeypatch, request, capsys):
    from service.core.config import get_settings

    monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    assert main(["db", "rebuild-rollup"]) == 2
    assert "db upgrade" in capsys.readouterr().err


def _environment(monkeypatch, request, **values: str) -> None:
    """Set CXTHEMES_* settings for one test (settings are read once per process)."""
    from service.core.config import get_settings

    for key, value in values.items():
        monkeypatch.setenv(f"CXTHEMES_{key.upper()}", value)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith(f"cxthemes {command}: error: "), err
    return err


def test_base_model_builds_nothing_for_a_hub_id(tmp_path, monkeypatch, request, capsys):
    """A folder named like the id would hide the hub model from every later load."""
    monkeypatch.chdir(tmp_path)
    _environment(monkeypatch, request, base_model="xlm-roberta-base")
    assert main(["base-model", "--if-missing"]) == 0
    assert "nothing to build" in capsys.readouterr().out
    assert not (tmp_path / "xlm-roberta-base").exists()


def test_labels_check_fails_without_items_and_reads_a_byte_order_mark(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["labels", "check", "--labels", str(empty)]) == 1
    assert "no labelled items" in capsys.readouterr().err
    bom = tmp_path / "bom.jsonl"
    row = {"id": "b1", "text": "too pricey", "lang": "en", "themes": [], "sentiment": "negative"}
    bom.write_text(json.dumps(row) + "\n", encoding="utf-8-sig")
    assert main(["labels", "check", "--labels", str(bom)]) == 0


def test_freeze_splits_refuses_unavailable_texts_even_with_force(
    small_labels, tmp_path, monkeypatch, capsys
):
    """Frozen without them, the texts of a missing corpus package never get a stratified
    split; `labels check` fails on them too."""
    from training.corpora import TextResolver

    out = tmp_path / "splits.tsv"
    out.write_text("# frozen\n")
    monkeypatch.setattr(TextResolver, "available", lambda self, source: False)
    args = ["labels", "freeze-splits", "--labels", str(small_labels), "--out", str(out)]
    assert main([*args, "--force"]) == 2
    assert "unavailable" in _one_line_error(capsys, "labels")
    assert out.read_text() == "# frozen\n"


def test_evaluate_says_which_repeated_texts_it_evaluated_once(
    tiny_bundle, small_labels, tmp_path, capsys
):
    data = tmp_path / "dups.jsonl"
    rows = [
        {"id": f"d{k}", "text": text, "lang": "en", "themes": [], "sentiment": "neutral"}
        for k, text in enumerate(["hello there", "good morning", "Hello  there"])
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["evaluate", "--model", str(tiny_bundle), "--labels", str(small_labels)]
    assert main([*args, "--data", str(data), "--no-baselines", "--json"]) == 0
    captured = capsys.readouterr()
    assert f"{data}:3: duplicate text (first: {data}:1)" in captured.err
    assert f"1 repeated texts in {data} were evaluated once" in captured.err
    assert json.loads(captured.out)["n"] == 2


def test_evaluate_finds_the_base_model_of_a_bundle_trained_elsewhere(
    tiny_bundle, tiny_base, small_labels, tmp_path, monkeypatch, request, capsys
):
    """The bundle records its base model as training named it, relative to where it ran:
    the zero-shot baseline falls back to the setting, and else says which model is missing."""
    bundle = tmp_path / "relbase"
    shutil.copytree(tiny_bundle, bundle)
    meta = json.loads((bundle / "bundle.json").read_text())
    meta["base_model"] = "models/base/not-here"
    (bundle / "bundle.json").write_text(json.dumps(meta))
    lines = small_labels.read_text().splitlines(keepends=True)
    labels, data = tmp_path / "labels.jsonl", tmp_path / "few.jsonl"
    labels.write_text("".join(lines[::8]))  # the baselines train on these: few, to be quick
    data.write_text("".join(lines[:5]))
    args = ["evaluate", "--model", str(bundle), "--labels", str(labels), "--data", str(data)]
    monkeypatch.chdir(tmp_path)
    _environment(monkeypatch, request, base_model=str(tiny_base))
    assert main([*args, "--json"]) == 0
    assert "zero_shot" in json.loads(capsys.readouterr().out)["metrics"]
    _environment(monkeypatch, request, base_model=str(tmp_path / "missing"))
    assert main(args) == 2
    assert f"cannot load the base model {tmp_path / 'missing'}" in _one_line_error(
        capsys, "evaluate"
    )


def test_read_only_store_commands_do_not_create_a_missing_sqlite_file(
    tmp_path, monkeypatch, request, capsys
):
    typo = tmp_path / "nodir" / "a.db"
    _environment(monkeypatch, request, database_url=f"sqlite:///{typo}")
    assert main(["db", "current"]) == 2
    assert f"no metrics store at {typo}" in _one_line_error(capsys, "db")
    assert main(["review", "export", "-o", str(tmp_path / "tasks.json")]) == 2
    assert f"no metrics store at {typo}" in _one_line_error(capsys, "review")
    assert not typo.parent.exists()


def test_store_errors_are_one_line_without_the_password(tmp_path, monkeypatch, request, capsys):
    _environment(monkeypatch, request, database_url="postgresql://u:s3cret@127.0.0.1:1/x")
    for command in (["db", "current"], ["db", "upgrade"]):
        assert main(command) == 2
        err = _one_line_error(capsys, "db")
        assert "OperationalError" in err and "s3cret" not in err and "u:***@" in err
    _environment(monkeypatch, request, database_url=f"sqlite:///{tmp_path / 'store.db'}")
    assert main(["db", "upgrade", "bogus"]) == 2
    assert "Can't locate revision identified by 'bogus'" in _one_line_error(capsys, "db")


def test_negative_counts_are_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written, and surely not into the repository
    for args in (
        ["review", "export", "-o", "x.json", "--limit", "-1"],
        ["export-onnx", "--check-texts", "-5"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        assert "must be at least" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_os_error_is_one_line_naming_the_path(tmp_path, capsys):
    """Any OSError (here: a folder where a file should be), not only FileNotFoundError."""
    second = tmp_path / "second.jsonl"
    second.write_text('{"id": "1", "themes": [], "sentiment": "neutral"}\n')
    assert main(["labels", "agreement", "--first", str(tmp_path), "--second", str(second)]) == 2
    assert f"Is a directory: '{tmp_path}'" in _one_line_error(capsys, "labels")


def test_models_compare_names_an_empty_data_file(small_labels, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = ["models", "compare", "a", "b", "--labels", str(small_labels), "--data", str(empty)]
    assert main(args) == 2
    assert f"{empty}: no labelled items to compare on" in _one_line_error(capsys, "models")


def test_train_names_a_base_model_folder_that_is_no_model_and_a_missing_labels_folder(
    tiny_base, small_labels, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    try:
        empty = tmp_path / "emptybase"
        empty.mkdir()
        args = ["train", "--max-steps", "1", "--no-baselines", "--version", "v1"]
        assert main([*args, "--base-model", str(empty), "--labels", str(small_labels)]) == 2
        err = capsys.readouterr().err
        assert "is not a model folder (no config.json)" in err and "sentencepiece" not in err
        missing = tmp_path / "labls"  # a typo
        assert main([*args, "--base-model", str(tiny_base), "--labels", str(missing)]) == 2
        assert f"labels folder {missing} does not exist" in capsys.readouterr().err
        assert main(["labels", "check", "--labels", str(missing)]) == 2
        assert "does not exist" in capsys.readouterr().err
        assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("command", ["train", "distill"])
@pytest.mark.parametrize(
    "option", [["--epochs", "0"], ["--epochs", "-2"], ["--epochs", "nan"], ["--batch-size", "0"]]
)
def test_training_options_that_would_train_nothing_are_refused(command, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, *option])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"cxthemes {command}: error: argument {option[0]}: must be" in err


def test_training_options_accept_a_fraction_of_an_epoch():
    from service.cli import build_parser

    args = build_parser().parse_args(["train", "--epochs", "0.5", "--batch-size", "1"])
    assert args.epochs == 0.5 and args.batch_size == 1


def test_an_interrupted_command_is_one_line_and_exit_130(monkeypatch, capsys):
    import service.cli

    def interrupted(args, settings):
        raise KeyboardInterrupt  # Ctrl-C

    monkeypatch.setattr(service.cli, "cmd_train", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "cxthemes train: interrupted; nothing was written\n"


def test_a_store_failure_while_recording_is_one_line_without_the_stored_values(
    tiny_bundle, tmp_path, monkeypatch, request, capsys
):
    """Not SQLAlchemy's traceback, whose message lists the bound ``[parameters: ...]``: ids,
    metadata and (with store_text) the masked texts."""
    import sqlite3

    from service.store import Store

    db = tmp_path / "store.db"
    Store.open(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as con:  # a failure that is not a DataError (no StoreValueError)
        con.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON feedback BEGIN SELECT RAISE(ABORT, 'refused'); "
            "END"
        )
    con.close()
    _environment(monkeypatch, request, database_url=f"sqlite:///{db}", store_text="true")
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "idsecret-7", "text": "Textsecret pricing rant", "segment": "Segsecret"})
        + "\n"
    )
    args = ["score", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_bundle)]
    assert main([*args, "--record", "-q"]) == 2
    err = _one_line_error(capsys, "score")
    assert "IntegrityError" in err and "refused" in err
    for value in ("idsecret", "Textsecret", "Segsecret", "parameters"):
        assert value not in err
