import torch
from torch import nn
from transformers import BertConfig, BertModel

from service.modeling import ThemeClassifier, mean_pool, segment_mean_pool


def _model():
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
    )
    return ThemeClassifier(BertModel(config, add_pooling_layer=False), n_themes=4, n_sentiments=3)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 2.0]]))


def test_segment_mean_pool_averages_each_text_of_packed_rows():
    hidden = torch.tensor([[[1.0], [3.0], [10.0], [7.0]], [[5.0], [0.0], [0.0], [0.0]]])
    segments = torch.tensor([[0, 0, 1, -1], [2, -1, -1, -1]])  # -1: padding, left out
    pooled = segment_mean_pool(hidden, segments, 3)
    assert torch.equal(pooled, torch.tensor([[2.0], [10.0], [5.0]]))


def test_packed_rows_give_the_logits_of_texts_run_alone():
    """Two texts in one row, kept apart by a 4D mask and restarted positions, get the
    logits each gets alone in a row of its own."""
    torch.manual_seed(0)
    model = _model().eval()
    model.encoder.config._attn_implementation = "sdpa"
    a, b = torch.tensor([[5, 6, 7, 8, 9]]), torch.tensor([[11, 12, 13]])
    alone = [model(input_ids=t, attention_mask=torch.ones_like(t)) for t in (a, b)]
    segments = torch.tensor([[0] * 5 + [1] * 3])
    packed = model(
        input_ids=torch.cat([a, b], 1),
        attention_mask=(segments[:, :, None] == segments[:, None, :]).unsqueeze(1),
        position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]]),
        segment_ids=segments,
    )
    for k, single in enumerate(alone):
        for key in ("theme_logits", "sentiment_logits"):
            torch.testing.assert_close(packed[key][k], single[key][0], atol=1e-5, rtol=1e-5)


def test_theme_bias_starts_at_prior_log_odds():
    model = _model()
    model.init_theme_bias([0.5, 0.1, 0.9, 0.0])
    assert torch.allclose(
        torch.sigmoid(model.theme_head.bias)[:3], torch.tensor([0.5, 0.1, 0.9]), atol=1e-5
    )


def test_set_encoder_dropout():
    model = _model()
    model.set_encoder_dropout(0.0)
    assert all(m.p == 0.0 for m in model.encoder.modules() if isinstance(m, nn.Dropout))
    assert model.encoder.config.hidden_dropout_prob == 0.0
    assert model.dropout.p == 0.1  # the head's own dropout is separate


def test_freezing_counts_and_stops_gradients():
    model = _model()
    frozen = model.freeze_embeddings() + model.freeze_lower_layers(2)
    assert frozen == sum(p.numel() for p in model.parameters() if not p.requires_grad) > 0
    assert all(p.requires_grad for p in model.encoder.encoder.layer[2].parameters())
    ids = torch.randint(5, 50, (2, 6))
    out = model(ids, torch.ones_like(ids), torch.ones(2, 4), torch.tensor([0, 2]))
    out["loss"].backward()
    assert model.encoder.encoder.layer[0].attention.self.query.weight.grad is None
    assert model.encoder.encoder.layer[2].attention.self.query.weight.grad is not None
