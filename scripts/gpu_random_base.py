"""Build base models with random weights on the device (the real weights are too big to carry):
the full e5-small shape (timing only) and a tiny 2-layer one (correctness)."""

import shutil
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

src = Path(sys.argv[1] if len(sys.argv) > 1 else "models/base/multilingual-e5-small")
for name, overrides in [
    ("full", {}),
    (
        "tiny",
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    ),
]:
    out = Path("/tmp") / name
    out.mkdir(exist_ok=True)
    config = BertConfig.from_pretrained(src)
    for k, v in overrides.items():
        setattr(config, k, v)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json", "cxthemes_base.json"):
        shutil.copy(src / f, out / f)
    print(name, sum(p.numel() for p in BertModel.from_pretrained(out).parameters()))
