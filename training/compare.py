"""Champion and challenger: evaluate models on the same frozen test split, print the
comparison, and decide whether a challenger may be promoted."""

from __future__ import annotations

from pathlib import Path

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
        sets[extra.name] = more
    return sets


def evaluate_models(paths: list[Path], sets: dict[str, list[Item]], taxonomy: Taxonomy) -> dict:
    """``{version: {set name: report}}`` for every model on every set."""
    from service.bundle import load_bundle
    from service.predictor import Predictor
    from training.train import evaluate_predictor

    results = {}
    for path in paths:
        predictor = Predictor(load_bundle(path), evidence=False)
        results[predictor.model_version] = {
            name: evaluate_predictor(predictor, items, taxonomy) for name, items in sets.items()
        }
    return results


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
        theme_drop = figures["f1"] - challenger["per_theme"][theme]["f1"]
        if theme_drop > max_theme_drop:
            new_f1 = challenger["per_theme"][theme]["f1"]
            reasons.append(
                f"{theme} F1 drops by {theme_drop:.3f} to {new_f1:.3f} (tolerance {max_theme_drop})"
            )
    return reasons


def format_comparison(a: str, b: str, results: dict) -> str:
    """Tables per evaluation set: per theme and per language, A, B and B - A."""
    out = []
    for name in results[a]:
        ra, rb = results[a][name], results[b][name]
        out.append(f"## {name} ({ra['n']} items)\n")
        out.append(f"| | {a} | {b} | change |\n|---|---|---|---|")
        themes = list(dict.fromkeys([*ra["per_theme"], *rb["per_theme"]]))
        for theme in themes:
            fa = ra["per_theme"].get(theme, {}).get("f1")
            fb = rb["per_theme"].get(theme, {}).get("f1")
            out.append(f"| {theme} F1 | {_f(fa)} | {_f(fb)} | {_delta(fa, fb)} |")
        for key, label in (("macro_f1", "**macro F1**"), ("micro_f1", "micro F1")):
            out.append(f"| {label} | {_f(ra[key])} | {_f(rb[key])} | {_delta(ra[key], rb[key])} |")
        sa, sb = ra["sentiment"]["accuracy"], rb["sentiment"]["accuracy"]
        out.append(f"| sentiment accuracy | {_f(sa)} | {_f(sb)} | {_delta(sa, sb)} |")
        langs = sorted(ra["per_language"], key=lambda x: -ra["per_language"][x]["n"])
        out.append(f"\n| language (n) | {a} | {b} | change |\n|---|---|---|---|")
        for lang in langs:
            la = ra["per_language"][lang]["macro_f1"]
            lb = rb["per_language"].get(lang, {}).get("macro_f1")
            n = ra["per_language"][lang]["n"]
            out.append(f"| {lang} ({n}) | {_f(la)} | {_f(lb)} | {_delta(la, lb)} |")
        out.append("")
    return "\n".join(out)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _delta(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{b - a:+.3f}"
