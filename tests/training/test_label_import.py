"""cxthemes labels import: formats, all-or-nothing validation, duplicates, conflicts."""

from __future__ import annotations

import json

import pytest

from service.taxonomy import load_taxonomy
from training.data import find_label_files, load_items
from training.label_import import LabelImportError, import_labels, near_key

TAXONOMY = load_taxonomy()


def existing_text(labels_dir):
    items, _ = load_items(find_label_files(labels_dir), TAXONOMY)
    return next(i for i in items if i.themes and i.source.startswith("written"))


def test_csv_import_with_provenance_and_duplicate_reports(labels_dir, tmp_path):
    import csv

    old = existing_text(labels_dir)
    src = tmp_path / "batch.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "lang", "themes", "sentiment"])
        writer.writerow(
            ["n1", "The new plan costs twice as much", "en", "pricing_value", "negative"]
        )
        writer.writerow(
            [
                "n2",
                "Chatbot never hands me to a person; app also slow",
                "en",
                "human_support;speed_availability",
                "negative",
            ]
        )
        # the same text in other case and spacing, the same labels: a duplicate
        writer.writerow(
            ["n3", old.text.upper() + "  ", old.lang, ";".join(old.themes), old.sentiment]
        )
        # the same letters with other punctuation, other labels: a conflict
        writer.writerow(
            [
                "n4",
                old.text + "!!",
                old.lang,
                "",
                "positive" if old.sentiment != "positive" else "negative",
            ]
        )
    result = import_labels(src, labels_dir, TAXONOMY, by="ana")
    assert result.imported == 2 and len(result.duplicates) == 1 and len(result.conflicts) == 1
    assert "row 3: already labelled" in result.duplicates[0]
    assert "row 4" in result.conflicts[0]
    rows = [json.loads(x) for x in result.out_path.read_text().splitlines()]
    assert rows[1]["themes"] == ["human_support", "speed_availability"]
    assert rows[0]["provenance"]["by"] == "ana" and rows[0]["provenance"]["file"] == "batch.csv"
    items, problems = load_items(find_label_files(labels_dir), TAXONOMY)
    assert not problems.errors and any(i.text.startswith("The new plan") for i in items)
    # Importing the same file again adds nothing.
    again = import_labels(src, labels_dir, TAXONOMY)
    assert again.imported == 0 and again.out_path is None


def test_any_bad_row_stops_the_import_and_all_are_listed(labels_dir, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"text": "fine", "lang": "en", "themes": [], "sentiment": "neutral"}),
                json.dumps(
                    {"text": "x", "lang": "en", "themes": ["refunds"], "sentiment": "neutral"}
                ),
                json.dumps({"text": "y", "lang": "en", "themes": [], "sentiment": "angry"}),
                "{oops",
                json.dumps({"text": "", "themes": [], "sentiment": "neutral"}),
            ]
        )
        + "\n"
    )
    before = sorted(p.name for p in labels_dir.rglob("*"))
    with pytest.raises(LabelImportError) as caught:
        import_labels(src, labels_dir, TAXONOMY)
    message = str(caught.value)
    assert "4 bad rows; nothing was imported" in message
    assert "row 2: unknown theme ids ['refunds']" in message
    assert "row 3: unknown sentiment 'angry'" in message
    assert "row 4: invalid JSON" in message and "row 5: empty or missing text" in message
    assert sorted(p.name for p in labels_dir.rglob("*")) == before


def test_label_studio_export(labels_dir, tmp_path):
    tasks = [
        {
            "id": 1,
            "data": {"text": "Why is the AI reading my emails?"},
            "annotations": [
                {
                    "was_cancelled": False,
                    "updated_at": "2026-11-20T10:00:00Z",
                    "completed_by": {"email": "li@example.com"},
                    "result": [
                        {
                            "from_name": "themes",
                            "type": "choices",
                            "value": {"choices": ["privacy_data", "ai_trust"]},
                        },
                        {
                            "from_name": "sentiment",
                            "type": "choices",
                            "value": {"choices": ["negative"]},
                        },
                    ],
                }
            ],
        },
        {"id": 2, "data": {"text": "not labelled yet"}, "annotations": []},
        {"id": 3, "data": {"text": "cancelled"}, "annotations": [{"was_cancelled": True}]},
    ]
    src = tmp_path / "export.json"
    src.write_text(json.dumps(tasks))
    result = import_labels(src, labels_dir, TAXONOMY)
    assert result.imported == 1 and result.unannotated == 2
    row = json.loads(result.out_path.read_text())
    assert row["themes"] == ["privacy_data", "ai_trust"] and row["lang"] == "en"
    assert row["provenance"]["labelled_by"] == "li@example.com"


def test_near_key_ignores_case_spacing_punctuation_and_digits():
    assert near_key("Great app!!  10/10") == near_key("great APP 9/10.")
    assert near_key("退款太慢了！") == near_key("退款太慢了")
    assert near_key("slow app") != near_key("slow apps")


def test_two_same_named_files_imported_in_the_same_second_are_both_kept(
    labels_dir, tmp_path, monkeypatch
):
    """Two labellers' batch.csv imported at once: the second used to replace the first."""
    import csv

    from training import label_import

    class FrozenClock:
        @staticmethod
        def now(tz=None):
            from datetime import datetime

            return datetime(2026, 11, 27, 22, 43, 14, tzinfo=tz)

    monkeypatch.setattr(label_import, "datetime", FrozenClock)
    paths = []
    for who, text in (("ana", "The refund took a month"), ("bo", "Nobody picks up the phone")):
        (tmp_path / who).mkdir()
        src = tmp_path / who / "batch.csv"
        with src.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "lang", "themes", "sentiment"])
            writer.writerow([text, "en", "service_quality", "negative"])
        paths.append(import_labels(src, labels_dir, TAXONOMY, by=who).out_path)
    assert paths[0] != paths[1] and all(p.is_file() for p in paths)
    items, _ = load_items(find_label_files(labels_dir), TAXONOMY)
    texts = {i.text for i in items}
    assert {"The refund took a month", "Nobody picks up the phone"} <= texts
    assert not list((labels_dir / "imported").glob(".import-*"))  # no temporary file left
