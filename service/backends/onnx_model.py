"""The ONNX Runtime backend: a drop-in for ``ThemeClassifier`` at inference time.

The exported graph takes ``input_ids`` and ``attention_mask`` and returns the theme and
sentiment logits and the last hidden state (for the evidence spans). The theme head is also
kept as a small torch layer, read from the bundle's weights, so the predictor can score
sentence spans exactly as with the torch backend. The 470 MB fp32 torch model is never
loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from torch import nn


class OnnxThemeClassifier(nn.Module):
    """Runs the exported (int8) graph; same call signature and outputs as ThemeClassifier."""

    def __init__(
        self,
        onnx_path: Path,
        weights_path: Path,
        threads: int | None = None,
        spin_threads: bool = True,
    ) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        # As many intra-op threads as cores (2 here); more only contend.
        options.intra_op_num_threads = threads or torch.get_num_threads() or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads spin (busy-wait) by default. That is ~8% faster for batch
        # scoring, but in the API it burns the cores the event loop needs between
        # micro-batches (32 clients: 56-58 texts/s without against 20-49 with; RESULTS.md).
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spin_threads else "0"
        )
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        with safe_open(str(weights_path), "pt") as f:
            weight = f.get_tensor("theme_head.weight")
            bias = f.get_tensor("theme_head.bias")
        self.theme_head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.theme_head.weight.copy_(weight)
            self.theme_head.bias.copy_(bias)
        self.onnx_path = onnx_path
        self.eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        return_hidden: bool = False,
        **_: object,
    ) -> dict[str, torch.Tensor]:
        theme, sentiment, hidden = self.session.run(
            ["theme_logits", "sentiment_logits", "hidden"],
            {
                "input_ids": input_ids.numpy().astype(np.int64),
                "attention_mask": attention_mask.numpy().astype(np.int64),
            },
        )
        out = {
            "theme_logits": torch.from_numpy(theme),
            "sentiment_logits": torch.from_numpy(sentiment),
        }
        if return_hidden:
            out["hidden"] = torch.from_numpy(hidden)
        return out
