"""Evaluation figures: per-theme precision/recall/F1, micro and macro F1, per-language macro F1,
sentiment accuracy and macro F1, and per-theme threshold tuning."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, default: float = 0.5, from_quantiles: bool = False
) -> np.ndarray:
    """Per theme, the threshold that maximises that theme's F1 (ties: nearest ``default``).

    Probabilities are searched on a fixed grid; raw scores such as cosines
    (``from_quantiles``) on the quantiles of each theme's own scores.
    """
    thresholds = np.full(y_true.shape[1], default, dtype=np.float32)
    for k in range(y_true.shape[1]):
        truth = y_true[:, k].astype(bool)
        if not truth.any():
            continue
        grid = np.quantile(scores[:, k], np.linspace(0, 1, 201)) if from_quantiles else _GRID
        best, best_f1 = default, -1.0
        for t in grid:
            pred = scores[:, k] >= t
            tp = np.sum(pred & truth)
            f1 = 2 * tp / max(pred.sum() + truth.sum(), 1)
            if f1 > best_f1 + 1e-9 or (
                abs(f1 - best_f1) <= 1e-9 and abs(t - default) < abs(best - default)
            ):
                best, best_f1 = float(t), f1
        thresholds[k] = best
    return thresholds


def theme_report(
    y_true: np.ndarray, y_pred: np.ndarray, theme_ids: Sequence[str]
) -> dict[str, object]:
    """Per-theme P/R/F1/support, micro and macro F1 for multi-label 0/1 matrices."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_theme = {
        t: {
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
            "support": int(s[k]),
        }
        for k, t in enumerate(theme_ids)
    }
    return {
        "per_theme": per_theme,
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "exact_match": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0,
    }


def sentiment_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Sentiment accuracy and macro F1."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(
            f1_score(
                y_true, y_pred, average="macro", labels=list(range(len(labels))), zero_division=0
            )
        ),
    }


def macro_f1_present(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the themes that occur in ``y_true`` or ``y_pred``.

    A theme absent from a small subset (one language, say) and never predicted there was
    handled perfectly; counting it as F1 = 0 would punish the subset for what it lacks.
    """
    present = np.flatnonzero(y_true.any(axis=0) | y_pred.any(axis=0))
    if not len(present):
        return 1.0
    return float(f1_score(y_true, y_pred, average="macro", labels=present, zero_division=0))


def full_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sent_true: np.ndarray,
    sent_pred: np.ndarray,
    langs: Sequence[str],
    theme_ids: Sequence[str],
    sentiment_labels: Sequence[str],
) -> dict[str, object]:
    """Everything ``cxthemes evaluate`` prints, for one system on one data set."""
    report = theme_report(y_true, y_pred, theme_ids)
    report["sentiment"] = sentiment_report(sent_true, sent_pred, sentiment_labels)
    langs_arr = np.asarray(langs)
    per_lang = {}
    for lang in sorted(set(langs)):
        mask = langs_arr == lang
        per_lang[lang] = {
            "n": int(mask.sum()),
            "macro_f1": macro_f1_present(y_true[mask], y_pred[mask]),
            "sentiment_accuracy": float(accuracy_score(sent_true[mask], sent_pred[mask])),
        }
    report["per_language"] = per_lang
    report["n"] = int(len(y_true))
    return report
