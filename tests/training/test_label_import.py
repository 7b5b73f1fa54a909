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


def test_near_key_ignores_case_spacing_and_punctuation_but_not_digits():
    assert near_key("Great app!!  10/10") == near_key("great APP 10/10.")
    assert near_key("退款太慢了！") == near_key("退款太慢了")
    assert near_key("slow app") != near_key("slow apps")
    # A rating is the feedback: "3点" and "8点" are no copies of each other.
    assert near_key("3点") != near_key("8点")
    assert near_key("Rated 1/10") != near_key("Rated 10/10")
    assert near_key("Rated １/10") == near_key("rated 1/10")  # full-width digits as ASCII


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


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _import_error(src, labels_dir) -> str:
    before = sorted(p.name for p in labels_dir.rglob("*"))
    with pytest.raises(LabelImportError) as caught:
        import_labels(src, labels_dir, TAXONOMY)
    assert sorted(p.name for p in labels_dir.rglob("*")) == before  # nothing written
    return str(caught.value)


def _annotation(aid, themes, sentiment, updated, **extra):
    result = []
    if themes is not None:
        result.append({"from_name": "themes", "type": "choices", "value": {"choices": themes}})
    if sentiment is not None:
        result.append(
            {"from_name": "sentiment", "type": "choices", "value": {"choices": [sentiment]}}
        )
    return {"id": aid, "completed_by": aid, "result": result, "updated_at": updated, **extra}


def test_personal_data_is_masked_before_comparing_and_writing(labels_dir, tmp_path):
    """The labelled files are committed: an address or phone number must not reach them,
    and texts that differ only in personal data are one text, as the store keeps them."""
    src = _jsonl(
        tmp_path / "pii.jsonl",
        [
            {
                "text": "Refund still missing, write to ana.lopez@example.com or 13812345678",
                "lang": "en",
                "themes": ["speed_availability"],
                "sentiment": "negative",
            },
            {
                "text": "Refund still missing, write to bo@example.org or 13987654321",
                "lang": "en",
                "themes": ["speed_availability"],
                "sentiment": "negative",
            },
        ],
    )
    result = import_labels(src, labels_dir, TAXONOMY)
    assert result.imported == 1 and result.masked == 1 and len(result.duplicates) == 1
    assert "row 2: repeated at row 1 of the same file" in result.duplicates[0]
    written = result.out_path.read_text()
    assert "example.com" not in written and "13812345678" not in written
    assert json.loads(written)["text"] == "Refund still missing, write to [EMAIL] or [PHONE]"
    assert result.texts == ["Refund still missing, write to [EMAIL] or [PHONE]"]


def test_label_studio_json_min_export(labels_dir, tmp_path):
    """JSON-MIN: flat records, one per annotation; one choice is a string, several a
    {"choices": [...]}. It used to import nothing, as "8 tasks not annotated"."""
    meta = {"annotator": "ana@example.com", "lead_time": 4.2}
    records = [
        {
            "id": "fb-5",
            "text": "Le produit est arrivé cassé et personne ne répond.",
            "lang": "fr",
            "themes": {"choices": ["product_quality", "service_quality"]},
            "sentiment": "negative",
            "annotation_id": 1,
            "updated_at": "2026-11-28T10:00:00.000000Z",
            **meta,
        },
        {
            "id": "fb-3",
            "text": "I just want to talk to a real person, the bot loops forever.",
            "lang": "en",
            "themes": "human_support",
            "sentiment": "negative",
            "annotation_id": 2,
            "updated_at": "2026-11-28T10:00:00.000000Z",
            **meta,
        },
        {"id": "fb-7", "text": "Thanks, fixed.", "lang": None, "sentiment": "positive"},
        # Another annotator's later record of fb-3 disagrees: the newest one is used.
        {
            "id": "fb-3",
            "text": "I just want to talk to a real person, the bot loops forever.",
            "lang": "en",
            "themes": ["human_support", "service_quality"],
            "sentiment": "negative",
            "annotation_id": 3,
            "updated_at": "2026-11-28T11:00:00.000000Z",
            "annotator": "bo@example.com",
        },
    ]
    src = tmp_path / "export_min.json"
    src.write_text(json.dumps(records, ensure_ascii=False))
    result = import_labels(src, labels_dir, TAXONOMY)
    assert result.imported == 3 and result.unannotated == 0
    rows = {r["provenance"]["original_id"]: r for r in map(json.loads, result.out_path.open())}
    assert rows["fb-5"]["themes"] == ["product_quality", "service_quality"]
    assert rows["fb-3"]["themes"] == ["human_support", "service_quality"]
    assert rows["fb-3"]["provenance"]["labelled_by"] == "bo@example.com"
    assert rows["fb-7"]["themes"] == [] and rows["fb-7"]["lang"] == "en"
    assert len(result.disagreements) == 1
    assert result.disagreements[0].startswith(f"{src}: row 4: 2 annotations (rows 2, 4) disagree")
    assert result.disagreements[0].endswith("(id fb-3)")


