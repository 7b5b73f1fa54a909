"""load_bundle's torch path: the weights come from the file exactly, built without a second copy."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from service.bundle import (
    ENCODER_DIR,
    WEIGHTS_FILE,
    BundleError,
    load_bundle,
    read_meta,
    set_current,
)
from service.modeling import ThemeClassifier, load_encoder


def test_torch_model_holds_the_file_s_weights_and_its_own_buffers(tiny_bundle):
    model = load_bundle(tiny_bundle, backend="torch").model
    state = load_file(str(tiny_bundle / WEIGHTS_FILE))
    params = dict(model.named_parameters())
    assert params.keys() == state.keys()
    assert all(torch.equal(params[k], state[k]) for k in state)
    # Buffers the file does not carry are still built by the modules themselves.
    positions = model.encoder.embeddings.position_ids
    assert torch.equal(positions.flatten(), torch.arange(positions.numel()))


def test_torch_model_answers_as_a_conventionally_loaded_one(tiny_bundle):
    """Same logits as a model initialised normally and then given the file's weights."""
    meta = read_meta(tiny_bundle)
    reference = ThemeClassifier(
        load_encoder("", config=AutoConfig.from_pretrained(tiny_bundle / ENCODER_DIR)),
        n_themes=len(meta["theme_ids"]),
        n_sentiments=len(meta["sentiment_labels"]),
    )
    reference.load_state_dict(load_file(str(tiny_bundle / WEIGHTS_FILE)))
    bundle = load_bundle(tiny_bundle, backend="torch")
    enc = bundle.tokenizer(
        ["太贵了", "The agent never called back."], return_tensors="pt", padding=True
    )
    with torch.inference_mode():
        want = reference.eval()(enc["input_ids"], enc["attention_mask"])
        got = bundle.model(enc["input_ids"], enc["attention_mask"])
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_set_current_refuses_a_real_current_folder_and_leaves_no_temporary_link(tmp_path):
    models = tmp_path / "models"
    (models / "a").mkdir(parents=True)
    (models / "current").mkdir()
    with pytest.raises(BundleError, match="current is a directory, not a link; move it away"):
        set_current(models / "a", models)
    assert sorted(p.name for p in models.iterdir()) == ["a", "current"]


def test_set_current_uses_a_fresh_temporary_link_each_time(tmp_path, monkeypatch):
    """A fixed temporary name let two promotions remove or rename each other's link."""
    models = tmp_path / "models"
    (models / "a").mkdir(parents=True)
    (models / "b").mkdir()
    made = []
    real = os.replace

    def spy(src, dst):
        made.append(os.path.basename(src))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    set_current(models / "a", models)
    set_current(models / "b", models)
    assert len(set(made)) == 2 and all(name.startswith(".current.") for name in made)
    assert (models / "current").resolve() == (models / "b").resolve()
    assert os.readlink(models / "current") == "b"  # relative, so the folder can move


def test_onnx_without_an_export_names_the_setting_and_the_remedy(tiny_bundle):
    with pytest.raises(
        BundleError,
        match="CXTHEMES_BACKEND=onnx: bundle.json records no ONNX export; re-run cxthemes "
        "export-onnx, or set CXTHEMES_BACKEND=torch",
    ):
        load_bundle(tiny_bundle, backend="onnx")


def test_the_cheap_fingerprint_sees_a_change_of_the_heads_alone(tiny_bundle, tmp_path):
    """The heads lie at the end of the file (safetensors sorts them after encoder.*): a model
    retrained with a frozen encoder changes nothing else, and must not keep its graph."""
    from safetensors.torch import save_file

    from service.bundle import weights_fingerprint

    state = load_file(str(tiny_bundle / WEIGHTS_FILE))
    state["theme_head.bias"] = state["theme_head.bias"] + 1
    changed = tmp_path / WEIGHTS_FILE
    save_file(state, str(changed), metadata={"format": "pt"})
    before = weights_fingerprint(tiny_bundle / WEIGHTS_FILE, full=False)
    after = weights_fingerprint(changed, full=False)
    assert before["size"] == after["size"] and before["sample_sha256"] != after["sample_sha256"]
    assert "sha256" not in after  # the full hash is for the export and --if-missing only
