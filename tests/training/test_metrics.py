import numpy as np

from training.metrics import full_report, macro_f1_present, tune_thresholds


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
