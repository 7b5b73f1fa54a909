import numpy as np
import pytest

from training.metrics import full_report, macro_f1_present, paired_bootstrap, tune_thresholds


def test_tune_thresholds_finds_the_separating_value():
    y = np.array([[1], [1], [0], [0], [0]])
    scores = np.array([[0.9], [0.45], [0.4], [0.2], [0.1]])
    t = tune_thresholds(y, scores)
    assert 0.4 < t[0] <= 0.45


def test_tune_thresholds_keeps_default_without_positives():
    assert tune_thresholds(np.zeros((3, 1)), np.array([[0.1], [0.9], [0.5]]))[0] == 0.5


def test_quantile_grid_works_for_cosines():
    y = np.array([[1], [0], [1], [0]])
    cos = np.array([[0.83], [0.80], [0.84], [0.79]])
    t = tune_thresholds(y, cos, default=0.8, from_quantiles=True)
    assert 0.80 < t[0] <= 0.83


def test_macro_f1_present_ignores_absent_themes():
    y = np.array([[1, 0], [0, 0]])
    assert macro_f1_present(y, y) == 1.0
    assert macro_f1_present(y, np.array([[0, 1], [0, 0]])) == 0.0


def test_full_report_shapes():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    report = full_report(
        y,
        y,
        np.array([0, 1, 2]),
        np.array([0, 1, 1]),
        ["en", "zh", "en"],
        ["a", "b"],
        ["neg", "neu", "pos"],
    )
    assert report["macro_f1"] == 1.0 and report["per_theme"]["a"]["support"] == 2
    assert abs(report["sentiment"]["accuracy"] - 2 / 3) < 1e-9
    assert set(report["per_language"]) == {"en", "zh"} and report["per_language"]["en"]["n"] == 2


def test_full_report_per_origin():
    y = np.array([[1, 0], [0, 1], [1, 1], [1, 0]])
    pred = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    sent = np.array([0, 1, 2, 0])
    report = full_report(
        y,
        pred,
        sent,
        sent,
        ["en"] * 4,
        ["a", "b"],
        ["neg", "neu", "pos"],
        ["real", "written", "written", "real"],
    )
    written, real = report["per_origin"]["written"], report["per_origin"]["real"]
    assert written["n"] == 2 and real["n"] == 2
    # written: a 1/1 right, b 1 of 2 found -> micro 2*2/(2*2+1) = 0.8
    assert abs(written["micro_f1"] - 0.8) < 1e-9 and written["sentiment_accuracy"] == 1.0
    # real: a found once of twice, b predicted once wrongly -> micro 0.5, macro (2/3 + 0) / 2
    assert real["micro_f1"] == 0.5 and abs(real["macro_f1"] - 1 / 3) < 1e-9
    assert "per_origin" not in full_report(
        y, y, sent, sent, ["en"] * 4, ["a", "b"], ["n", "u", "p"]
    )


