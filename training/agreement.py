"""Inter-annotator agreement between two independent labelling passes over the same items."""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from service.taxonomy import Taxonomy


def read_pass(path: Path) -> dict[str, dict]:
    """``{id: {"themes": [...], "sentiment": ...}}`` from a labelling-pass JSONL file."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["id"]] = row
    return out


def agreement(first: dict[str, dict], second: dict[str, dict], taxonomy: Taxonomy) -> dict:
    """Cohen's kappa per theme (present/absent) and for sentiment, plus the disagreements."""
    ids = [i for i in first if i in second]
    if not ids:
        raise ValueError("the two passes share no item id")
    per_theme = {}
    for theme in taxonomy.theme_ids:
        a = [int(theme in first[i]["themes"]) for i in ids]
        b = [int(theme in second[i]["themes"]) for i in ids]
        per_theme[theme] = {
            "kappa": float(cohen_kappa_score(a, b)) if len(set(a + b)) > 1 else 1.0,
            "agree": sum(x == y for x, y in zip(a, b, strict=True)) / len(ids),
            "first": sum(a),
            "second": sum(b),
        }
    sent_a = [first[i]["sentiment"] for i in ids]
    sent_b = [second[i]["sentiment"] for i in ids]
    disagreements = [
        {"id": i, "first": first[i], "second": second[i]}
        for i in ids
        if set(first[i]["themes"]) != set(second[i]["themes"])
        or first[i]["sentiment"] != second[i]["sentiment"]
    ]
    return {
        "n": len(ids),
        "per_theme": per_theme,
        "mean_theme_kappa": sum(v["kappa"] for v in per_theme.values()) / len(per_theme),
        "exact_theme_set_agreement": sum(
            set(first[i]["themes"]) == set(second[i]["themes"]) for i in ids
        )
        / len(ids),
        "sentiment_kappa": float(cohen_kappa_score(sent_a, sent_b)),
        "sentiment_agree": sum(x == y for x, y in zip(sent_a, sent_b, strict=True)) / len(ids),
        "disagreements": disagreements,
    }
