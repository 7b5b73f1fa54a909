"""The cxthemes command line: labels check, score, evaluate, and clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

from service.cli import main
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
