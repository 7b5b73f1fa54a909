"""Rebuild the real base model on the device from carried parts (non-embedding weights, and the
word-embedding rows of every labelled text's tokens; other rows are never read)."""

import lzma
import shutil
from pathlib import Path

import torch
from safetensors.torch import load, save_file

out = Path("/tmp/base")
out.mkdir(exist_ok=True)
with lzma.open(".gpu/w/rest.safetensors.xz") as fh:
    rest = load(fh.read())
with lzma.open(".gpu/w/emb_rows.safetensors.xz") as fh:
    emb = load(fh.read())
matrix = torch.zeros(250037, 384)
matrix[emb["ids"]] = emb["rows"]
save_file({"ids": emb["ids"]}, ".gpu/w/ids.safetensors")
save_file({**rest, "embeddings.word_embeddings.weight": matrix}, out / "model.safetensors")
for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "cxthemes_base.json"):
    shutil.copy(Path(".gpu/base") / f, out / f)
print("base rebuilt", len(rest) + 1, "tensors,", len(emb["ids"]), "embedding rows")
