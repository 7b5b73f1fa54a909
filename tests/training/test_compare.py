"""Champion and challenger tables: the changes and, with intervals, whether they are noise."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from service.taxonomy import load_taxonomy
from training.compare import evaluate_models, format_comparison, gate, intervals
from training.data import Item
from training.metrics import full_report


def _items_and_decisions(n: int = 300):
    taxonomy = load_taxonomy("labels/taxonomy.yaml")
    ids = list(taxonomy.theme_ids)
    rng = np.random.default_rng(3)
    truth = (rng.random((n, len(ids))) < 0.25).astype(int)
    # "new" finds every theme; "old" misses the first theme entirely and is otherwise equal.
    new = truth.copy()
    old = truth.copy()
    old[:, 0] = 0
    sentiments = list(taxonomy.sentiments)
    sent = rng.integers(0, 3, n)
    items = [
        Item(
            id=str(k),
            text=f"text {k}",
            lang="en" if k % 3 else "zh",
            themes=tuple(t for j, t in enumerate(ids) if truth[k, j]),
            sentiment=sentiments[sent[k]],
            source="test",
        )
        for k in range(n)
    ]
    langs = [i.lang for i in items]
    results = {
        name: {"test split": full_report(truth, pred, sent, sent, langs, ids, sentiments)}
        for name, pred in (("old", old), ("new", new))
    }
    decisions = {
        name: {"test split": (pred, sent, ids)} for name, pred in (("old", old), ("new", new))
    }
    return taxonomy, {"test split": items}, results, decisions, ids


def test_the_table_marks_only_the_changes_the_test_set_can_tell_apart():
    taxonomy, sets, results, decisions, ids = _items_and_decisions()
    spread = intervals("old", "new", decisions, sets, taxonomy, n_resamples=300)
    table = format_comparison("old", "new", results, spread)
    assert "| | old | new | change | 95% interval |" in table
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.count("|") > 4}
    assert lines[f"{ids[0]} F1"].rstrip().endswith("* |")  # 0 -> 1: a real change
    assert not lines[f"{ids[1]} F1"].rstrip().endswith("* |")  # no change at all
    assert "[+0.000, +0.000]" in lines[f"{ids[1]} F1"]
    assert lines["**macro F1**"].rstrip().endswith("* |")
    assert "paired bootstrap, 300 resamples" in table


def test_without_intervals_the_table_keeps_its_four_columns():
    _, _, results, _, _ = _items_and_decisions()
    table = format_comparison("old", "new", results)
    assert "| | old | new | change |\n|---|---|---|---|" in table
    assert "interval" not in table


def test_models_with_different_themes_get_no_intervals():
    taxonomy, sets, _, decisions, ids = _items_and_decisions()
    themes, sent, _ = decisions["old"]["test split"]
    decisions["old"]["test split"] = (themes[:, 1:], sent, ids[1:])
    assert intervals("old", "new", decisions, sets, taxonomy, n_resamples=50) == {}


def test_the_gate_refuses_the_theme_the_challenger_lost():
    _, _, results, _, ids = _items_and_decisions()
    reasons = gate(results["new"]["test split"], results["old"]["test split"], 0.2, 0.03)
    assert any(ids[0] in r for r in reasons)
    assert gate(results["old"]["test split"], results["new"]["test split"], 0.01, 0.03) == []


def test_the_table_compares_the_origins_of_the_texts():
    taxonomy = load_taxonomy("labels/taxonomy.yaml")
    ids, sentiments = list(taxonomy.theme_ids), list(taxonomy.sentiments)
    truth = np.zeros((4, len(ids)), dtype=int)
    truth[:, 0] = 1
    worse = truth.copy()
    worse[0, 0] = 0  # misses the theme on one real text
    sent = np.zeros(4, dtype=int)
    origins = ["real", "real", "written", "written"]
    results = {
        name: {
            "test split": full_report(truth, p, sent, sent, ["en"] * 4, ids, sentiments, origins)
        }
        for name, p in (("old", truth), ("new", worse))
    }
    table = format_comparison("old", "new", results)
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if "|" in line}
    assert "| real (2) micro F1 | 1.000 | 0.667 | -0.333 |" in lines["real (2) micro F1"]
    assert "| written (2) macro F1 | 1.000 | 1.000 | +0.000 |" in lines["written (2) macro F1"]


def test_a_copied_bundle_is_compared_under_its_folder_name(tiny_bundle, small_labels, tmp_path):
    """``cp -a tiny-a tiny-a-backup``: both record the same version; the results must not
    collapse into one entry (the CLI then failed with "not enough values to unpack")."""
    taxonomy = load_taxonomy("labels/taxonomy.yaml")
    shutil.copytree(tiny_bundle, tmp_path / "tiny-a")
    shutil.copytree(tiny_bundle, tmp_path / "tiny-a-backup")
    lines = small_labels.read_text(encoding="utf-8").splitlines()[:6]
    ids = list(taxonomy.theme_ids)
    items = [
        Item(
            id=str(k),
            text=json.loads(line)["text"],
            lang="en",
            themes=(ids[k % len(ids)],),
            sentiment=list(taxonomy.sentiments)[0],
            source="test",
        )
        for k, line in enumerate(lines)
    ]
    sets = {"test split": items}
    paths = [tmp_path / "tiny-a", tmp_path / "tiny-a-backup"]
    results, decisions = evaluate_models(paths, sets, taxonomy)
    assert list(results) == list(decisions) == ["tiny-a", "tiny-a-backup"]
    table = format_comparison("tiny-a", "tiny-a-backup", results)
    assert "| | tiny-a | tiny-a-backup | change |" in table
    spread = intervals("tiny-a", "tiny-a-backup", decisions, sets, taxonomy, n_resamples=20)
    assert set(spread) == {"test split"}
    # The same bundle twice (or two folders of one name) still gives two distinct entries.
    results, _ = evaluate_models([paths[0], paths[0]], sets, taxonomy)
    assert len(results) == 2


def test_an_empty_extra_set_is_refused_naming_its_file(small_labels, tmp_path):
    from training.compare import evaluation_items

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match=f"{empty}: no labelled items"):
        evaluation_items(small_labels, load_taxonomy("labels/taxonomy.yaml"), empty)


def test_a_theme_absent_from_the_items_is_a_dash_and_no_reason_to_refuse():
    taxonomy = load_taxonomy("labels/taxonomy.yaml")
    ids, sentiments = list(taxonomy.theme_ids), list(taxonomy.sentiments)
    truth = np.zeros((4, len(ids)), dtype=int)
    truth[:, 0] = 1  # only the first theme occurs; neither model predicts any other
    sent = np.zeros(4, dtype=int)
    report = full_report(truth, truth, sent, sent, ["en"] * 4, ids, sentiments)
    results = {"old": {"test split": report}, "new": {"test split": report}}
    table = format_comparison("old", "new", results)
    assert f"| {ids[1]} F1 | - | - | - |" in table
    assert "| **macro F1** | 1.000 | 1.000 | +0.000 |" in table
    assert gate(report, report, 0.01, 0.03) == []
