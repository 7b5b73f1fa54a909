"""Frozen, stratified splits: shares per (language, theme) cell, and nothing ever moves."""

from collections import Counter
from dataclasses import dataclass

import pytest

from training.splits import (
    extend_manifest,
    hash_split,
    load_manifest,
    record_split,
    split_of,
    stratified_assignment,
    text_key,
    write_manifest,
)


@dataclass
class _Item:
    text: str
    lang: str
    themes: tuple[str, ...]


def _items(n=2000):
    themes = ["a", "b", "c", "rare"]
    out = []
    for i in range(n):
        picked = (themes[i % 3],) + (("rare",) if i % 25 == 0 else ())
        out.append(_Item(f"text number {i}", ["en", "zh", "fr"][i % 7 % 3], picked))
    return out


def test_stratified_shares_hold_per_cell():
    items = _items()
    assignment = stratified_assignment(items)
    assert len(assignment) == len(items)
    cells = Counter((i.lang, t) for i in items for t in i.themes)
    test = Counter(
        (i.lang, t) for i in items for t in i.themes if assignment[text_key(i.text)] == "test"
    )
    for cell, n in cells.items():
        assert abs(test[cell] / n - 0.15) <= 0.03 + 1 / n, (cell, test[cell], n)


def test_assignment_is_deterministic():
    assert stratified_assignment(_items(300)) == stratified_assignment(list(reversed(_items(300))))


def test_manifest_wins_and_new_texts_fall_back_to_hash(tmp_path):
    items = _items(200)
    path = tmp_path / "splits.tsv"
    assignment = stratified_assignment(items)
    assert write_manifest(assignment, path) == 200
    manifest = load_manifest(path)
    assert all(split_of(i.text, manifest) == assignment[text_key(i.text)] for i in items)
    new = "a text added after freezing"
    assert split_of(new, manifest) == hash_split(new)


def test_repository_manifest_covers_the_labelled_data():
    from service.taxonomy import load_taxonomy
    from tests.conftest import LABELS
    from training.data import find_label_files, load_items, split_items

    items, _ = load_items(find_label_files(LABELS), load_taxonomy())
    manifest = load_manifest()
    frozen = [i for i in items if text_key(i.text) in manifest]
    assert len(frozen) >= 0.9 * len(items)
    test = split_items(frozen)["test"]
    assert abs(len(test) / len(frozen) - 0.15) < 0.02


def test_extending_the_manifest_records_new_items_where_they_already_were(tmp_path):
    items = _items(300)
    old, added = items[:200], items[200:]
    path = tmp_path / "splits.tsv"
    write_manifest(stratified_assignment(old), path)
    before = {i.text: split_of(i.text, load_manifest(path)) for i in items}
    assert extend_manifest(items, path) == 100
    manifest = load_manifest(path)
    assert len(manifest) == 300
    assert {i.text: split_of(i.text, manifest) for i in items} == before  # nothing moved
    assert all(manifest[text_key(i.text)] == hash_split(i.text) for i in added)
    assert extend_manifest(items, path) == 0  # idempotent


def test_record_split_keeps_a_chosen_batch_out_of_dev_and_test(tmp_path):
    path = tmp_path / "splits.tsv"
    frozen = "a text frozen in dev"
    write_manifest({text_key(frozen): "dev"}, path)
    # Texts whose hash would put them in test and dev.
    pool = (f"uncertain text number {k}" for k in range(10_000))
    to_test = next(t for t in pool if hash_split(t) == "test")
    to_dev = next(t for t in pool if hash_split(t) == "dev")
    assert record_split([to_test, to_dev, frozen], "train", path) == 2
    manifest = load_manifest(path)
    assert split_of(to_test, manifest) == split_of(to_dev, manifest) == "train"
    assert split_of(frozen, manifest) == "dev"  # what was frozen does not move
    assert record_split([to_test], "train", path) == 0  # idempotent
    with pytest.raises(ValueError, match="unknown split"):
        record_split([to_test], "holdout", path)


@pytest.mark.parametrize(
    "bad", ["<<<<<<< HEAD", "abc123\tTest", "abc123\ttrain\textra", "abc123 dev"]
)
def test_a_damaged_manifest_is_an_error_naming_the_line(tmp_path, bad):
    path = tmp_path / "splits.tsv"
    path.write_text(f"# frozen\nk1\ttrain\n{bad}\nk2\ttest\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:3: expected"):
        load_manifest(path)


def test_recording_at_once_from_many_threads_loses_nothing(tmp_path):
    """Each recording reads the manifest, adds its texts and writes it: without a lock, two at
    once (two imports) kept only the second one's texts."""
    import threading

    path = tmp_path / "splits.tsv"
    write_manifest({}, path)
    start = threading.Barrier(8)

    def record(k):
        start.wait()
        for n in range(15):
            record_split([f"thread {k} text {n}"], "train", path)

    threads = [threading.Thread(target=record, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(load_manifest(path)) == 8 * 15
    assert [p.name for p in tmp_path.iterdir()] == ["splits.tsv"]  # no temporary files left


def test_a_failed_write_leaves_the_manifest_as_it_was(tmp_path, monkeypatch):
    """Written to a temporary file and renamed over it: a full disk half-way through must not
    leave a truncated manifest (every item past the cut would fall back to its hash split)."""
    import os

    path = tmp_path / "splits.tsv"
    write_manifest({"a" * 16: "test"}, path)
    path.chmod(0o640)
    before = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        record_split(["another text"], "train", path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["splits.tsv"]
    monkeypatch.undo()
    assert record_split(["another text"], "train", path) == 1
    assert load_manifest(path) == {"a" * 16: "test", text_key("another text"): "train"}
    assert path.stat().st_mode & 0o777 == 0o640  # the manifest keeps its mode
