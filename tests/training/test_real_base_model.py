"""One slower test: fine-tune the real multilingual-e5-small for a few steps."""

import pytest

from service.bundle import load_bundle
from service.predictor import Predictor
from training.train import TrainConfig, train


@pytest.mark.slow
def test_few_steps_on_real_base_model(base_model_dir, small_labels, tmp_path):
    path = train(
        TrainConfig(
            base_model=str(base_model_dir),
            labels=small_labels,
            models_dir=tmp_path,
            max_steps=4,
            batch_size=8,
            max_length=64,
            version="real-smoke",
            baselines=False,
        )
    )
    bundle = load_bundle(path)
    assert bundle.meta["text_prefix"] == "query: "
    assert bundle.meta["base_model"] == str(base_model_dir)
    predictor = Predictor(bundle)
    preds = predictor.predict(
        ["客服机器人一直听不懂，我要人工！", "The price is fair and delivery was quick."]
    )
    assert [p.model_version for p in preds] == ["real-smoke", "real-smoke"]
    assert all(0.0 <= s <= 1.0 for p in preds for s in p.scores.values())