def _task(tid, text, annotations, data_id=None):
    data = {"text": text, "lang": "en", **({"id": data_id} if data_id else {})}
    return {"id": tid, "data": data, "annotations": annotations}


def test_taxonomy_results_are_read_and_unknown_results_stop_the_import(labels_dir, tmp_path):
    """A result the importer cannot read used to be dropped: the item imported without
    themes, wrong training data."""
    taxonomy_result = {
        "from_name": "themes",
        "type": "taxonomy",
        "value": {"taxonomy": [["Money", "pricing_value"], ["privacy_data"]]},
    }
    sentiment = {"from_name": "sentiment", "type": "choices", "value": {"choices": ["negative"]}}
    src = tmp_path / "taxonomy.json"
    text = "Hidden fees everywhere and they sold my data."
    src.write_text(json.dumps([_task(100, text, [{"result": [taxonomy_result, sentiment]}])]))
    result = import_labels(src, labels_dir, TAXONOMY)
    assert json.loads(result.out_path.read_text())["themes"] == ["privacy_data", "pricing_value"]

    misnamed = {**taxonomy_result, "from_name": "theme", "type": "choices"}
    misnamed["value"] = {"choices": ["pricing_value"]}
    src = tmp_path / "misnamed.json"
    tasks = [
        _task(7, "The monthly price doubled.", [{"result": [sentiment]}]),
        _task(8, "Price doubled again.", [{"id": 31, "result": [misnamed, sentiment]}], "tx-2"),
    ]
    src.write_text(json.dumps(tasks))
    message = _import_error(src, labels_dir)
    assert "1 bad rows" in message
    assert "row 2: annotation 31: cannot read a result from_name='theme'" in message
    assert message.endswith("(Label Studio task 8, data.id tx-2)")


def test_label_studio_csv_export_with_several_choices(labels_dir, tmp_path):
    """Label Studio's CSV export writes several choices as JSON: split at commas, they
    were ids such as '{"choices": ["product_quality"'."""
    import csv

    src = tmp_path / "export.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["annotation_id", "annotator", "id", "lang", "sentiment", "text", "themes"])
        writer.writerow(
            [
                1,
                "ana@example.com",
                "fb-5",
                "fr",
                "negative",
                "Le produit est arrivé cassé et personne ne répond.",
                json.dumps({"choices": ["product_quality", "service_quality"]}),
            ]
        )
        writer.writerow(
            [2, "ana@example.com", "fb-9", "en", "negative", "Slow and pricey", '["pricing_value"]']
        )
    result = import_labels(src, labels_dir, TAXONOMY)
    rows = [json.loads(x) for x in result.out_path.read_text().splitlines()]
    assert [r["themes"] for r in rows] == [
        ["product_quality", "service_quality"],
        ["pricing_value"],
    ]
    assert rows[0]["provenance"]["labelled_by"] == "ana@example.com"


