"""Model card and evaluation tables."""

from training.card import comparison_table


def _figures(themes):
    per_theme = {t: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for t in themes}
    return {
        "per_theme": per_theme,
        "macro_f1": 0.5,
        "micro_f1": 0.5,
        "n": 6,
        "sentiment": {"accuracy": 0.7, "macro_f1": 0.6},
    }


def test_a_theme_the_model_predates_is_shown_as_missing_not_a_crash():
    """``evaluate`` on a model older than the taxonomy: the new theme has no model figures."""
    metrics = {"model": _figures(["a"]), "tfidf": _figures(["a", "new"])}
    table = comparison_table(metrics, ["a", "new"])
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert rows["new"] == "| new | - | - | - | - | 0.500 |"
    assert rows["a"] == "| a | 0.500 | 0.500 | 3 | 0.500 | 0.500 |"
