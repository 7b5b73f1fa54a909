"""The classifier: a transformer encoder, mean pooling, a multi-label theme head and a
3-way sentiment head, trained and run in one forward pass."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each sequence, ignoring padding (e5's pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def segment_mean_pool(
    hidden: torch.Tensor, segment_ids: torch.Tensor, n_segments: int
) -> torch.Tensor:
    """Average the token vectors of each segment of packed rows: ``segment_ids`` gives each
    token's segment (0 to ``n_segments - 1``), or -1 for padding."""
    flat_ids = segment_ids.reshape(-1)
    keep = flat_ids >= 0
    flat = hidden.reshape(-1, hidden.shape[-1])[keep]
    sums = flat.new_zeros((n_segments, flat.shape[-1])).index_add_(0, flat_ids[keep], flat)
    counts = torch.bincount(flat_ids[keep], minlength=n_segments).clamp(min=1)
    return sums / counts.unsqueeze(-1).to(sums.dtype)


def load_encoder(name_or_path: str, config: PretrainedConfig | None = None) -> PreTrainedModel:
    """Load an encoder by Hugging Face id or path (or build it empty from ``config``).

    The pooler is dropped where the architecture allows: e5 ships without its weights and
    the classifier mean-pools instead.
    """
    kwargs = {"add_pooling_layer": False}
    try:
        if config is not None:
            return AutoModel.from_config(config, **kwargs)
        return AutoModel.from_pretrained(name_or_path, **kwargs)
    except TypeError:  # architectures without a pooler option
        if config is not None:
            return AutoModel.from_config(config)
        return AutoModel.from_pretrained(name_or_path)


class ThemeClassifier(nn.Module):
    """Encoder + mean pooling + theme (sigmoid, one per theme) and sentiment (softmax) heads."""

    def __init__(
        self,
        encoder: PreTrainedModel,
        n_themes: int,
        n_sentiments: int,
        dropout: float = 0.1,
        sentiment_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.theme_head = nn.Linear(hidden, n_themes)
        self.sentiment_head = nn.Linear(hidden, n_sentiments)
        self.sentiment_loss_weight = sentiment_loss_weight

    def heads(self) -> nn.ModuleList:
        """The two output layers (trained with a higher learning rate than the encoder)."""
        return nn.ModuleList([self.theme_head, self.sentiment_head])

    @torch.no_grad()
    def init_theme_bias(self, prevalence) -> None:
        """Start each theme's bias at the log-odds of its training prevalence."""
        p = torch.as_tensor(prevalence, dtype=self.theme_head.bias.dtype).clamp(1e-3, 1 - 1e-3)
        self.theme_head.bias.copy_(torch.log(p / (1 - p)))

    def set_encoder_dropout(self, p: float) -> None:
        """Set every dropout inside the encoder to ``p`` (any architecture)."""
        for module in self.encoder.modules():
            if isinstance(module, nn.Dropout):
                module.p = p
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"):
            if hasattr(self.encoder.config, name):
                setattr(self.encoder.config, name, p)

    def freeze_embeddings(self) -> int:
        """Stop training the embedding layer (word, position, type, LayerNorm).

        The word matrix is 96M of e5-small's 118M parameters; with the whole layer frozen the
        backward pass also stops at the first frozen encoder layer. Returns parameters frozen.
        """
        return _freeze(self.encoder.get_input_embeddings()) + _freeze(
            getattr(self.encoder, "embeddings", nn.Module())
        )

    def freeze_lower_layers(self, n: int) -> int:
        """Freeze the bottom ``n`` transformer layers (BERT-style encoders only)."""
        if n <= 0:
            return 0
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if layers is None:
            raise ValueError(f"cannot freeze layers of {type(self.encoder).__name__}")
        return sum(_freeze(layer) for layer in layers[:n])

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        theme_labels: torch.Tensor | None = None,
        sentiment_labels: torch.Tensor | None = None,
        return_hidden: bool = False,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
        **_: object,
    ) -> dict[str, torch.Tensor]:
        """Logits (and the loss, given labels) for a batch of texts, one per row; or, with
        ``segment_ids``, for texts packed several to a row. Packed rows come with a 4D
        ``attention_mask`` (rows x 1 x tokens x tokens) that keeps each text to its own tokens,
        and ``position_ids`` that restart at each text, so each text is encoded as if alone."""
        extra = {} if position_ids is None else {"position_ids": position_ids}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        if segment_ids is None:
            pooled = mean_pool(out.last_hidden_state, attention_mask)
        else:
            pooled = segment_mean_pool(
                out.last_hidden_state, segment_ids, int(segment_ids.max()) + 1
            )
        pooled = self.dropout(pooled)
        result = {
            "theme_logits": self.theme_head(pooled),
            "sentiment_logits": self.sentiment_head(pooled),
        }
        if return_hidden:  # the predictor pools sentence spans from it, for evidence
            result["hidden"] = out.last_hidden_state
        if theme_labels is not None and sentiment_labels is not None:
            # Summed over themes (mean over the batch): a mean over 9 outputs would give the
            # encoder a ninth of the theme signal next to the sentiment loss.
            theme_loss = (
                nn.functional.binary_cross_entropy_with_logits(
                    result["theme_logits"],
                    theme_labels.to(result["theme_logits"].dtype),
                    reduction="none",
                )
                .sum(-1)
                .mean()
            )
            sentiment_loss = nn.functional.cross_entropy(
                result["sentiment_logits"], sentiment_labels
            )
            result["loss"] = theme_loss + self.sentiment_loss_weight * sentiment_loss
        return result


def _freeze(module: nn.Module) -> int:
    """Set ``requires_grad=False`` on a module's trainable parameters; return their count."""
    count = 0
    for param in module.parameters():
        if param.requires_grad:
            param.requires_grad_(False)
            count += param.numel()
    return count
