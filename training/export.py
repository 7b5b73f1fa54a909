"""``cxthemes export-onnx``: a bundle's model as ONNX (fp32), attention fused by ONNX
Runtime's BERT optimizer, then dynamically quantized to int8 (per-channel QInt8 weights).

Both files go into ``<bundle>/onnx/`` together with how far the int8 model agrees with the
torch model (theme decisions and sentiment on the given texts, macro F1 on the test split),
recorded in ``bundle.json`` under ``onnx``. Written to ``onnx.partial``, checked there, and
renamed once the figures are recorded, so an interrupted export leaves no half-written or
unchecked model behind. The figures include the fingerprint of the weights the graphs were
made from: a graph is never served for other weights (``service/bundle.py``). One export (or
bf16 check) of a bundle runs at a time: a second fails at once (``lock_bundle``).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from service.backends import ONNX_DIR, ONNX_FP32, ONNX_INT8
from service.bundle import (
    WEIGHTS_FILE,
    Bundle,
    BundleError,
    export_matches_weights,
    load_bundle,
    lock_bundle,
    read_meta,
    weights_fingerprint,
    write_meta,
)
from service.predictor import Predictor
from training.precision import compare_with_torch, passes_gate

log = logging.getLogger(__name__)
OPSET = 17
# The fp32 graph is the torch model computed another way: probabilities match to ~1e-6.
FP32_MAX_PROB_DIFF = 1e-3
FP32_CHECK_TEXTS = 64


class _Exported(nn.Module):
    """The classifier with positional outputs, as ONNX wants them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_hidden=True)
        return out["theme_logits"], out["sentiment_logits"], out["hidden"]


def export_onnx(
    bundle_path: str | Path,
    check_texts: list[str] | None = None,
    check_items: list | None = None,
    int8: bool = True,
) -> dict:
    """Export, optimise and quantize; returns (and records) the agreement figures: decisions
    on ``check_texts``, and macro F1 of both backends on the labelled ``check_items``.
    ``int8=False`` skips the int8 graph and its check (about a minute): the fp32 graph alone,
    for CPUs where bf16 is served anyway or where int8 has failed its gate before.
    :class:`~service.bundle.BundleBusyError` if the bundle is being exported or checked."""
    root = Path(bundle_path)
    # Two exports at once each removed and rewrote the other's onnx.partial/.
    with lock_bundle(root):
        return _export_onnx(root, check_texts, check_items, int8)


def is_exported(bundle_path: str | Path, int8: bool = True) -> bool:
    """Whether the bundle already has a finished export with the graph wanted (int8, or fp32
    for ``int8=False``) made from its current weights: ``export-onnx --if-missing`` redoes an
    export for other weights (a retrained bundle copied over an exported folder)."""
    return export_matches_weights(bundle_path, ONNX_INT8 if int8 else ONNX_FP32)


