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
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# The attention the bf16 encoder runs: plain bf16 products for packed rows, SDPA otherwise.
ROWS_ATTENTION = "cxthemes_bf16_rows"
# Up to this many tokens per row the plain products beat the fused kernel (8-16 rows x 12
# heads in bf16: 0.5x its time at 64 tokens, 0.65x at 96, but 1.5x at 128 and beyond).
ROWS_ATTENTION_MAX_TOKENS = 96


def rows_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """Attention over packed rows (a boolean 4D mask, see ``Predictor``) in plain bf16:
    scores, softmax and the weighted sum as three products. PyTorch's fused CPU kernel
    (flash attention) is tuned for long sequences; on rows of 64 tokens it took 16% of a
    micro-batch's time, twice what these products take, and the bf16 student scores 6-9%
    more texts/s this way. Its decisions on the 1,411 test texts agree with fp32 on 99.50%
    (99.72% with the fused kernel; bench/RESULTS.md). Anything else (rows longer than
    ROWS_ATTENTION_MAX_TOKENS, 2D masks, fp32 inputs, training) goes to transformers' SDPA
    attention unchanged."""
    if (
        attention_mask is None
        or attention_mask.dtype != torch.bool
        or attention_mask.dim() != 4
        or query.dtype != torch.bfloat16
        or query.size(-2) > ROWS_ATTENTION_MAX_TOKENS
        or module.training
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    with torch.autocast("cpu", enabled=False):  # autocast would run the softmax in fp32
        scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scaling)
        scores.masked_fill_(attention_mask.logical_not(), float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), value)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ROWS_ATTENTION, rows_attention)
AttentionMaskInterface.register(ROWS_ATTENTION, sdpa_mask)  # 2D masks become SDPA's masks


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
        if getattr(model.encoder.config, "_attn_implementation", None) == "sdpa":
            try:
                model.encoder.set_attn_implementation(ROWS_ATTENTION)
            except (AttributeError, ValueError):  # an encoder without the setter
                model.encoder.config._attn_implementation = ROWS_ATTENTION
        self.model = model
        self.theme_head = model.theme_head

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor | bool) -> dict:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.model(*args, **kwargs)
        return {k: v.float() for k, v in out.items()}
