"""The bf16 backend's attention over packed rows (service/backends/bf16.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from service.backends.bf16 import ROWS_ATTENTION, ROWS_ATTENTION_MAX_TOKENS, rows_attention
from service.bundle import load_bundle
from service.predictor import Predictor, can_pack


def _packed_inputs(seed: int = 0):
    """bf16 queries, keys and values (batch, heads, tokens, dim) and the boolean 4D mask of
    rows holding several texts each, with padding (-1) at the end."""
    torch.manual_seed(seed)
    segments = torch.tensor([[0] * 5 + [1] * 7 + [2] * 2 + [-1] * 2, [0] * 11 + [-1] * 5])
    mask = (segments[:, :, None] == segments[:, None, :]).unsqueeze(1)
    q, k, v = (torch.randn(2, 4, 16, 8).to(torch.bfloat16) for _ in range(3))
    return q, k, v, mask, segments


def _module() -> nn.Module:
    return nn.Module().eval()


def test_rows_attention_matches_exact_attention():
    """Within bf16 rounding of what fp32 attention gives on the same inputs and mask."""
    q, k, v, mask, _ = _packed_inputs()
    out, weights = rows_attention(_module(), q, k, v, mask)
    exact = torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=mask
    ).transpose(1, 2)
    assert weights is None
    assert out.dtype == torch.bfloat16 and out.shape == (2, 16, 4, 8)  # (batch, tokens, heads, dim)
    assert torch.isfinite(out.float()).all()  # padding attends to padding: no empty softmax
    torch.testing.assert_close(out.float(), exact, atol=3e-2, rtol=0)


def test_a_text_in_a_packed_row_sees_only_its_own_tokens():
    q, k, v, mask, segments = _packed_inputs()
    before, _ = rows_attention(_module(), q, k, v, mask)
    others = (segments != 0).unsqueeze(1).unsqueeze(-1)  # every token but the first text's
    k2 = torch.where(others, torch.randn_like(k.float()).to(k.dtype), k)
    v2 = torch.where(others, torch.randn_like(v.float()).to(v.dtype), v)
    after, _ = rows_attention(_module(), q, k2, v2, mask)
    first = segments == 0
    assert torch.equal(before[first], after[first])
    assert not torch.equal(before[~first], after[~first])  # the others did change


def test_other_inputs_go_to_sdpa_unchanged():
    """2D-mask (unpacked) batches, fp32 inputs and training use transformers' SDPA path."""
    q, k, v, mask, _ = _packed_inputs()
    q32, k32, v32 = q.float(), k.float(), v.float()
    ours, _ = rows_attention(_module(), q32, k32, v32, mask)
    theirs, _ = sdpa_attention_forward(_module(), q32, k32, v32, mask)
    assert torch.equal(ours, theirs)
    ours, _ = rows_attention(_module(), q, k, v, None)
    theirs, _ = sdpa_attention_forward(_module(), q, k, v, None)
    assert torch.equal(ours, theirs)


def test_long_rows_keep_the_fused_kernel():
    """Past ROWS_ATTENTION_MAX_TOKENS the fused kernel is the faster one (a long text alone
    in its row): the same bf16 inputs get SDPA's exact output."""
    torch.manual_seed(1)
    n = ROWS_ATTENTION_MAX_TOKENS + 8
    q, k, v = (torch.randn(1, 4, n, 8).to(torch.bfloat16) for _ in range(3))
    mask = torch.ones(1, 1, n, n, dtype=torch.bool)
    ours, _ = rows_attention(_module(), q, k, v, mask)
    theirs, _ = sdpa_attention_forward(_module(), q, k, v, mask)
    assert torch.equal(ours, theirs)
    short, _ = rows_attention(
        _module(), q[:, :, :16], k[:, :, :16], v[:, :, :16], mask[..., :16, :16]
    )
    fused, _ = sdpa_attention_forward(
        _module(), q[:, :, :16], k[:, :, :16], v[:, :, :16], mask[..., :16, :16]
    )
    assert not torch.equal(short, fused)  # short rows do take the plain products


def test_the_bf16_backend_packs_rows_with_its_own_attention(tiny_bundle):
    bf16 = load_bundle(tiny_bundle, backend="torch-bf16").model
    assert bf16.model.encoder.config._attn_implementation == ROWS_ATTENTION
    assert can_pack(bf16)
    # fp32 torch keeps SDPA, so its figures and the ONNX export are as before.
    assert load_bundle(tiny_bundle).model.encoder.config._attn_implementation == "sdpa"


def test_bf16_packed_rows_score_as_one_text_per_row(tiny_bundle):
    """The tiny bundle in bf16: packed rows (this attention) against one text per row (SDPA
    with a 2D mask) give the same decisions and nearly the same scores."""
    predictor = Predictor.from_path(tiny_bundle, backend="torch-bf16", batch_size=4)
    assert predictor._packs
    texts = [("word " * n).strip() for n in (1, 2, 3, 5, 8, 13, 21)]
    texts += ["Delivery took three weeks. The agent was rude. Prices went up."] * 2
    packed = predictor.predict(texts)
    predictor.pack_tokens, predictor._packs = 0, False
    alone = predictor.predict(texts)
    for p, a in zip(packed, alone, strict=True):
        assert p.scores == pytest.approx(a.scores, abs=2e-2)
        assert p.sentiment_scores == pytest.approx(a.sentiment_scores, abs=2e-2)
