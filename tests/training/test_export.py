"""ONNX export and the int8 backend on the tiny model: the fp32 graph matches torch, the int8
model makes the same decisions wherever a score is not right at its threshold."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from service.backends import ONNX_DIR, ONNX_FP32, ONNX_INT8
from service.bundle import load_bundle
from service.predictor import Predictor
from service.taxonomy import load_taxonomy
from training.data import load_items
from training.export import export_onnx


@pytest.fixture(scope="module")
def exported(tiny_bundle, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    shutil.copytree(tiny_bundle, path)
    return path


@pytest.fixture(scope="module")
def texts(small_labels):
    items, _ = load_items([small_labels], load_taxonomy())
    return [i.text for i in items][:400]


def test_export_records_files_and_agreement(exported, texts):
    figures = export_onnx(exported, texts)
    assert (exported / ONNX_DIR / ONNX_FP32).is_file() and (
        exported / ONNX_DIR / ONNX_INT8
    ).is_file()
    assert not (exported / f"{ONNX_DIR}.partial").exists()
    meta = json.loads((exported / "bundle.json").read_text())
    assert meta["onnx"]["n_check_texts"] == len(texts)
    # Every layer's attention is one fused ONNX Runtime Attention op (eager export).
    assert figures["fused_attention_blocks"] == 2
    assert meta["onnx"]["sentiment_agrees"] >= 0.95
    assert figures["max_abs_theme_prob_diff"] < 0.05
    assert figures["fp32_max_abs_theme_prob_diff"] <= 1e-4  # the fp32 graph is the model
    # int8 is half the size or less (the embedding matrix dominates the tiny model too)
    int8 = (exported / ONNX_DIR / ONNX_INT8).stat().st_size
    assert int8 < 0.5 * (exported / ONNX_DIR / ONNX_FP32).stat().st_size


def test_fp32_graph_matches_torch(exported, texts):
    import onnxruntime as ort

    bundle = load_bundle(exported, backend="torch")
    enc = bundle.tokenizer(["query: " + t for t in texts[:16]], padding=True, return_tensors="pt")
    expected = bundle.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    session = ort.InferenceSession(str(exported / ONNX_DIR / ONNX_FP32))
    theme, sentiment, _ = session.run(
        None,
        {"input_ids": enc["input_ids"].numpy(), "attention_mask": enc["attention_mask"].numpy()},
    )
    assert np.abs(theme - expected["theme_logits"].detach().numpy()).max() < 1e-4
    assert np.abs(sentiment - expected["sentiment_logits"].detach().numpy()).max() < 1e-4


def test_int8_decisions_agree_away_from_thresholds(exported, texts):
    torch_p = Predictor.from_path(exported, backend="torch", evidence=False)
    onnx_p = Predictor.from_path(exported, backend="onnx-int8", evidence=False)
    assert onnx_p.bundle.backend == "onnx"
    a, _ = torch_p.predict_proba(texts)
    b, _ = onnx_p.predict_proba(texts)
    # The tiny model's scores crowd around its thresholds, so compare the decisions that are
    # not a rounding error away from flipping; the real model's figure is in its bundle.json.
    clear = np.abs(a - torch_p.thresholds) > 0.03
    same = (a >= torch_p.thresholds) == (b >= onnx_p.thresholds)
    assert clear.sum() > 100 and same[clear].mean() >= 0.99


def test_the_int8_gate_picks_the_graph(exported):
    meta = json.loads((exported / "bundle.json").read_text())
    chosen = load_bundle(exported, backend="onnx").model.onnx_path.name
    assert chosen == (ONNX_INT8 if meta["onnx"]["int8_accepted"] else ONNX_FP32)
    graph = "onnx-int8" if meta["onnx"]["int8_accepted"] else "onnx-fp32"
    assert load_bundle(exported, backend="onnx").backend_detail == graph
    meta["onnx"]["int8_accepted"] = False
    (exported / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(exported, backend="onnx").model.onnx_path.name == ONNX_FP32
    assert load_bundle(exported, backend="onnx-int8").model.onnx_path.name == ONNX_INT8


def test_auto_backend_and_evidence_on_onnx(exported):
    predictor = Predictor.from_path(exported, backend="auto")
    assert predictor.bundle.backend == "onnx"
    row = predictor.predict(["The app crashes daily. The price went up again. I want a human."])[0]
    assert set(row.evidence) == set(row.themes)
    assert all(
        s in "The app crashes daily. The price went up again. I want a human."
        for s in row.evidence.values()
    )


def test_api_sessions_sleep_when_idle_and_batch_sessions_spin(exported):
    """Spinning intra-op threads took the CPU the API's event loop needs between batches;
    batch scoring keeps them, since it is faster with them."""
    from service.api.main import load_predictor
    from service.core.config import Settings
    from service.predictor import predictor_options

    def spinning(predictor: Predictor) -> str:
        options = predictor.bundle.model.session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    settings = Settings(model=str(exported), backend="onnx")
    api = load_predictor(settings)
    assert spinning(api) == "0"
    assert api.batch_size == settings.api_batch_size
    assert spinning(Predictor.from_path(exported, **predictor_options(settings))) == "1"


def test_export_without_int8(tiny_bundle, tmp_path, capsys):
    """`export-onnx --no-int8`: the fp32 graph only, recorded as such, and served by `onnx`."""
    from service.cli import main

    path = tmp_path / "fp32-only"
    shutil.copytree(tiny_bundle, path)
    args = ["export-onnx", "--model", str(path), "--no-int8", "--no-bf16", "--check-texts", "0"]
    assert main(args) == 0
    assert (path / ONNX_DIR / ONNX_FP32).is_file()
    assert not (path / ONNX_DIR / ONNX_INT8).exists()
    onnx = json.loads((path / "bundle.json").read_text())["onnx"]
    assert onnx["files"] == [f"{ONNX_DIR}/{ONNX_FP32}"] and onnx["int8_accepted"] is False
    assert load_bundle(path, backend="onnx").backend_detail == "onnx-fp32"
    capsys.readouterr()
    assert main([*args, "--if-missing"]) == 0
    assert "already has an ONNX export" in capsys.readouterr().out


def _fail_the_fp32_check(monkeypatch) -> None:
    """Make export's check find the fp32 graph 0.2 away from the torch model."""
    import training.export as export

    real = export.compare_with_torch

    def off_by_a_lot(root, backend, name, texts, *args, **kwargs):
        figures = real(root, backend, name, texts, *args, **kwargs)
        return {**figures, "max_abs_theme_prob_diff": 0.2} if backend == "onnx-fp32" else figures

    monkeypatch.setattr(export, "compare_with_torch", off_by_a_lot)


