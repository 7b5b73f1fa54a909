"""Champion and challenger: evaluate models on the same frozen test split, print the
comparison, and decide whether a challenger may be promoted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.taxonomy import Taxonomy
from training.data import Item, find_label_files, load_items, split_items


def evaluation_items(labels: Path, taxonomy: Taxonomy, extra: Path | None = None):
    """The frozen test split (and, if given, the items of ``extra``), keyed by name."""
    items, problems = load_items(find_label_files(labels), taxonomy)
    if problems.errors:
        raise ValueError("labelled data has errors:\n" + "\n".join(problems.errors[:20]))
    sets: dict[str, list[Item]] = {"test split": split_items(items)["test"]}
    if extra is not None:
        more, extra_problems = load_items([extra], taxonomy)
        if extra_problems.errors:
            raise ValueError(f"{extra} has errors:\n" + "\n".join(extra_problems.errors[:20]))
        if not more:  # said here, not later as a model that "could not be evaluated"
            raise ValueError(f"{extra}: no labelled items to compare on")
        sets[extra.name] = more
    return sets


def evaluate_models(
    paths: list[Path], sets: dict[str, list[Item]], taxonomy: Taxonomy
) -> tuple[dict, dict]:
    """``{name: {set name: report}}`` for every model on every set, and the decisions behind
    them, ``{name: {set name: (theme 0/1 matrix, sentiment indices in the taxonomy's order,
    theme ids)}}``. A model's name is
    its folder's name, not the version in its ``bundle.json``: a copied or renamed bundle
    (``cp -a a a-backup``) records the same version as its original, and keying by that put
    both models under one name. Two paths with one folder name are told apart by path."""
    from service.bundle import load_bundle
    from service.predictor import Predictor
    from training.train import evaluate_predictor, predict_decisions

    results, decisions = {}, {}
    for path in paths:
        predictor = Predictor(load_bundle(path), evidence=False)
        name = _unique_name(Path(path), results)
        results[name], decisions[name] = {}, {}
        # Sentiment indices in the taxonomy's order (the gold labels'), not the model's own:
        # two models, or a model and the gold, may order the same sentiments differently.
        # A sentiment the taxonomy lacks becomes -1, never right.
        known = list(taxonomy.sentiments)
        to_taxonomy = np.array([known.index(s) if s in known else -1 for s in predictor.sentiments])
        for set_name, items in sets.items():
            themes, sentiment = predict_decisions(predictor, items)
            results[name][set_name] = evaluate_predictor(predictor, items, (themes, sentiment))
            decisions[name][set_name] = (
                themes,
                to_taxonomy[sentiment],
                list(predictor.theme_ids),
            )
    return results, decisions


def _unique_name(path: Path, taken: dict) -> str:
    """The folder name of ``path``, else its full path, else that with a count: a key not
    yet in ``taken`` (comparing a model with itself still gives two entries)."""
    for name in (path.name, str(path)):
        if name not in taken:
            return name
    k = 2
    while f"{path} ({k})" in taken:
        k += 1
    return f"{path} ({k})"


def intervals(
    a: str,
    b: str,
    decisions: dict,
    sets: dict[str, list[Item]],
    taxonomy: Taxonomy,
    n_resamples: int = 1000,
) -> dict:
    """``{set name: paired bootstrap of B - A}`` (see :func:`training.metrics.paired_bootstrap`)
    for the sets on which both models decide the same themes."""
    from training.data import label_arrays, theme_matrix
    from training.metrics import paired_bootstrap

    out = {}
    for name, items in sets.items():
        themes_a, sent_a, ids_a = decisions[a][name]
        themes_b, sent_b, ids_b = decisions[b][name]
        if ids_a != ids_b or not items:
            continue
        _, sent_true = label_arrays(items, taxonomy)
        out[name] = paired_bootstrap(
            theme_matrix(items, ids_a),
            themes_a,
            themes_b,
            sent_true,
            sent_a,
            sent_b,
            [i.lang for i in items],
            ids_a,
            n_resamples=n_resamples,
        )
    return out


def gate(champion: dict, challenger: dict, max_macro_drop: float, max_theme_drop: float):
    """Why ``challenger`` must not replace ``champion`` (empty: it may). Both are reports on
    the same items; themes only the challenger knows cannot drop."""
    reasons = []
    drop = champion["macro_f1"] - challenger["macro_f1"]
    if drop > max_macro_drop:
        reasons.append(
            f"macro F1 {challenger['macro_f1']:.3f} is {drop:.3f} below the champion's "
            f"{champion['macro_f1']:.3f} (tolerance {max_macro_drop})"
        )
    for theme, figures in champion["per_theme"].items():
        if theme not in challenger["per_theme"]:
            reasons.append(f"the challenger lacks the theme {theme}")
            continue
        if figures["f1"] is None or challenger["per_theme"][theme]["f1"] is None:
            continue  # absent from these items and never predicted: no F1 to compare
        theme_drop = figures["f1"] - challenger["per_theme"][theme]["f1"]
        if theme_drop > max_theme_drop:
            new_f1 = challenger["per_theme"][theme]["f1"]
            reasons.append(
                f"{theme} F1 drops by {theme_drop:.3f} to {new_f1:.3f} (tolerance {max_theme_drop})"
            )
    return reasons


def format_comparison(a: str, b: str, results: dict, spread: dict | None = None) -> str:
    """Tables per evaluation set: per theme and per language, A, B and B - A, and where
    ``spread`` (from :func:`intervals`) has the set, the interval of B - A and whether it
    excludes 0 (``*``: this set tells the two models apart on that figure)."""
    out = []
    for name in results[a]:
        ra, rb = results[a][name], results[b][name]
        ci = (spread or {}).get(name)
        head = f"| | {a} | {b} | change |"
        rule = "|---|---|---|---|"
        if ci:
            head += f" {ci['level']:.0%} interval |"
            rule += "---|"

        def row(label, x, y, interval=None, ci=ci):
            return _row(label, x, y, interval, bool(ci))

        out.append(f"## {name} ({ra['n']} items)\n")
        out.append(f"{head}\n{rule}")
        themes = list(dict.fromkeys([*ra["per_theme"], *rb["per_theme"]]))
        for theme in themes:
            fa = ra["per_theme"].get(theme, {}).get("f1")
            fb = rb["per_theme"].get(theme, {}).get("f1")
            spread_of = ci and fa is not None and fb is not None and ci["per_theme"].get(theme)
            out.append(row(f"{theme} F1", fa, fb, spread_of or None))
        out.append(row("**macro F1**", ra["macro_f1"], rb["macro_f1"], ci and ci["macro_f1"]))
        out.append(row("micro F1", ra["micro_f1"], rb["micro_f1"]))
        sa, sb = ra["sentiment"]["accuracy"], rb["sentiment"]["accuracy"]
        out.append(row("sentiment accuracy", sa, sb, ci and ci["sentiment_accuracy"]))
        langs = sorted(ra["per_language"], key=lambda x: -ra["per_language"][x]["n"])
        out.append(f"\n{head.replace('| |', '| language (n) |', 1)}\n{rule}")
        for lang in langs:
            la = ra["per_language"][lang]["macro_f1"]
            lb = rb["per_language"].get(lang, {}).get("macro_f1")
            n = ra["per_language"][lang]["n"]
            out.append(row(f"{lang} ({n})", la, lb, ci and ci["per_language"].get(lang)))
        if "per_origin" in ra and "per_origin" in rb:
            out.append(f"\n{head.replace('| |', '| origin (n) |', 1)}\n{rule}")
            for origin, fa in sorted(ra["per_origin"].items(), key=lambda kv: -kv[1]["n"]):
                fb = rb["per_origin"].get(origin, {})
                label = f"{origin} ({fa['n']})"
                out.append(row(f"{label} macro F1", fa["macro_f1"], fb.get("macro_f1")))
                out.append(row(f"{label} micro F1", fa["micro_f1"], fb.get("micro_f1")))
        if ci:
            out.append(
                f"\nIntervals: paired bootstrap, {ci['resamples']} resamples of the items within "
                "each language; * marks a change whose interval excludes 0."
            )
        out.append("")
    return "\n".join(out)


def _row(label: str, x, y, interval: dict | None, with_interval: bool) -> str:
    line = f"| {label} | {_f(x)} | {_f(y)} | {_delta(x, y)} |"
    return line + f" {_interval(interval)} |" if with_interval else line


def _interval(interval: dict | None) -> str:
    if not interval:
        return ""
    mark = " *" if interval["low"] > 0 or interval["high"] < 0 else ""
    return f"[{interval['low']:+.3f}, {interval['high']:+.3f}]{mark}"


def _f(x: float | None) -> str:
    """A figure, or "-" where there is none (a theme the model lacks, or one neither in
    the items nor predicted), as in the model card."""
    return "-" if x is None else f"{x:.3f}"


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{b - a:+.3f}"
