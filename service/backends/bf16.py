"""bf16 inference with the PyTorch model, for CPUs that compute bf16 natively.

On CPUs with AVX512-BF16 or AMX, oneDNN runs bf16 matrix products at about twice the rate of
fp32. The model runs under CPU autocast: the linear layers and attention products in bf16,
layer norms, softmax and the loss-free heads' outputs in fp32. bf16 keeps a float's exponent,
so the outlier activation channels that defeat per-tensor int8 cost it nothing; it rounds
each value to 8 significant bits instead. Whether that keeps a model's decisions is measured
per bundle (``training/precision.py``); the backend is only chosen automatically where it
passed and the CPU has the instructions (without them bf16 is emulated and several times
slower than fp32).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name)() for name in checks)
    except AttributeError:  # a torch without these probes: read the CPU flags (Linux)
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            return False
        return any(flag in flags for flag in BF16_CPU_FLAGS)


class Bf16ThemeClassifier(nn.Module):
    """A :class:`~service.modeling.ThemeClassifier` run under CPU bf16 autocast; its outputs
    are fp32, and its ``theme_head`` (used for evidence spans) is the wrapped model's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        # Autocast would cast every encoder weight to bf16 on every call (a fifth of a small
        # batch's time, and a transient copy of the weights); cast them once instead. The
        # rounding is the same, so the outputs are identical. Layer norms and embeddings keep
        # fp32, as autocast runs them; the heads too (evidence spans call theme_head in fp32).
        for module in model.encoder.modules():
            if isinstance(module, nn.Linear):
                module.to(torch.bfloat16)
        self.model = model
        self.theme_head = model.theme_head

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor | bool) -> dict:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.model(*args, **kwargs)
        return {k: v.float() for k, v in out.items()}
