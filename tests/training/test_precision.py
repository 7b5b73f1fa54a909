"""The bf16 backend and the accuracy gate that decides whether a faster backend is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.backends import bf16 as bf16_backend
from service.bundle import BundleError, load_bundle
from service.predictor import Predictor
from service.taxonomy import load_taxonomy
from training.data import load_items, split_items
from training.precision import check_bf16, passes_gate


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    """A private copy: the bf16 figures written into it must not leak into other tests."""
    path = tmp_path / "tiny-bf16"
    shutil.copytree(tiny_bundle, path)
    return path


@pytest.fixture(scope="module")
def items(small_labels):
    return split_items(load_items([small_labels], load_taxonomy())[0])["test"]


def _meta(path: Path) -> dict:
    return json.loads((path / "bundle.json").read_text())


@pytest.mark.parametrize(
    ("figures", "f1_checked", "ok"),
    [
        ({"theme_decisions_agree": 0.99, "macro_f1_torch": 0.80, "macro_f1_x": 0.79}, True, True),
        ({"theme_decisions_agree": 0.9899, "macro_f1_torch": 0.8, "macro_f1_x": 0.8}, True, False),
        ({"theme_decisions_agree": 1.0, "macro_f1_torch": 0.80, "macro_f1_x": 0.789}, True, False),
        ({"theme_decisions_agree": 1.0}, True, False),  # F1 asked for but not measured
        ({"theme_decisions_agree": 0.995}, False, True),
        ({}, False, False),
    ],
)
def test_gate(figures, f1_checked, ok):
    assert passes_gate(figures, "x", f1_checked) is ok


def test_bf16_runs_in_bf16_and_answers_in_fp32(bundle, items):
    texts = [i.text for i in items]
    fp32 = Predictor.from_path(bundle, backend="torch", evidence=False)
    bf16 = Predictor.from_path(bundle, backend="torch-bf16", evidence=False)
    assert bf16.bundle.backend == "torch-bf16"
    a, a_sent = fp32.predict_proba(texts)
    b, b_sent = bf16.predict_proba(texts)
    assert b.dtype == np.float32 and b_sent.dtype == np.float32
    diff = np.abs(a - b)
    # bf16 keeps 8 significant bits: close to fp32, but not equal (it really ran in bf16).
    assert 0 < diff.max() < 0.05
    clear = np.abs(a - fp32.thresholds) > 0.03
    same = (a >= fp32.thresholds) == (b >= bf16.thresholds)
    assert clear.sum() > 50 and same[clear].mean() >= 0.99


def test_bf16_model_is_a_drop_in_for_the_torch_model(bundle):
    """Called like the torch model (positional or keyword), it answers the same keys, fp32."""
    torch_model = load_bundle(bundle, backend="torch").model
    bf16_model = load_bundle(bundle, backend="torch-bf16").model
    enc = load_bundle(bundle).tokenizer(["query: the price went up"], return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"])
    a = torch_model(*args, return_hidden=True)
    b = bf16_model(*args, return_hidden=True)
    c = bf16_model(input_ids=args[0], attention_mask=args[1], return_hidden=True)
    assert a.keys() == b.keys() == c.keys()
    assert all(v.dtype == a[k].dtype and v.shape == a[k].shape for k, v in b.items())
    assert all((v == c[k]).all() for k, v in b.items())


def test_bf16_evidence_comes_from_the_same_pass(bundle):
    text = "The app crashes daily. The price went up again. I want a human."
    row = Predictor.from_path(bundle, backend="torch-bf16").predict([text])[0]
    assert set(row.evidence) == set(row.themes)
    assert all(sentence in text for sentence in row.evidence.values())


def test_check_bf16_records_the_figures(bundle, items):
    texts = [i.text for i in items]
    figures = check_bf16(bundle, texts, check_items=items)
    recorded = _meta(bundle)["bf16"]
    assert recorded == figures
    assert figures["n_check_texts"] == len(texts) == figures["f1_items"]
    assert figures["accepted"] == passes_gate(figures, "bf16", True)
    assert figures["native_cpu"] == bf16_backend.cpu_has_native_bf16()
    assert abs(figures["macro_f1_torch"] - figures["macro_f1_bf16"]) < 0.05
    with pytest.raises(ValueError, match="needs texts"):
        check_bf16(bundle, [])


@pytest.mark.parametrize(
    ("accepted", "native", "expected"),
    [(True, True, "torch-bf16"), (True, False, "torch"), (False, True, "torch")],
)
def test_auto_serves_bf16_only_where_it_passed_and_is_native(
    bundle, monkeypatch, accepted, native, expected
):
    meta = _meta(bundle)
    meta["bf16"] = {"accepted": accepted}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    monkeypatch.setattr(bf16_backend, "cpu_has_native_bf16", lambda: native)
    assert load_bundle(bundle, backend="auto").backend == expected  # no ONNX export here


def test_an_accepted_int8_graph_comes_before_bf16(tiny_bundle, tmp_path, monkeypatch):
    from training.export import export_onnx

    path = tmp_path / "tiny-both"
    shutil.copytree(tiny_bundle, path)
    export_onnx(path)  # no check texts: int8 unmeasured, so not accepted; set below
    meta = _meta(path)
    meta["bf16"] = {"accepted": True}
    monkeypatch.setattr(bf16_backend, "cpu_has_native_bf16", lambda: True)
    for int8_ok, expected in ((True, "onnx"), (False, "torch-bf16")):
        meta["onnx"]["int8_accepted"] = int8_ok
        (path / "bundle.json").write_text(json.dumps(meta))
        assert load_bundle(path, backend="auto").backend == expected


def test_bf16_is_cpu_only(bundle):
    with pytest.raises(BundleError, match="CXTHEMES_BACKEND=torch-bf16: .*CPU only, not on cuda"):
        load_bundle(bundle, backend="torch-bf16", device="cuda")


def test_native_bf16_probe_matches_the_cpu_flags():
    flags = Path("/proc/cpuinfo")
    if not flags.is_file():
        pytest.skip("no /proc/cpuinfo on this system")
    words = flags.read_text().split()
    has_flag = any(f in words for f in ("avx512_bf16", "amx_bf16", "amx_tile"))
    assert bf16_backend.cpu_has_native_bf16() == has_flag


def test_export_command_adds_the_bf16_check_to_an_exported_bundle(
    tiny_bundle, small_labels, tmp_path, monkeypatch, request, capsys
):
    """`make model` runs `export-onnx --if-missing`: a bundle exported before the bf16 check
    existed gets the check, and its ONNX files are left as they are."""
    from service.backends import ONNX_DIR, ONNX_INT8
    from service.cli import main
    from service.core.config import get_settings

    models = tmp_path / "models"
    path = models / "tiny-cli"
    shutil.copytree(tiny_bundle, path)
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    monkeypatch.setenv("CXTHEMES_LABELS_DIR", str(small_labels.parent))
    get_settings.cache_clear()  # settings are read once per process
    request.addfinalizer(get_settings.cache_clear)

    assert main(["export-onnx", "--model", str(path), "--no-bf16", "--check-texts", "50"]) == 0
    assert "bf16" not in _meta(path) and "onnx" in _meta(path)
    int8 = path / ONNX_DIR / ONNX_INT8
    written = int8.stat().st_mtime_ns
    capsys.readouterr()

    assert main(["export-onnx", "--model", str(path), "--if-missing", "--check-texts", "50"]) == 0
    assert '"bf16"' in capsys.readouterr().out
    assert int8.stat().st_mtime_ns == written
    assert _meta(path)["bf16"]["n_check_texts"] == 50

    assert main(["export-onnx", "--model", str(path), "--if-missing"]) == 0
    assert "already has an ONNX export" in capsys.readouterr().out


def test_the_api_serves_bf16_from_auto_as_batch_scoring_does(bundle, monkeypatch):
    """Since the API loads its model on a thread that ends (service/fresh_thread.py), bf16
    runs as fast on its micro-batch thread as on a main thread: both pick it."""
    from service.api.main import load_predictor
    from service.core.config import Settings
    from service.predictor import predictor_options

    meta = _meta(bundle)
    meta["bf16"] = {"accepted": True}
    (bundle / "bundle.json").write_text(json.dumps(meta))
    monkeypatch.setattr(bf16_backend, "cpu_has_native_bf16", lambda: True)
    settings = Settings(model=str(bundle))
    assert load_predictor(settings).bundle.backend == "torch-bf16"
    batch = Predictor.from_path(bundle, **predictor_options(settings))
    assert batch.bundle.backend_detail == "torch-bf16"


def test_bf16_casts_the_encoder_weights_once_with_autocast_s_rounding(bundle, items):
    """The encoder's linear weights are stored in bf16 (no cast per call), the embeddings,
    layer norms and heads stay fp32, and the outputs equal autocast over fp32 weights."""
    import torch
    from torch import nn

    fp32 = load_bundle(bundle, backend="torch").model
    bf16 = load_bundle(bundle, backend="torch-bf16").model
    linears = [m for m in bf16.model.encoder.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    embeddings = bf16.model.encoder.get_input_embeddings()
    assert embeddings.weight.dtype == torch.float32
    assert bf16.theme_head.weight.dtype == torch.float32
    norms = [m for m in bf16.model.encoder.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)

    enc = load_bundle(bundle, backend="torch").tokenizer(
        [i.text for i in items[:16]], return_tensors="pt", padding=True
    )
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            want = fp32(enc["input_ids"], enc["attention_mask"])
        got = bf16(enc["input_ids"], enc["attention_mask"])
    for key in ("theme_logits", "sentiment_logits"):
        assert got[key].dtype == torch.float32
        assert torch.equal(got[key], want[key].float())
