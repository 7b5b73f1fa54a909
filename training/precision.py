"""Whether a faster backend keeps a bundle's decisions: the gate for int8 and bf16.

A faster backend is served only if it makes the fp32 torch model's theme decisions on at
least 99% of the frozen test texts and loses at most 0.01 macro F1 on them. The figures are
recorded in ``bundle.json``: under ``onnx`` for the int8 graph (``training/export.py``) and
under ``bf16`` for bf16 torch (:func:`check_bf16`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.bundle import lock_bundle, read_meta, write_meta

if TYPE_CHECKING:
    from service.predictor import Predictor

MIN_AGREEMENT = 0.99
MAX_F1_LOSS = 0.01


def compare_with_torch(
    bundle_path: Path,
    backend: str,
    name: str,
    texts: list[str],
    items: list | None = None,
    candidate: Predictor | None = None,
) -> dict:
    """How often ``backend`` makes the fp32 torch model's decisions on ``texts`` and, given
    labelled ``items``, macro F1 and sentiment accuracy of both (``backend``'s figures
    suffixed ``name``). Each backend is loaded once; when the items are the texts (as
    ``export-onnx`` gives them), they are predicted once. ``candidate``: the backend already
    loaded (an ONNX graph not yet moved into the bundle), instead of loading ``backend``."""
    from service.predictor import Predictor
    from training.train import decide, evaluate_predictor

    engines = {"torch": Predictor.from_path(bundle_path, backend="torch", evidence=False)}
    engines[name] = candidate or Predictor.from_path(bundle_path, backend=backend, evidence=False)
    scores = {k: p.predict_proba(texts) for k, p in engines.items()} if texts else {}
    figures: dict = {}
    if texts:
        (a_theme, a_sent), (b_theme, b_sent) = scores["torch"], scores[name]
        same = (
            decide(engines["torch"], a_theme, a_sent)[0]
            == decide(engines[name], b_theme, b_sent)[0]
        ).all(1)
        figures = {
            "n_check_texts": len(texts),
            "theme_decisions_agree": round(float(same.mean()), 4),
            "sentiment_agrees": round(float((a_sent.argmax(1) == b_sent.argmax(1)).mean()), 4),
            "max_abs_theme_prob_diff": round(float(np.abs(a_theme - b_theme).max()), 4),
        }
    if items:
        reuse = [i.text for i in items] == texts
        figures["f1_items"] = len(items)
        for suffix, predictor in engines.items():
            decisions = decide(predictor, *scores[suffix]) if reuse else None
            report = evaluate_predictor(predictor, items, decisions)
            figures[f"macro_f1_{suffix}"] = round(report["macro_f1"], 4)
            figures[f"sentiment_accuracy_{suffix}"] = round(report["sentiment"]["accuracy"], 4)
    return figures


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
) -> dict:
    """Measure bf16 torch against fp32 torch on ``check_texts`` (and macro F1 on the labelled
    ``check_items``), record the figures under ``bf16`` in ``bundle.json`` and return them.
    ``accepted`` says whether it passed the gate; ``native_cpu`` whether the CPU that measured
    it computes bf16 natively (only then is it also faster). One check or export of a bundle
    at a time: :class:`~service.bundle.BundleBusyError` if another is running."""
    from service.backends.bf16 import cpu_has_native_bf16

    root = Path(bundle_path)
    if not check_texts:
        raise ValueError("the bf16 check needs texts to compare the two precisions on")
    # bundle.json is read, changed and rewritten: not while an export rewrites it too.
    with lock_bundle(root):
        started = time.monotonic()
        figures = {
            "autocast": "cpu bfloat16",
            **compare_with_torch(root, "torch-bf16", "bf16", check_texts, check_items),
        }
        figures["accepted"] = passes_gate(figures, "bf16", bool(check_items))
        figures["native_cpu"] = cpu_has_native_bf16()
        figures["check_seconds"] = round(time.monotonic() - started, 1)
        meta = read_meta(root)
        meta["bf16"] = figures
        write_meta(root, meta)
    return figures