def test_an_fp32_graph_that_does_not_match_torch_is_not_kept(tiny_bundle, tmp_path, monkeypatch):
    """`auto` serves the fp32 graph where int8 and bf16 fail: it is checked at export."""
    path = tmp_path / "mismatch"
    shutil.copytree(tiny_bundle, path)
    _fail_the_fp32_check(monkeypatch)
    from service.bundle import BundleError

    with pytest.raises(BundleError, match="does not match the torch model"):
        export_onnx(path, int8=False)
    assert not (path / ONNX_DIR).exists()
    assert "onnx" not in json.loads((path / "bundle.json").read_text())


def _previous_export(path, meta_figures: bool) -> None:
    """Leave ``path`` as an earlier export did: a graph file in onnx/, and its figures in
    bundle.json if ``meta_figures``."""
    (path / ONNX_DIR).mkdir()
    (path / ONNX_DIR / ONNX_FP32).write_bytes(b"an older graph")
    if meta_figures:
        meta = json.loads((path / "bundle.json").read_text())
        meta["onnx"] = {"files": [f"{ONNX_DIR}/{ONNX_FP32}"], "int8_accepted": False}
        (path / "bundle.json").write_text(json.dumps(meta))


def test_an_interrupted_export_leaves_no_unchecked_graph(tiny_bundle, tmp_path, monkeypatch):
    """Killed while the int8 graph was checked, an export left both graphs in onnx/ and no
    figures: `auto` served a graph no check had passed."""
    import training.export as export

    path = tmp_path / "interrupted"
    shutil.copytree(tiny_bundle, path)
    real = export.compare_with_torch

    def killed_at_the_int8_check(root, backend, *args, **kwargs):
        if backend == "onnx-int8":
            raise KeyboardInterrupt
        return real(root, backend, *args, **kwargs)

    monkeypatch.setattr(export, "compare_with_torch", killed_at_the_int8_check)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(path, ["hello", "the price went up"])
    assert not (path / ONNX_DIR).exists()
    assert "onnx" not in json.loads((path / "bundle.json").read_text())
    assert load_bundle(path, backend="auto").backend == "torch"


def test_if_missing_redoes_an_export_whose_figures_were_never_recorded(
    tiny_bundle, tmp_path, capsys
):
    from service.cli import main

    path = tmp_path / "unrecorded"
    shutil.copytree(tiny_bundle, path)
    _previous_export(path, meta_figures=False)
    args = ["export-onnx", "--model", str(path), "--no-int8", "--no-bf16", "--check-texts", "0"]
    assert main([*args, "--if-missing"]) == 0
    assert "already has an ONNX export" not in capsys.readouterr().out
    assert "onnx" in json.loads((path / "bundle.json").read_text())
    assert load_bundle(path, backend="onnx").backend_detail == "onnx-fp32"


def test_a_failed_re_export_leaves_no_stale_figures(tiny_bundle, tmp_path, monkeypatch):
    """The re-export's fp32 graph fails its check: the old export goes with its figures (it
    came from the same exporter), so bundle.json never describes graphs that are not there."""
    from service.bundle import BundleError

    path = tmp_path / "re-export"
    shutil.copytree(tiny_bundle, path)
    _previous_export(path, meta_figures=True)
    _fail_the_fp32_check(monkeypatch)
    with pytest.raises(BundleError, match="does not match the torch model"):
        export_onnx(path, int8=False)
    assert not (path / ONNX_DIR).exists() and not (path / f"{ONNX_DIR}.partial").exists()
    assert "onnx" not in json.loads((path / "bundle.json").read_text())
