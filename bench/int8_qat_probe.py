"""Does quantization-aware fine-tuning make the int8 graph decide like the fp32 one?

    .venv/bin/python bench/int8_qat_probe.py MODEL TEXTS EPOCHS LR

An experiment, not part of training. The model is fine-tuned for EPOCHS over TEXTS texts
(training split and labels/unlabelled, shuffled) with ONNX Runtime's dynamic int8 rounding
simulated in its Linear layers (``bench/int8_sensitivity.py``'s ``w8a8``, with
straight-through gradients), against its own fp32 outputs from before: both the simulated-int8
and the plain forward pass are pulled towards them. Printed: on the dev split, how often the
simulated int8 model makes all 9 theme decisions of the fp32 one, before and after, and how
far the fine-tuning moved the fp32 decisions.
"""

from __future__ import annotations

import copy
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.int8_sensitivity import fake_quant_activation, fake_quant_weight  # noqa: E402


class QuantAwareLinear(nn.Module):
    """A Linear layer that simulates int8 weights and activations while ``quantize`` is on,
    with straight-through gradients."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear
        self.quantize = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize:
            return self.linear(x)
        w = self.linear.weight
        w = w + (fake_quant_weight(w.detach()) - w).detach()
        x = x + (fake_quant_activation(x.detach(), per_token=False) - x).detach()
        return nn.functional.linear(x, w, self.linear.bias)


def prepare(encoder: nn.Module) -> None:
    for name, child in list(encoder.named_modules()):
        if isinstance(child, nn.Linear):
            parent, attr = name.rsplit(".", 1)
            setattr(encoder.get_submodule(parent), attr, QuantAwareLinear(child))


def set_quantize(encoder: nn.Module, on: bool) -> None:
    for module in encoder.modules():
        if isinstance(module, QuantAwareLinear):
            module.quantize = on


def main() -> None:
    from service.bundle import load_bundle
    from service.taxonomy import load_taxonomy
    from training import data

    model_dir = Path(sys.argv[1])
    n_train = int(sys.argv[2])
    epochs = float(sys.argv[3])
    lr = float(sys.argv[4])
    torch.set_num_threads(2)
    torch.manual_seed(0)
    random.seed(0)
    bundle = load_bundle(model_dir, backend="torch")
    model = bundle.model.eval()
    tok = bundle.tokenizer
    prefix = bundle.meta.get("text_prefix", "")
    thresholds = np.array([bundle.meta["thresholds"][t] for t in bundle.theme_ids])
    taxonomy = load_taxonomy(ROOT / "labels" / "taxonomy.yaml")
    items, _ = data.load_items(data.find_label_files(ROOT / "labels" / "data"), taxonomy)
    splits = data.split_items(items)
    dev = [i.text for i in splits["dev"]]
    pool = [i.text for i in splits["train"]]
    for f in sorted((ROOT / "labels" / "unlabelled").glob("*.jsonl")):
        pool += [json.loads(line)["text"] for line in f.open() if line.strip()]
    random.shuffle(pool)
    train = pool[:n_train]

    def enc(texts):
        return tok(
            [prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )

    @torch.no_grad()
    def run(m, texts, quant):
        set_quantize(m.encoder, quant)
        th = np.zeros((len(texts), len(thresholds)))
        se = np.zeros((len(texts), 3))
        order = np.argsort([len(t) for t in texts])
        for s in range(0, len(order), 32):
            idx = order[s : s + 32]
            e = enc([texts[j] for j in idx])
            o = m(input_ids=e["input_ids"], attention_mask=e["attention_mask"])
            th[idx] = torch.sigmoid(o["theme_logits"]).numpy()
            se[idx] = torch.softmax(o["sentiment_logits"], -1).numpy()
        return th, se

    def report(m, label):
        f_th, f_se = run(m, dev, False)
        q_th, q_se = run(m, dev, True)
        agree = ((f_th >= thresholds) == (q_th >= thresholds)).all(1).mean()
        sent = (f_se.argmax(1) == q_se.argmax(1)).mean()
        print(
            f"{label}: dev int8-sim agreement {agree:.1%}, sentiment {sent:.1%}, "
            f"max diff {np.abs(f_th - q_th).max():.3f}",
            flush=True,
        )
        return f_th

    prepare(model.encoder)
    ref_dev = report(model, "before")
    # targets: the model's own fp32 outputs
    t_th, t_se = run(model, train, False)
    student = copy.deepcopy(model)
    params = [
        p for n, p in student.named_parameters() if p.requires_grad and "word_embeddings" not in n
    ]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    order = np.argsort([len(t) for t in train])
    batches = [order[s : s + 16] for s in range(0, len(order), 16)]
    steps = int(len(batches) * epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, 1 - k / max(steps, 1)))
    started = time.time()
    for step in range(steps):
        idx = batches[random.randrange(len(batches))]
        e = enc([train[j] for j in idx])
        th = torch.as_tensor(t_th[idx], dtype=torch.float32)
        se = torch.as_tensor(t_se[idx], dtype=torch.float32)
        loss = 0.0
        for quant in (True, False):
            set_quantize(student.encoder, quant)
            o = student(input_ids=e["input_ids"], attention_mask=e["attention_mask"])
            loss = (
                loss
                + torch.nn.functional.binary_cross_entropy_with_logits(
                    o["theme_logits"], th, reduction="none"
                )
                .sum(-1)
                .mean()
            )
            loss = loss + 2.0 * torch.nn.functional.cross_entropy(o["sentiment_logits"], se)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(
                f"step {step}/{steps} loss {loss.item():.4f} {time.time() - started:.0f}s",
                flush=True,
            )
    f_th = report(student, "after")
    drift = ((f_th >= thresholds) == (ref_dev >= thresholds)).all(1).mean()
    print(f"after vs before (fp32): dev decisions agree {drift:.1%}")


if __name__ == "__main__":
    main()
