"""Inter-annotator agreement between two independent labelling passes over the same items."""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

from service.taxonomy import Taxonomy


def read_pass(path: Path, taxonomy: Taxonomy) -> dict[str, dict]:
    """``{id: {"themes": [...], "sentiment": ...}}`` from a labelling-pass JSONL file, each line
    checked against ``taxonomy``; a ``ValueError`` naming the file and line otherwise."""
    themes, sentiments = set(taxonomy.theme_ids), set(taxonomy.sentiments)
    out: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: not a JSON object")
        item_id = row.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"{where}: missing id")
        if item_id in first_line:
            raise ValueError(f"{where}: duplicate id {item_id} (first: line {first_line[item_id]})")
        listed = row.get("themes")
        if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
            raise ValueError(f"{where}: themes must be a list of theme ids")
        if unknown := sorted(set(listed) - themes):
            raise ValueError(f"{where}: unknown theme ids {unknown}")
        if row.get("sentiment") not in sentiments:
            raise ValueError(
                f"{where}: bad sentiment {row.get('sentiment')!r} (one of {sorted(sentiments)})"
            )
        first_line[item_id] = line_no
        out[item_id] = row
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
            "kappa": _kappa(a, b),
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
        "sentiment_kappa": _kappa(sent_a, sent_b),
        "sentiment_agree": sum(x == y for x, y in zip(sent_a, sent_b, strict=True)) / len(ids),
        "disagreements": disagreements,
    }


def _kappa(a: list, b: list) -> float:
    """Cohen's kappa; 1.0 when both passes gave every item the same one label (kappa is 0/0
    there, NaN, which is not even valid JSON)."""
    return float(cohen_kappa_score(a, b)) if len(set(a + b)) > 1 else 1.0
