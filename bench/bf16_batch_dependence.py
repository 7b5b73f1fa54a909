"""How much do a text's bf16 scores depend on the texts beside it, and what would fp32
attention cost to remove that?

    .venv/bin/python bench/bf16_batch_dependence.py [--model models/current] [--n 600]

The bf16 backend computes packed rows' attention in three plain bf16 products
(``service/backends/bf16.py: rows_attention``), whose rounding follows the width of the
pass (its longest row). This scores N real texts one at a time and in shuffled micro-batches
of 32, on the served attention and on the same attention computed in fp32 (inputs upcast, the
output cast back), and prints, per variant: the largest score change between the two, the
texts whose theme decisions, sentiment or ``needs_review`` changed, and texts/s (alternating
rounds in one process, as the machine is noisy). An experiment: nothing here is served.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import real_texts  # noqa: E402
from service.backends.bf16 import ROWS_ATTENTION  # noqa: E402
from service.predictor import PACKABLE_ATTENTION, Prediction, Predictor  # noqa: E402

FP32_ATTENTION = "cxthemes_bench_rows_fp32"


def fp32_rows_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """The served rows attention's arithmetic in fp32 (inputs upcast, output cast back), at
    every row width."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    with torch.autocast("cpu", enabled=False):
        scores = torch.matmul(query.float(), key.float().transpose(-1, -2)).mul_(scaling)
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:
                scores.masked_fill_(attention_mask.logical_not(), float("-inf"))
            else:
                scores += attention_mask.float()
        out = torch.matmul(torch.softmax(scores, dim=-1), value.float())
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


AttentionInterface.register(FP32_ATTENTION, fp32_rows_attention)
AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)


def load(model: str, attention: str) -> Predictor:
    """The bf16 predictor, its encoder switched to ``attention``."""
    predictor = Predictor.from_path(model, backend="torch-bf16")
    encoder = predictor.bundle.model.model.encoder
    encoder.set_attn_implementation(attention)
    predictor._packs = True  # can_pack knows only the served attention's names
    return predictor


def compare(alone: list[Prediction], together: list[Prediction]) -> dict[str, float]:
    """Largest score change and the number of texts whose decisions changed."""
    diff, themes, sentiment, review = 0.0, 0, 0, 0
    for a, b in zip(alone, together, strict=True):
        diff = max(diff, *(abs(a.scores[t] - b.scores[t]) for t in a.scores))
        diff = max(
            diff, *(abs(a.sentiment_scores[s] - b.sentiment_scores[s]) for s in a.sentiment_scores)
        )
        themes += a.themes != b.themes
        sentiment += a.sentiment != b.sentiment
        review += a.needs_review != b.needs_review
    return {"max_diff": diff, "themes": themes, "sentiment": sentiment, "review": review}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/current")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    assert ROWS_ATTENTION in PACKABLE_ATTENTION
    texts = real_texts(args.n)
    engines = {"bf16 attention (served)": ROWS_ATTENTION, "fp32 attention": FP32_ATTENTION}
    predictors = {name: load(args.model, attention) for name, attention in engines.items()}
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    shuffled = [texts[i] for i in order]
    for name, predictor in predictors.items():
        alone = [predictor.predict([text])[0] for text in texts]
        mixed = predictor.predict(shuffled)
        together: list[Prediction] = [None] * len(texts)  # type: ignore[list-item]
        for position, i in enumerate(order):
            together[i] = mixed[position]
        c = compare(alone, together)
        print(
            f"{name}: alone vs in shuffled batches of {predictor.batch_size}: "
            f"max score change {c['max_diff']:.4f}; texts changed: themes {c['themes']}, "
            f"sentiment {c['sentiment']}, needs_review {c['review']} (of {len(texts)})"
        )
    rates: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():
        predictor.predict(texts[:64])  # warm-up
    for _ in range(args.rounds):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.predict(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
    base = sum(rates[next(iter(rates))]) / args.rounds
    for name, values in rates.items():
        mean = sum(values) / len(values)
        print(
            f"{name}: texts/s {' / '.join(f'{v:.1f}' for v in values)}, mean {mean:.1f} "
            f"({mean / base - 1:+.1%}); torch threads {torch.get_num_threads()}"
        )


if __name__ == "__main__":
    main()
