"""Why the int8 graph fails its accuracy gate: simulated quantization schemes, in torch.

    .venv/bin/python bench/int8_sensitivity.py [--model M] [--split dev] [SCHEME ...]

Each scheme replaces the encoder's Linear layers by fake-quantized ones and reports how often
the theme decisions of all 9 themes agree with the fp32 model (the export gate wants 99%),
the sentiment agreement and the largest theme-probability difference, on the labelled
``--split`` (dev by default, so the frozen test split is not used for choosing). Schemes:

- ``w8a8``: what ``quantize_dynamic`` does: int8 per-output-channel weights, activations
  uint8 per tensor with a dynamic range (one scale for the whole batch)
- ``w8``: weights only (activations stay fp32)
- ``a8``: activations only
- ``w8a8-token``: activations int8 per token (one scale per row)
- ``smooth0.5``, ``smooth0.75``: ``w8a8`` after SmoothQuant (per-channel activation scales
  migrated into the weights, alpha 0.5 / 0.75, calibrated on 512 training texts)
- ``token-smooth0.75``: both
- ``layer<K>``: ``w8a8`` on layer K only (the others stay fp32)
- ``only:<a>,<b>``: ``w8a8`` on the Linear layers whose name contains ``<a>`` or ``<b>``
  (e.g. ``only:output.dense``: the attention output and FFN output projections, whose inputs
  do not come straight from a LayerNorm)
- ``except:<a>,<b>``: ``w8a8`` on every Linear layer except those whose name contains
  ``<a>`` or ``<b>``
- ``outliers<K>``: ``w8a8``, except that in each Linear layer the K input channels with the
  largest calibrated magnitude stay fp32 (a static LLM.int8()-style decomposition: those
  channels are taken out of the tensor before its one dynamic range is measured, and their
  product with the fp32 weight columns is added back)
- ``snapped:<scheme>``: ``<scheme>`` against a reference whose fp32 weights already lie on
  the int8 grid (the same scheme with activations left in fp32), as if the bundle's weights
  had been rounded to int8 before it was exported. Also printed: how often that reference
  decides like the original model, and its dev macro F1.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fake_quant_activation(x: torch.Tensor, per_token: bool) -> torch.Tensor:
    """Quantize and dequantize ``x``: uint8 with one dynamic range per tensor (ONNX
    Runtime's DynamicQuantizeLinear), or symmetric int8 per token."""
    if per_token:
        scale = x.abs().amax(-1, keepdim=True).clamp(min=1e-8) / 127
        return torch.clamp(torch.round(x / scale), -127, 127) * scale
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = ((hi - lo) / 255.0).clamp(min=1e-12)
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (QInt8 per-channel)."""
    scale = w.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
    return torch.round(w / scale) * scale


class FakeQuantLinear(torch.nn.Module):
    def __init__(
        self, linear, weights: bool, acts: bool, per_token: bool, smooth=None, keep=None
    ) -> None:
        super().__init__()
        w = linear.weight.data.clone()
        if smooth is not None:
            w = w * smooth[None, :]
        self.keep = keep  # input channels kept in fp32 (see ``outliers<K>``)
        if keep is not None:
            self.kept_weight = w[:, keep].clone()
            w[:, keep] = 0.0  # their int8 share is zero; their fp32 product is added back
        self.weight = fake_quant_weight(w) if weights else w
        self.bias = linear.bias.data.clone()
        self.acts, self.per_token, self.smooth = acts, per_token, smooth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smooth is not None:
            x = x / self.smooth
        kept = None
        if self.keep is not None:
            kept = x[..., self.keep] @ self.kept_weight.T
            x = x.index_fill(-1, self.keep, 0.0)
        if self.acts:
            x = fake_quant_activation(x, self.per_token)
        y = torch.nn.functional.linear(x, self.weight, self.bias)
        return y if kept is None else y + kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--split", default="dev", choices=["dev", "test"])
    parser.add_argument(
        "schemes", nargs="*", default=["w8a8", "w8", "a8", "w8a8-token", "smooth0.75"]
    )
    args = parser.parse_args()

    from sklearn.metrics import f1_score

    from service.bundle import load_bundle, resolve_model_path
    from service.taxonomy import load_taxonomy
    from training import data

    torch.set_num_threads(2)
    path = resolve_model_path(args.model, ROOT / "models")
    bundle = load_bundle(path, backend="torch")
    base = bundle.model.eval()
    thresholds = np.array([bundle.meta["thresholds"][t] for t in bundle.theme_ids])
    prefix = bundle.meta.get("text_prefix", "")
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.yaml")
    items, _ = data.load_items(data.find_label_files(ROOT / "labels" / "data"), taxonomy)
    splits = data.split_items(items)
    texts = [i.text for i in splits[args.split]]
    calibration = [i.text for i in splits["train"][:512]]

    def run(model, batch_texts):
        themes = np.zeros((len(batch_texts), len(thresholds)))
        sentiment = np.zeros(len(batch_texts), dtype=int)
        order = np.argsort([len(t) for t in batch_texts])
        with torch.no_grad():
            for start in range(0, len(order), 32):
                idx = order[start : start + 32]
                enc = bundle.tokenizer(
                    [prefix + batch_texts[j] for j in idx],
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                )
                out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                themes[idx] = torch.sigmoid(out["theme_logits"]).numpy()
                sentiment[idx] = out["sentiment_logits"].argmax(-1).numpy()
        return themes, sentiment

    def agreement(a: np.ndarray, b: np.ndarray) -> float:
        return ((a >= thresholds) == (b >= thresholds)).all(1).mean()

    def macro(themes: np.ndarray) -> float:
        return f1_score(gold, themes >= thresholds, average="macro", zero_division=0)

    act_max: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in base.encoder.named_modules():
        if isinstance(module, torch.nn.Linear):

            def record(mod, inputs, output, name=name):
                x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
                act_max[name] = torch.maximum(act_max.get(name, x), x)

            hooks.append(module.register_forward_hook(record))
    run(base, calibration)
    for hook in hooks:
        hook.remove()

    def quantized(scheme: str, acts: bool = True):
        model = copy.deepcopy(base)
        per_token = "token" in scheme
        weights = scheme != "a8"
        acts = acts and scheme != "w8"
        alpha = float(scheme.split("smooth")[1]) if "smooth" in scheme else None
        only = int(scheme.removeprefix("layer")) if scheme.startswith("layer") else None
        names = scheme.removeprefix("only:").split(",") if scheme.startswith("only:") else None
        n_keep = 0
        if scheme.startswith("outliers"):  # outliers<K>[/except:<a>,<b>]
            head, _, scheme = scheme.partition("/")
            n_keep = int(head.removeprefix("outliers"))
        skip = scheme.removeprefix("except:").split(",") if scheme.startswith("except:") else []
        for name, module in list(model.encoder.named_modules()):
            if not isinstance(module, torch.nn.Linear):
                continue
            if only is not None and f"layer.{only}." not in name:
                continue
            if names is not None and not any(part in name for part in names):
                continue
            if any(part in name for part in skip):
                continue
            smooth = None
            if alpha is not None:
                w_max = module.weight.abs().amax(0).clamp(min=1e-5)
                smooth = (act_max[name].clamp(min=1e-5) ** alpha / w_max ** (1 - alpha)).clamp(
                    min=1e-5
                )
            keep = torch.topk(act_max[name], n_keep).indices if n_keep else None
            parent, attr = name.rsplit(".", 1)
            setattr(
                model.encoder.get_submodule(parent),
                attr,
                FakeQuantLinear(module, weights, acts, per_token, smooth, keep),
            )
        return model

    gold = data.theme_matrix(splits[args.split], list(bundle.theme_ids))
    base_themes, base_sentiment = run(base, texts)
    print(f"{path.name}, {len(texts)} {args.split} texts, macro F1 {macro(base_themes):.4f}\n")
    print(
        "| scheme | theme decisions agree | sentiment agrees | max prob diff "
        "| reference vs original | reference macro F1 |"
    )
    print("|---|---|---|---|---|---|")
    for scheme in args.schemes:
        ref_themes, ref_sentiment, vs_original, ref_f1 = base_themes, base_sentiment, "", ""
        if scheme.startswith("snapped:"):
            scheme = scheme.removeprefix("snapped:")
            ref_themes, ref_sentiment = run(quantized(scheme, acts=False), texts)
            vs_original = f"{agreement(ref_themes, base_themes):.1%}"
            ref_f1 = f"{macro(ref_themes):.4f}"
        themes, sentiment = run(quantized(scheme), texts)
        print(
            f"| {scheme} | {agreement(themes, ref_themes):.1%} | "
            f"{(sentiment == ref_sentiment).mean():.1%} | "
            f"{np.abs(themes - ref_themes).max():.3f} | {vs_original} | {ref_f1} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
