"""load_bundle's torch path: the weights come from the file exactly, built without a second copy."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from service.bundle import ENCODER_DIR, WEIGHTS_FILE, load_bundle, read_meta
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
