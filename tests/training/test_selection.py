"""Choosing texts to label: margins, the uncertain and random parts, and the input rows."""

import json

import numpy as np
import pytest

from service.batch.readers import InputError
from service.cli import main
from training.selection import RANDOM, UNCERTAIN, margins, read_candidates, select


def test_margin_is_the_nearest_theme_score_to_its_threshold():
    scores = np.array([[0.10, 0.62, 0.90], [0.45, 0.05, 0.30]])
    thresholds = np.array([0.5, 0.6, 0.4])
    np.testing.assert_allclose(margins(scores, thresholds), [0.02, 0.05])


def test_the_least_sure_first_then_a_random_share_of_the_rest():
    margin = np.array([0.30, 0.01, 0.20, 0.02, 0.40, 0.03, 0.50, 0.60, 0.70, 0.80])
    chosen = select(margin, n=6, random_share=0.5, seed=1)
    assert len(chosen) == 6 and len({i for i, _ in chosen}) == 6
    assert [i for i, why in chosen if why == UNCERTAIN] == [1, 3, 5]
    randoms = [i for i, why in chosen if why == RANDOM]
    assert len(randoms) == 3 and not {1, 3, 5} & set(randoms)
    assert select(margin, n=6, random_share=0.5, seed=1) == chosen  # seeded
    # Another seed draws another random part from the same rest.
    others = {
        tuple(i for i, why in select(margin, 6, 0.5, seed=s) if why == RANDOM) for s in range(8)
    }
    assert len(others) > 1


def test_selection_bounds():
    margin = np.array([0.2, 0.1, 0.3])
    assert [why for _, why in select(margin, n=10, random_share=0.0)] == [UNCERTAIN] * 3
    assert {why for _, why in select(margin, n=2, random_share=1.0)} == {RANDOM}
    assert select(margin, n=0, random_share=0.3) == []
    with pytest.raises(ValueError, match="random_share"):
        select(margin, n=2, random_share=1.5)


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def test_candidates_leave_out_labelled_empty_and_repeated_texts(tmp_path):
    path = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": "The app logs me out every day."},
            {"id": "b", "text": "  "},
            {"id": "c", "text": "Way too expensive for what it does!"},
            {"text": "the app logs me out every day"},  # a repeat once normalised
            {"id": "", "text": "Support answered within minutes."},
            {"id": "e"},
        ],
    )
    found = read_candidates(path, "text", "id", ["Way too expensive for what it does"])
    assert found.texts == ["The app logs me out every day.", "Support answered within minutes."]
    assert found.ids[0] == "a" and found.ids[1].startswith("row-")
    assert len(found.skipped) == 4
    assert all(line.startswith(f"{path} row ") for line in found.skipped)


def test_candidates_are_compared_as_labels_import_compares_them(tmp_path):
    """Digits count ("Rated 1/10" is no repeat of "Rated 10/10"), and personal data is
    masked first: labelled texts are kept masked, so an unmasked copy is no new text."""
    path = _write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"text": "Rated 1/10, courier never came"},
            {"text": "Rated 10/10, courier never came"},
            {"text": "3点"},
            {"text": "8点"},
            {"text": "Write to ana.lopez@example.com about my refund"},
        ],
    )
    found = read_candidates(path, "text", None, ["write to [EMAIL] about my refund!"])
    assert found.texts == [
        "Rated 1/10, courier never came",
        "Rated 10/10, courier never came",
        "3点",
        "8点",
    ]
    assert len(found.skipped) == 1 and "row 5: already labelled" in found.skipped[0]


def test_candidates_name_a_missing_text_column(tmp_path):
    path = _write_jsonl(tmp_path / "in.jsonl", [{"body": "hello"}])
    with pytest.raises(InputError, match="no column 'text'"):
        read_candidates(path, "text", None, [])