def test_texts_that_differ_in_digits_are_no_conflict(labels_dir, tmp_path):
    """Ratings are the feedback: "Rated 1/10" and "Rated 10/10" used to be one text in
    conflict, and the import failed; a real conflict inside the file says so."""
    src = _jsonl(
        tmp_path / "ratings.jsonl",
        [
            {"text": "3点", "lang": "ja", "themes": [], "sentiment": "negative"},
            {"text": "8点", "lang": "ja", "themes": [], "sentiment": "positive"},
            {"text": "Rated 1/10, courier never came", "lang": "en", "sentiment": "negative"},
            {"text": "Rated 10/10, courier never came", "lang": "en", "sentiment": "positive"},
            {"text": "rated 1/10 - courier never came!", "lang": "en", "sentiment": "neutral"},
        ],
    )
    result = import_labels(src, labels_dir, TAXONOMY)
    assert result.imported == 4 and len(result.conflicts) == 1
    assert (
        "row 5: labelled []/neutral here but []/negative at row 3 of the same file"
        in (result.conflicts[0])
    )
    assert result.conflicts[0].endswith("resolve it in the file being imported")


def test_language_codes_are_read_as_the_service_reads_them(labels_dir, tmp_path):
    row = {"themes": [], "sentiment": "negative"}
    good = _jsonl(
        tmp_path / "good.jsonl",
        [
            {**row, "text": "The refund took three weeks.", "lang": "EN"},
            {**row, "text": "Refund took ages, awful.", "lang": "en_US"},
            {**row, "text": "Refund never came.", "lang": "eng"},
            {**row, "text": "退款花了三个星期", "lang": "zh-Hant"},
        ],
    )
    result = import_labels(good, labels_dir, TAXONOMY)
    langs = [json.loads(x)["lang"] for x in result.out_path.read_text().splitlines()]
    assert langs == ["en", "en", "en", "zh"]
    bad = _jsonl(
        tmp_path / "bad.jsonl",
        [
            {**row, "text": "The refund took three weeks to arrive.", "lang": "und"},
            {**row, "text": "Die Rückerstattung dauerte drei Wochen.", "lang": "xx"},
            {**row, "text": "El reembolso tardó tres semanas.", "lang": "mul"},
            {**row, "text": "Le remboursement a pris trois semaines.", "lang": "zxx"},
            {**row, "text": "👍👍"},  # no lang, and none can be told
        ],
    )
    message = _import_error(bad, labels_dir)
    assert "5 bad rows" in message
    for number, code in ((1, "und"), (2, "xx"), (3, "mul"), (4, "zxx")):
        assert f"row {number}: bad language code {code!r}" in message
    assert "row 5: no lang given" in message
    from training.data import language_code  # one rule for the labelled files and imports

    assert [language_code(c) for c in ("EN", "en_US", "iw", "english", "ace", None)] == [
        "en",
        "en",
        "he",
        None,
        None,
        None,
    ]


def test_texts_of_only_invisible_characters_are_empty(labels_dir, tmp_path):
    row = {"lang": "ko", "themes": [], "sentiment": "neutral"}
    src = _jsonl(
        tmp_path / "invisible.jsonl",
        [{**row, "text": "\u200b\u200b"}, {**row, "text": "\u3164"}, {**row, "text": "좋아요"}],
    )
    message = _import_error(src, labels_dir)
    assert "2 bad rows" in message
    assert f"{src}: row 1: empty text" in message and f"{src}: row 2: empty text" in message