def _export_onnx(
    root: Path, check_texts: list[str] | None, check_items: list | None, int8: bool
) -> dict:
    """:func:`export_onnx`, under the bundle's lock."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    # The weights the graphs are made from, fingerprinted before they are read.
    made_from = weights_fingerprint(root / WEIGHTS_FILE)
    bundle = load_bundle(root, backend="torch")
    config = bundle.model.encoder.config
    work = root / f"{ONNX_DIR}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = time.monotonic()
    sample = bundle.tokenizer(
        [bundle.meta.get("text_prefix", "") + t for t in ("hello", "a slightly longer text")],
        padding=True,
        return_tensors="pt",
    )
    raw = work / "raw.onnx"
    dynamic = {0: "batch", 1: "sequence"}
    _eager_attention(bundle.model.encoder)
    torch.onnx.export(
        _Exported(bundle.model).eval(),
        (sample["input_ids"], sample["attention_mask"]),
        str(raw),
        input_names=["input_ids", "attention_mask"],
        output_names=["theme_logits", "sentiment_logits", "hidden"],
        dynamic_axes={
            "input_ids": dynamic,
            "attention_mask": dynamic,
            "theme_logits": {0: "batch"},
            "sentiment_logits": {0: "batch"},
            "hidden": dynamic,
        },
        opset_version=OPSET,
        dynamo=False,  # the TorchScript exporter: no onnxscript needed, matches torch to ~1e-6
    )
    optimized = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    optimized.save_model_to_file(str(work / ONNX_FP32))
    fused = sum(n.op_type == "Attention" for n in optimized.model.graph.node)
    raw.unlink()
    if int8:
        quantize_dynamic(
            str(work / ONNX_FP32),
            str(work / ONNX_INT8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": 1},  # the fused graph leaves some types unknown
        )
    # Both graphs are checked where they were written: onnx/ only ever holds checked graphs,
    # so an interrupted export leaves nothing that `auto` would serve unchecked.
    # `auto` serves the fp32 graph wherever int8 and bf16 fail their gates, so it must be the
    # torch model, not merely a graph that loads: checked on a few texts, or not kept.
    parity_texts = (check_texts or [])[:FP32_CHECK_TEXTS] or ["hello", "太贵了，客服也不回", "ok"]
    parity = compare_with_torch(
        root,
        "onnx-fp32",
        "fp32",
        parity_texts,
        candidate=_graph_predictor(bundle, work / ONNX_FP32),
    )
    if parity["max_abs_theme_prob_diff"] > FP32_MAX_PROB_DIFF:
        shutil.rmtree(work)
        # An earlier export goes too, with its figures: bundle.json never describes graphs
        # that are not there, and the bundle is served by torch, which is always the model.
        _drop_export(root)
        raise BundleError(
            f"{root}: the exported fp32 graph does not match the torch model (theme "
            f"probabilities differ by up to {parity['max_abs_theme_prob_diff']}); not kept"
        )
    figures = {
        "opset": OPSET,
        "files": [f"{ONNX_DIR}/{ONNX_FP32}"] + ([f"{ONNX_DIR}/{ONNX_INT8}"] if int8 else []),
        "quantization": "dynamic, QInt8 per-channel weights" if int8 else "none (skipped)",
        "fused_attention_blocks": fused,
        "fp32_max_abs_theme_prob_diff": parity["max_abs_theme_prob_diff"],
        "export_seconds": round(time.monotonic() - started, 1),
        "weights": made_from,
    }
    if int8 and (check_texts or check_items):
        figures.update(
            compare_with_torch(
                root,
                "onnx-int8",
                "int8",
                check_texts or [],
                check_items,
                candidate=_graph_predictor(bundle, work / ONNX_INT8),
            )
        )
    # The int8 graph is served only if it keeps the torch model's decisions (>= 99% of texts)
    # and loses at most 0.01 macro F1; otherwise the exact fp32 graph is.
    figures["int8_accepted"] = int8 and passes_gate(figures, "int8", bool(check_items))
    # The old export goes first, then the figures are written, then the graphs move in: at
    # every step in between, `auto` finds no graph (torch) or the graphs the figures describe,
    # and `--if-missing` sees no finished export until both are there.
    _drop_export(root)
    meta = read_meta(root)
    meta["onnx"] = figures
    write_meta(root, meta)
    work.rename(root / ONNX_DIR)
    return figures


def _graph_predictor(bundle: Bundle, graph: Path) -> Predictor:
    """A predictor of ``bundle`` that runs the ONNX ``graph``, wherever it lies (the export
    checks its graphs before they move into the bundle's ``onnx/``)."""
    from service.backends.onnx_model import OnnxThemeClassifier

    model = OnnxThemeClassifier(graph, bundle.path / WEIGHTS_FILE)
    return Predictor(replace(bundle, model=model, backend="onnx"), evidence=False)


def _drop_export(root: Path) -> None:
    """Remove the bundle's ONNX figures from ``bundle.json``, then its ``onnx/`` folder."""
    meta = read_meta(root)
    if meta.pop("onnx", None) is not None:
        write_meta(root, meta)
    shutil.rmtree(root / ONNX_DIR, ignore_errors=True)


def _eager_attention(encoder: nn.Module) -> None:
    """Export attention as plain MatMul/Softmax. transformers 5 defaults to SDPA, whose
    exported masking (Where/IsNaN) ONNX Runtime's BERT optimizer cannot fuse; the fused
    Attention op is ~15% faster on these CPUs and equal to ~2e-5."""
    try:
        encoder.set_attn_implementation("eager")
    except (AttributeError, ValueError):  # older transformers or a custom encoder
        encoder.config._attn_implementation = "eager"