def test_labels_select_writes_label_studio_tasks(tiny_bundle, small_labels, tmp_path, capsys):
    words = "refund delivery price privacy chatbot agent speed quality app bill login parcel"
    texts = [f"The {w} was a problem and nobody answered me." for w in words.split()]
    path = _write_jsonl(
        tmp_path / "new.jsonl", [{"id": f"n{k}", "text": t} for k, t in enumerate(texts)]
    )
    out = tmp_path / "out" / "tasks.json"
    args = ["labels", "select", str(path), "-o", str(out), "--model", str(tiny_bundle)]
    code = main([*args, "--n", "6", "--random-share", "0.5", "--labels", str(small_labels)])
    assert code == 0
    tasks = json.loads(out.read_text())
    assert len(tasks) == 6
    assert sorted(t["meta"]["review_reasons"][0] for t in tasks) == [RANDOM] * 3 + [UNCERTAIN] * 3
    uncertain = [
        t["meta"]["review_margin"] for t in tasks if t["meta"]["review_reasons"] == [UNCERTAIN]
    ]
    randoms = [t["meta"]["review_margin"] for t in tasks if t["meta"]["review_reasons"] == [RANDOM]]
    assert max(uncertain) <= min(randoms)  # the uncertain part is the least sure
    assert {t["data"]["id"] for t in tasks} <= {f"n{k}" for k in range(12)}
    assert all(t["data"]["text"] in texts for t in tasks)
    assert all(t["predictions"][0]["model_version"] == "tiny-test" for t in tasks)
    assert out.with_suffix(".label-config.xml").is_file()
    assert "3 uncertain, 3 random" in capsys.readouterr().out

    # Bad arguments are one clear line, not a traceback.
    assert main([*args, "--n", "6", "--random-share", "2"]) == 2
    assert "--random-share" in capsys.readouterr().err
    assert main([*args, "--text-column", "body"]) == 2
    assert "no column 'body'" in capsys.readouterr().err


def test_imported_selection_can_be_kept_out_of_dev_and_test(labels_dir, tmp_path, monkeypatch):
    """`labels import --train-only` records the new items as train in the frozen splits, so a
    batch chosen for the model's uncertainty never makes dev or test harder."""
    import training.splits as splits

    manifest = tmp_path / "splits.tsv"
    monkeypatch.setattr(splits, "SPLITS_FILE", manifest)
    # Texts that differ in letters (import skips copies that differ only in digits).
    words = [a + b for a in "bcdfghjklmnpqrstvwz" for b in "aeiou"]
    pool = (f"The chatbot kept looping, said {w}{v}" for w in words for v in words)
    texts = [next(t for t in pool if splits.hash_split(t) == s) for s in ("test", "dev")]
    rows = [
        {"text": t, "lang": "en", "themes": ["human_support"], "sentiment": "negative"}
        for t in texts
    ]
    new = _write_jsonl(tmp_path / "labelled.jsonl", rows)
    args = ["labels", "import", str(new), "--labels", str(labels_dir), "--by", "t"]
    assert main([*args, "--train-only"]) == 0
    assert {splits.split_of(t, splits.load_manifest(manifest)) for t in texts} == {"train"}


def test_labels_select_scores_in_chunks_with_the_same_choice(
    tiny_bundle, small_labels, tmp_path, monkeypatch
):
    """Scoring a large export chunk by chunk (only scores and answers kept) must choose and
    describe the same tasks as scoring it whole."""
    import service.cli as cli

    words = "refund delivery price privacy chatbot agent speed quality app bill login parcel"
    texts = [
        f"My {w} issue: {'really ' * k}bad, nobody answered." for k, w in enumerate(words.split())
    ]
    path = _write_jsonl(
        tmp_path / "new.jsonl", [{"id": f"n{k}", "text": t} for k, t in enumerate(texts)]
    )
    outputs = []
    for chunk in (10_000, 5):
        monkeypatch.setattr(cli, "_SELECT_CHUNK", chunk)
        out = tmp_path / f"tasks-{chunk}.json"
        args = ["labels", "select", str(path), "-o", str(out), "--model", str(tiny_bundle)]
        assert main([*args, "--n", "7", "--labels", str(small_labels)]) == 0
        outputs.append(json.loads(out.read_text()))
    whole, chunked = outputs
    assert len(whole) == 7 and chunked == whole
    for task in whole:  # each task describes its own text
        assert task["data"]["text"] == texts[int(task["data"]["id"][1:])]