def _systems(n: int = 400, seed: int = 1):
    """Gold labels for ``n`` items in two languages, a system that gets about 90% of the
    decisions right and one that gets about 60% right."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 3)) < 0.3).astype(int)
    good = np.where(rng.random((n, 3)) < 0.9, truth, 1 - truth)
    poor = np.where(rng.random((n, 3)) < 0.6, truth, 1 - truth)
    sent = rng.integers(0, 3, n)
    langs = ["en"] * (n // 2) + ["zh"] * (n - n // 2)
    return truth, good, poor, sent, langs


def test_bootstrap_points_are_the_reports_differences():
    truth, good, poor, sent, langs = _systems()
    sent_good = np.where(np.arange(len(sent)) % 5 == 0, (sent + 1) % 3, sent)
    ids = ["a", "b", "c"]
    out = paired_bootstrap(truth, poor, good, sent, sent, sent_good, langs, ids, n_resamples=200)
    ra = full_report(truth, poor, sent, sent, langs, ids, ["n", "u", "p"])
    rb = full_report(truth, good, sent, sent_good, langs, ids, ["n", "u", "p"])
    assert out["macro_f1"]["diff"] == pytest.approx(rb["macro_f1"] - ra["macro_f1"])
    for t in ids:
        want = rb["per_theme"][t]["f1"] - ra["per_theme"][t]["f1"]
        assert out["per_theme"][t]["diff"] == pytest.approx(want)
    for lang in ("en", "zh"):
        want = rb["per_language"][lang]["macro_f1"] - ra["per_language"][lang]["macro_f1"]
        assert out["per_language"][lang]["diff"] == pytest.approx(want)
        assert out["per_language"][lang]["n"] == 200
    assert out["sentiment_accuracy"]["diff"] == pytest.approx(-0.2)


def test_a_clear_difference_excludes_zero_and_the_same_system_gives_none():
    truth, good, poor, sent, langs = _systems()
    ids = ["a", "b", "c"]
    clear = paired_bootstrap(truth, poor, good, sent, sent, sent, langs, ids, n_resamples=300)
    assert 0 < clear["macro_f1"]["low"] <= clear["macro_f1"]["diff"] <= clear["macro_f1"]["high"]
    same = paired_bootstrap(truth, good, good, sent, sent, sent, langs, ids, n_resamples=300)
    assert same["macro_f1"] == {"diff": 0.0, "low": 0.0, "high": 0.0}
    assert all(v["low"] == v["high"] == 0.0 for v in same["per_theme"].values())


def test_small_subsets_get_wider_intervals_and_the_seed_fixes_them():
    truth, good, poor, sent, langs = _systems(n=1200)
    langs = ["en"] * 1100 + ["ar"] * 100
    ids = ["a", "b", "c"]
    out = paired_bootstrap(truth, poor, good, sent, sent, sent, langs, ids, n_resamples=400)
    width = {k: v["high"] - v["low"] for k, v in out["per_language"].items()}
    assert width["ar"] > 2 * width["en"]
    again = paired_bootstrap(truth, poor, good, sent, sent, sent, langs, ids, n_resamples=400)
    assert again == out


def test_a_theme_absent_from_the_items_and_never_predicted_is_left_out():
    """Perfect predictions on items that lack a theme score 1.0, not 0.5 (the absent theme
    used to count as F1 = 0), as the per-language figures already did."""
    themes, sentiments, langs = ["a", "b"], ["n", "u", "p"], ["en"] * 3
    y = np.array([[1, 0], [0, 0], [1, 0]])
    sent = np.array([0, 0, 1])
    report = full_report(y, y, sent, sent, langs, themes, sentiments)
    assert report["macro_f1"] == 1.0 == report["per_language"]["en"]["macro_f1"]
    assert report["per_theme"]["b"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert report["per_theme"]["a"]["f1"] == 1.0
    # A sentiment that occurs nowhere ("p" is never gold nor predicted) is no error either.
    assert report["sentiment"]["macro_f1"] == 1.0
    # Predicted where it is absent, the theme counts (F1 0): macro (1 + 0) / 2.
    wrong = np.array([[1, 1], [0, 0], [1, 0]])
    assert full_report(y, wrong, sent, sent, langs, themes, sentiments)["macro_f1"] == 0.5
    # Nothing to find and nothing predicted: micro F1 1.0 too, not 0.
    nothing = np.zeros((3, 2), dtype=int)
    empty = full_report(nothing, nothing, sent, sent, langs, themes, sentiments)
    assert empty["macro_f1"] == empty["micro_f1"] == 1.0


def test_the_card_shows_a_dash_for_an_absent_theme():
    from training.card import comparison_table

    y = np.array([[1, 0], [0, 0]])
    sent = np.zeros(2, dtype=int)
    report = full_report(y, y, sent, sent, ["en"] * 2, ["a", "b"], ["n", "u", "p"])
    table = comparison_table({"model": report}, ["a", "b"])
    assert "| b | - | - | 0 | - |" in table.splitlines()


def test_bootstrap_macro_f1_leaves_absent_themes_out_as_the_report_does():
    truth, good, poor, sent, langs = _systems()
    truth[:, 2] = good[:, 2] = poor[:, 2] = 0  # the third theme occurs nowhere
    ids = ["a", "b", "c"]
    out = paired_bootstrap(truth, poor, good, sent, sent, sent, langs, ids, n_resamples=50)
    ra = full_report(truth, poor, sent, sent, langs, ids, ["n", "u", "p"])
    rb = full_report(truth, good, sent, sent, langs, ids, ["n", "u", "p"])
    assert out["macro_f1"]["diff"] == pytest.approx(rb["macro_f1"] - ra["macro_f1"])