def test_annotators_disagreeing(labels_dir, tmp_path):
    """The ground truth wins, then the newest complete annotation (timestamps compared as
    times); an empty newest one used to stop the import ("unknown sentiment None")."""
    text = "The app keeps asking for my location and I never agreed to share it."
    tasks = [
        _task(
            100,
            text,
            [
                _annotation(
                    1, ["privacy_data"], "negative", "2026-11-28T10:00:00Z", ground_truth=True
                ),
                _annotation(2, ["product_quality"], "neutral", "2026-11-28T11:00:00Z"),
            ],
        ),
        _task(
            101,
            "I just want to talk to a real person, the bot loops forever.",
            [
                _annotation(3, ["human_support"], "negative", "2026-11-28T10:00:00Z"),
                _annotation(4, None, None, "2026-11-28T11:00:00Z"),  # submitted empty
            ],
        ),
        _task(
            102,
            "Price went up again, 20% more for the same plan.",
            [
                _annotation(5, ["pricing_value"], "negative", "2026-11-28T10:00:01.500000Z"),
                _annotation(6, ["product_quality"], "negative", "2026-11-28T10:00:01Z"),
            ],
        ),
    ]
    src = tmp_path / "export.json"
    src.write_text(json.dumps(tasks))
    result = import_labels(src, labels_dir, TAXONOMY)
    rows = [json.loads(x) for x in result.out_path.read_text().splitlines()]
    assert [(r["themes"], r["sentiment"]) for r in rows] == [
        (["privacy_data"], "negative"),
        (["human_support"], "negative"),
        (["pricing_value"], "negative"),
    ]
    assert len(result.disagreements) == 2
    assert result.disagreements[0].startswith(f"{src}: row 1: 2 annotations disagree; used the")
    assert "the ground truth" in result.disagreements[0]
    assert result.disagreements[0].endswith("(Label Studio task 100)")
    assert result.disagreements[1].endswith("(Label Studio task 102)")


def test_error_messages_say_where_and_what_is_expected(labels_dir, tmp_path):
    src = tmp_path / "export.json"
    src.write_text(
        json.dumps(
            [
                _task(100, "fine", [_annotation(1, [], "neutral", "2026-11-28T10:00:00Z")]),
                _task(
                    101,
                    "x",
                    [_annotation(2, ["refunds"], "neutral", "2026-11-28T10:00:00Z")],
                    "fb-9",
                ),
            ]
        )
    )
    message = _import_error(src, labels_dir)
    assert f"{src}: row 2: unknown theme ids ['refunds'] (valid: " in message
    assert ", ".join(TAXONOMY.theme_ids) + ") (Label Studio task 101, data.id fb-9)" in message

    not_a_list = tmp_path / "tasks.json"
    not_a_list.write_text(json.dumps({"tasks": []}))
    message = _import_error(not_a_list, labels_dir)
    assert message.startswith(f"{not_a_list}: ") and "JSON list" in message

    for name, header in (("semi.csv", "text;lang;themes;sentiment"), ("caps.csv", "Text,Lang")):
        src = tmp_path / name
        src.write_text(f"{header}\nToo expensive;en;pricing_value;negative\n")
        message = _import_error(src, labels_dir)
        assert message.startswith(f"{src}: no 'text' column (found: ")
        assert repr(header.split(",")[0]) in message


def test_a_re_import_names_the_copies_an_earlier_import_wrote(labels_dir, tmp_path):
    """What --train-only records on a re-run: rows matched to copies under ``imported/``
    (the same labels, or changed ones), never to labelled data from elsewhere."""
    shipped = json.loads((labels_dir / "items.jsonl").read_text().splitlines()[0])
    rows = [
        {
            "text": "The app logs me out every hour",
            "themes": ["product_quality"],
            "sentiment": "negative",
            "lang": "en",
        },
        {
            "text": "Refund took three weeks",
            "themes": ["service_quality"],
            "sentiment": "negative",
            "lang": "en",
        },
    ]
    src = tmp_path / "batch.jsonl"
    _jsonl(src, rows)
    first = import_labels(src, labels_dir, TAXONOMY, by="t")
    assert first.imported == 2 and first.imported_before == []

    # relabelled since: a conflict, and still a copy an earlier import wrote
    rows[1]["themes"] = ["speed_availability"]
    _jsonl(src, [*rows, {**shipped, "id": "copy"}])
    again = import_labels(src, labels_dir, TAXONOMY, by="t")
    assert again.imported == 0 and len(again.conflicts) == 1 and len(again.duplicates) == 2
    assert sorted(again.imported_before) == sorted(r["text"] for r in rows)
