"""Whether a faster backend keeps a bundle's decisions: the gate for int8 and bf16.

A faster backend is served only if it makes the fp32 torch model's theme decisions on at
least 99% of the frozen test texts and loses at most 0.01 macro F1 on them. The figures are
recorded in ``bundle.json``: under ``onnx`` for the int8 graph (``training/export.py``) and
under ``bf16`` for bf16 torch (:func:`check_bf16`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from service.bundle import read_meta, write_meta

MIN_AGREEMENT = 0.99
MAX_F1_LOSS = 0.01


def agreement(bundle_path: Path, texts: list[str], backend: str = "onnx-int8") -> dict:
    """How often ``backend`` makes the fp32 torch model's decisions on ``texts``."""
    from service.predictor import Predictor

    torch_p = Predictor.from_path(bundle_path, backend="torch", evidence=False)
    fast_p = Predictor.from_path(bundle_path, backend=backend, evidence=False)
    a_theme, a_sent = torch_p.predict_proba(texts)
    b_theme, b_sent = fast_p.predict_proba(texts)
    same_themes = ((a_theme >= torch_p.thresholds) == (b_theme >= fast_p.thresholds)).all(1)
    return {
        "n_check_texts": len(texts),
        "theme_decisions_agree": round(float(same_themes.mean()), 4),
        "sentiment_agrees": round(float((a_sent.argmax(1) == b_sent.argmax(1)).mean()), 4),
        "max_abs_theme_prob_diff": round(float(np.abs(a_theme - b_theme).max()), 4),
    }


def f1_both(
    bundle_path: Path, items: list, taxonomy, backend: str = "onnx-int8", name: str = "int8"
) -> dict:
    """Macro F1 and sentiment accuracy of the torch model and of ``backend`` (its figures
    suffixed ``name``) on the same labelled items."""
    from service.predictor import Predictor
    from training.train import evaluate_predictor

    result = {"f1_items": len(items)}
    for suffix, engine in (("torch", "torch"), (name, backend)):
        predictor = Predictor.from_path(bundle_path, backend=engine, evidence=False)
        report = evaluate_predictor(predictor, items, taxonomy)
        result[f"macro_f1_{suffix}"] = round(report["macro_f1"], 4)
        result[f"sentiment_accuracy_{suffix}"] = round(report["sentiment"]["accuracy"], 4)
    return result


def passes_gate(figures: dict, name: str, f1_checked: bool) -> bool:
    """The gate: decisions agree on >= 99% of the check texts and, where labelled items were
    given, macro F1 is at most 0.01 below the torch model's."""
    agree_ok = figures.get("theme_decisions_agree", 0.0) >= MIN_AGREEMENT
    f1_ok = (
        f"macro_f1_{name}" in figures
        # rounded: the figures have 4 decimals, and 0.80 - 0.79 is 0.010000000000000009
        and round(figures["macro_f1_torch"] - figures[f"macro_f1_{name}"], 6) <= MAX_F1_LOSS
    )
    return bool(agree_ok and (f1_ok or not f1_checked))


def check_bf16(
    bundle_path: str | Path,
    check_texts: list[str],
    check_items: list | None = None,
    taxonomy=None,
) -> dict:
    """Measure bf16 torch against fp32 torch on ``check_texts`` (and macro F1 on the labelled
    ``check_items``), record the figures under ``bf16`` in ``bundle.json`` and return them.
    ``accepted`` says whether it passed the gate; ``native_cpu`` whether the CPU that measured
    it computes bf16 natively (only then is it also faster)."""
    from service.backends.bf16 import cpu_has_native_bf16

    root = Path(bundle_path)
    if not check_texts:
        raise ValueError("the bf16 check needs texts to compare the two precisions on")
    started = time.monotonic()
    figures = {"autocast": "cpu bfloat16", **agreement(root, check_texts, backend="torch-bf16")}
    if check_items:
        figures.update(f1_both(root, check_items, taxonomy, backend="torch-bf16", name="bf16"))
    figures["accepted"] = passes_gate(figures, "bf16", bool(check_items))
    figures["native_cpu"] = cpu_has_native_bf16()
    figures["check_seconds"] = round(time.monotonic() - started, 1)
    meta = read_meta(root)
    meta["bf16"] = figures
    write_meta(root, meta)
    return figures
