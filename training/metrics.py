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
    """Per-theme P/R/F1/support, micro and macro F1 for multi-label 0/1 matrices.

    A theme neither in ``y_true`` nor predicted has no P/R/F1 (None, shown as "-") and no
    part in macro F1 (see :func:`macro_f1_present`), as in the per-language figures.
    """
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    present = _present(y_true, y_pred)
    per_theme = {
        t: {
            "precision": float(p[k]) if present[k] else None,
            "recall": float(r[k]) if present[k] else None,
            "f1": float(f[k]) if present[k] else None,
            "support": int(s[k]),
        }
        for k, t in enumerate(theme_ids)
    }
    return {
        "per_theme": per_theme,
        # 1.0 when there was nothing to find and nothing was predicted, as macro F1.
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=1.0)),
        "macro_f1": macro_f1_present(y_true, y_pred),
        "exact_match": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0,
    }


def sentiment_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Sentiment accuracy and macro F1, over the sentiments that occur in ``y_true`` or
    ``y_pred`` (as :func:`macro_f1_present`: a class absent and never predicted is no error).
    ``labels`` names the indices."""
    seen = set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist())
    present = [k for k in range(len(labels)) if k in seen]
    macro = (
        float(f1_score(y_true, y_pred, average="macro", labels=present, zero_division=0))
        if present
        else 0.0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": macro,
    }


def _present(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per theme, whether it occurs in ``y_true`` or ``y_pred`` (items x themes)."""
    return np.asarray(y_true).any(axis=0) | np.asarray(y_pred).any(axis=0)


def macro_f1_present(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the themes that occur in ``y_true`` or ``y_pred``.

    A theme absent from a set (one language, say, or a small evaluation file) and never
    predicted there was handled perfectly; counting it as F1 = 0 would punish the set for
    what it lacks.
    """
    present = np.flatnonzero(_present(y_true, y_pred))
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
    origins: Sequence[str] | None = None,
) -> dict[str, object]:
    """Everything ``cxthemes evaluate`` prints, for one system on one data set; with
    ``origins`` (each item's :func:`training.data.origin_of`), the figures per origin too."""
    report = theme_report(y_true, y_pred, theme_ids)
    report["sentiment"] = sentiment_report(sent_true, sent_pred, sentiment_labels)
    report["per_language"] = _per_group(langs, y_true, y_pred, sent_true, sent_pred)
    if origins is not None:
        # Micro F1 beside macro: a theme with a handful of items in one origin swings its
        # macro F1, and real texts lack some themes almost entirely.
        report["per_origin"] = _per_group(
            origins, y_true, y_pred, sent_true, sent_pred, with_micro=True
        )
    report["n"] = int(len(y_true))
    return report


def _per_group(
    groups: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sent_true: np.ndarray,
    sent_pred: np.ndarray,
    with_micro: bool = False,
) -> dict[str, dict[str, float]]:
    """Per value of ``groups`` (each item's language or origin): its item count, macro F1 over
    the themes present, sentiment accuracy and, ``with_micro``, micro F1."""
    groups_arr = np.asarray(groups)
    out = {}
    for group in sorted(set(groups)):
        mask = groups_arr == group
        row = {"n": int(mask.sum()), "macro_f1": macro_f1_present(y_true[mask], y_pred[mask])}
        if with_micro:
            row["micro_f1"] = float(
                f1_score(y_true[mask], y_pred[mask], average="micro", zero_division=1.0)
            )
        row["sentiment_accuracy"] = float(accuracy_score(sent_true[mask], sent_pred[mask]))
        out[group] = row
    return out


def _f1_per_theme(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-theme F1 over the item axis (-2) of boolean arrays, and whether each theme occurs
    in ``t`` or ``p`` (F1 is 0 where it does not, as scikit-learn's ``zero_division=0``)."""
    tp = (t & p).sum(-2)
    denom = t.sum(-2) + p.sum(-2)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0), denom > 0


def _present_macro(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """:func:`macro_f1_present` over the item axis (-2), for stacks of resamples too."""
    f1, present = _f1_per_theme(t, p)
    return np.where(present.any(-1), (f1 * present).sum(-1) / np.maximum(present.sum(-1), 1), 1.0)


def _interval(point: float, samples: np.ndarray, level: float) -> dict[str, float]:
    low, high = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return {"diff": float(point), "low": float(low), "high": float(high)}


def paired_bootstrap(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    sent_true: np.ndarray,
    sent_a: np.ndarray,
    sent_b: np.ndarray,
    langs: Sequence[str],
    theme_ids: Sequence[str],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """How far the differences B - A between two systems on the same items could be noise.

    The items are resampled with replacement within each language (so every resample keeps
    the language mix) and both systems are scored on the same resamples; each figure gets the
    central ``level`` interval of its resampled differences: per theme F1, macro F1, sentiment
    accuracy, and macro F1 per language (macro F1 over the themes present, as
    :func:`theme_report` and :func:`macro_f1_present`). An interval that contains 0 means this
    test set cannot tell the two apart on that figure.
    """
    t, a, b = (np.asarray(x).astype(bool) for x in (y_true, pred_a, pred_b))
    ok_a = np.asarray(sent_a) == np.asarray(sent_true)
    ok_b = np.asarray(sent_b) == np.asarray(sent_true)
    langs_arr = np.asarray(langs)
    rng = np.random.default_rng(seed)
    groups = {lang: np.flatnonzero(langs_arr == lang) for lang in sorted(set(langs))}
    # One (resamples, n) matrix of item indices, each language's columns drawn from its items.
    cols = {}
    parts, start = [], 0
    for lang, members in groups.items():
        parts.append(rng.choice(members, size=(n_resamples, len(members))))
        cols[lang] = slice(start, start + len(members))
        start += len(members)
    idx = np.concatenate(parts, axis=1)

    f1_a, _ = _f1_per_theme(t, a)
    f1_b, _ = _f1_per_theme(t, b)
    rf1_a, _ = _f1_per_theme(t[idx], a[idx])
    rf1_b, _ = _f1_per_theme(t[idx], b[idx])
    themes = {
        theme: _interval(f1_b[k] - f1_a[k], rf1_b[:, k] - rf1_a[:, k], level)
        for k, theme in enumerate(theme_ids)
    }
    per_language = {}
    for lang, members in groups.items():
        sub = idx[:, cols[lang]]
        point = _present_macro(t[members], b[members]) - _present_macro(t[members], a[members])
        samples = _present_macro(t[sub], b[sub]) - _present_macro(t[sub], a[sub])
        per_language[lang] = {"n": len(members), **_interval(point, samples, level)}
    return {
        "level": level,
        "resamples": n_resamples,
        "per_theme": themes,
        "macro_f1": _interval(
            _present_macro(t, b) - _present_macro(t, a),
            _present_macro(t[idx], b[idx]) - _present_macro(t[idx], a[idx]),
            level,
        ),
        "sentiment_accuracy": _interval(
            ok_b.mean() - ok_a.mean(), ok_b[idx].mean(-1) - ok_a[idx].mean(-1), level
        ),
        "per_language": per_language,
    }
