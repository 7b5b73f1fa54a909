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


# -- which graph is served, and when none is -------------------------------------------------
@pytest.fixture(scope="module")
def exported_both(tiny_bundle, tmp_path_factory):
    """The tiny bundle with both graphs (int8 unmeasured, so not accepted); copy before use."""
    path = tmp_path_factory.mktemp("both") / "tiny-both"
    shutil.copytree(tiny_bundle, path)
    export_onnx(path)
    return path


def _copy(src, tmp_path, name="served"):
    path = tmp_path / name
    shutil.copytree(src, path)
    return path


def _retrain(path) -> None:
    """Replace the bundle's weights by others of the same architecture (so the same size)."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(path / "model.safetensors"))
    g = torch.Generator().manual_seed(1)
    state = {k: v + 0.5 * torch.randn(v.shape, generator=g) for k, v in state.items()}
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


def _meta(path) -> dict:
    return json.loads((path / "bundle.json").read_text())


def test_export_records_the_weights_it_was_made_from(exported_both):
    import hashlib

    from training.export import is_exported

    weights = (exported_both / "model.safetensors").read_bytes()
    made_from = _meta(exported_both)["onnx"]["weights"]
    assert made_from["size"] == len(weights)
    assert made_from["sha256"] == hashlib.sha256(weights).hexdigest()
    assert is_exported(exported_both) and is_exported(exported_both, int8=False)
    assert not (exported_both / ".export.lock").exists()


def test_a_retrained_bundle_copied_over_an_exported_one_is_not_served_the_old_graph(
    exported_both, tiny_bundle, tmp_path, caplog
):
    """`cp -r new/. served/`: the old onnx/ stays, bundle.json (no export) is the new one."""
    from service.bundle import BundleError

    new = _copy(tiny_bundle, tmp_path, "new")
    _retrain(new)
    served = _copy(exported_both, tmp_path)
    shutil.copytree(new, served, dirs_exist_ok=True)
    assert (served / ONNX_DIR / ONNX_FP32).is_file() and "onnx" not in _meta(served)
    with caplog.at_level("WARNING", logger="service.bundle"):
        assert load_bundle(served, backend="auto").backend == "torch"
    assert "records no ONNX export (the graphs in onnx/ are left" in caplog.text
    with pytest.raises(BundleError, match="CXTHEMES_BACKEND=onnx: bundle.json records no ONNX"):
        load_bundle(served, backend="onnx")
    from training.export import is_exported

    assert not is_exported(served, int8=False)


def test_a_graph_is_not_served_for_weights_replaced_since_its_export(
    exported_both, tmp_path, caplog
):
    """bundle.json keeps its export record, but model.safetensors is another model's."""
    from service.bundle import BundleError

    served = _copy(exported_both, tmp_path)
    size = (served / "model.safetensors").stat().st_size
    _retrain(served)
    assert (served / "model.safetensors").stat().st_size == size  # the size alone is not enough
    with caplog.at_level("WARNING", logger="service.bundle"):
        assert load_bundle(served, backend="auto").backend == "torch"
    assert "made from other weights than model.safetensors" in caplog.text
    with pytest.raises(BundleError, match="other weights.*re-run cxthemes export-onnx"):
        load_bundle(served, backend="onnx")
    from training.export import is_exported

    assert not is_exported(served) and not is_exported(served, int8=False)


def test_if_missing_redoes_an_export_made_for_other_weights(exported_both, tmp_path, capsys):
    from service.cli import main

    served = _copy(exported_both, tmp_path)
    _retrain(served)
    args = ["export-onnx", "--model", str(served), "--no-int8", "--no-bf16", "--check-texts", "0"]
    assert main([*args, "--if-missing"]) == 0
    assert "already has an ONNX export" not in capsys.readouterr().out
    assert load_bundle(served, backend="onnx").backend_detail == "onnx-fp32"


def test_auto_serves_torch_when_the_graph_is_corrupt(exported_both, tmp_path, caplog):
    from service.bundle import BundleError

    served = _copy(exported_both, tmp_path)
    data = (served / ONNX_DIR / ONNX_FP32).read_bytes()
    (served / ONNX_DIR / ONNX_FP32).write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="service.bundle"):
        bundle = load_bundle(served, backend="auto")
    assert bundle.backend == "torch" and bundle.model.__class__.__name__ == "ThemeClassifier"
    assert "cannot load onnx/model.onnx" in caplog.text and "serving the torch model" in caplog.text
    with pytest.raises(
        BundleError,
        match=r"CXTHEMES_BACKEND=onnx: cannot load onnx/model.onnx: .*; re-run cxthemes "
        r"export-onnx, or set CXTHEMES_BACKEND=torch",
    ):
        load_bundle(served, backend="onnx")


def test_auto_serves_torch_without_onnxruntime(exported_both, monkeypatch, caplog):
    import sys

    from service.bundle import BundleError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed, or fails to import
    with caplog.at_level("WARNING", logger="service.bundle"):
        assert load_bundle(exported_both, backend="auto").backend == "torch"
    assert "ModuleNotFoundError" in caplog.text
    with pytest.raises(BundleError, match="CXTHEMES_BACKEND=onnx: .*ModuleNotFoundError"):
        load_bundle(exported_both, backend="onnx")


def test_a_missing_accepted_int8_graph_falls_back_to_the_fp32_graph(
    exported_both, tmp_path, caplog
):
    served = _copy(exported_both, tmp_path)
    meta = _meta(served)
    meta["onnx"]["int8_accepted"] = True
    (served / "bundle.json").write_text(json.dumps(meta))
    (served / ONNX_DIR / ONNX_INT8).unlink()
    for backend in ("auto", "onnx"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="service.bundle"):
            assert load_bundle(served, backend=backend).backend_detail == "onnx-fp32"
        assert "model.int8.onnx is missing" in caplog.text


def test_onnx_is_refused_on_another_device_and_auto_picks_torch_there(exported_both):
    from service.bundle import BundleError, _auto_backend

    with pytest.raises(
        BundleError, match="CXTHEMES_BACKEND=onnx runs on the CPU only, not on cuda"
    ):
        load_bundle(exported_both, backend="onnx", device="cuda")
    assert _auto_backend(exported_both, _meta(exported_both), "cuda") == ("torch", None)


def test_a_second_export_of_the_same_bundle_fails_at_once(tiny_bundle, tmp_path):
    """Two exports at once each removed and rewrote the other's onnx.partial/."""
    from service.bundle import BundleBusyError, lock_bundle
    from training.precision import check_bf16

    path = _copy(tiny_bundle, tmp_path)
    before = _meta(path)
    with lock_bundle(path):  # another export is running (flock: per open file, so in-process)
        with pytest.raises(BundleBusyError, match="being exported or checked by another process"):
            export_onnx(path, int8=False)
        with pytest.raises(BundleBusyError):
            check_bf16(path, ["hello"])
    assert not (path / f"{ONNX_DIR}.partial").exists() and _meta(path) == before
    assert not (path / ".export.lock").exists()
    export_onnx(path, int8=False)  # the lock went with its holder
    assert "onnx" in _meta(path)
