"""The bad input catalogue, batch half (issue 9): ``cxthemes score`` (service.batch) and
``cxthemes labels import``. Every item ends in a clear message naming the file and row (exit
status 2 for a file that cannot be read, a row in ``OUTPUT.errors.csv``, e.g.
``out.csv.errors.csv``, for a bad row while the run goes on) or in a defined result; never a
traceback, a hang or lost rows.

The HTTP half is in tests/service/api/test_bad_inputs.py. What test_formats.py,
test_runner.py and tests/training/test_label_import.py already assert (a blank JSONL text,
``{broken`` JSON, too many CSV fields, GBK bytes in a CSV, an unknown theme in a JSONL
import, ...) is only widened here.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from datetime import datetime

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from service.batch.readers import InputError
from service.batch.runner import Job, ScoreOptions
from service.cli import main
from service.store import Store
from service.store.tables import feedback
from service.taxonomy import load_taxonomy
from tests.conftest import read_jsonl
from training.label_import import LabelImportError, import_labels

TAXONOMY = load_taxonomy()


def run(predictor, src, out, store=None, **options):
    return Job(predictor, src, out, ScoreOptions(**options), store=store).run(progress=False)


def errors_of(summary) -> list[tuple[str, str, str]]:
    with summary.errors_path.open(encoding="utf-8") as fh:
        return [(e["row"], e["id"], e["reason"]) for e in csv.DictReader(fh)]


def write_csv(path, header, rows, delimiter=","):
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def score_cli(tiny_bundle, capsys, src, out, *extra) -> tuple[int, str]:
    code = main(["score", str(src), "-o", str(out), "--model", str(tiny_bundle), "-q", *extra])
    return code, capsys.readouterr().err


# -- empty and whitespace-only texts ---------------------------------------------------------
def test_empty_and_whitespace_texts_are_bad_rows_and_the_run_goes_on(predictor, tmp_path):
    src = write_csv(
        tmp_path / "in.csv",
        ["id", "text"],
        [["1", "Fine app"], ["2", ""], ["3", "   "], ["4", "\u3000\t\u00a0"], ["5", "Slow app"]],
    )
    summary = run(predictor, src, tmp_path / "out.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["1", "5"]
    assert errors_of(summary) == [
        ("2", "2", "empty text"),
        ("3", "3", "empty text"),
        ("4", "4", "empty text"),
    ]


# -- 1 MB texts --------------------------------------------------------------------------------
def test_a_1mb_csv_text_is_scored_in_full_not_a_stopped_run(predictor, tmp_path):
    # The csv module refuses fields over 128 KiB by default: one long transcript used to stop
    # the whole run ("malformed CSV"). The text is mostly blank padding, so the model's work
    # stays small while the reader handles the whole megabyte.
    big = "The agent never called back. " + " " * 1_000_000 + "Refund still missing."
    src = write_csv(tmp_path / "in.csv", ["id", "text"], [["big", big], ["small", "Too pricey"]])
    assert src.stat().st_size > 1_000_000
    summary = run(predictor, src, tmp_path / "out.jsonl")
    assert summary.scored == 2 and summary.errors == 0
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert rows[0]["id"] == "big" and rows[0]["text"] == big  # kept whole: nothing lost


def test_long_texts_cost_linear_time_not_quadratic(predictor, monkeypatch):
    # Each window of a long text looks for its own sentences only. It used to look for all of
    # the text's sentences in every window: a 1 MB text of short sentences took minutes.
    searched = []
    char_spans = predictor._char_spans

    def counting(window, sentences):
        searched.append(len(sentences))
        return char_spans(window, sentences)

    monkeypatch.setattr(predictor, "_char_spans", counting)
    sentences = [f"Order {k} was late." for k in range(3000)]
    (prediction,) = predictor.predict([" ".join(sentences)])
    assert len(searched) > 10  # many windows
    assert sum(searched) == len(sentences)  # each sentence looked for once
    assert set(prediction.evidence) == set(prediction.themes)


# -- wrong types -------------------------------------------------------------------------------
def test_wrong_types_in_jsonl_are_bad_rows_naming_the_row(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [
        {"id": "ok", "text": "Great support"},
        {"id": "n", "text": 5},
        {"id": "l", "text": ["a", "list"]},
        {"id": "z", "text": None},
        {"id": "d", "text": {"nested": "object"}},
        {"id": "b", "text": True},
        {"id": "t", "text": "ok", "created_at": 12345},
        {"id": "y", "text": "ok", "created_at": "yesterday"},
        [1, 2],
        "just a string",
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    summary = run(predictor, src, tmp_path / "out.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["ok"]
    assert errors_of(summary) == [
        ("2", "n", "text is not a string (int)"),
        ("3", "l", "text is not a string (list)"),
        ("4", "z", "empty text"),
        ("5", "d", "text is not a string (dict)"),
        ("6", "b", "text is not a string (bool)"),
        ("7", "t", "created_at is not an ISO 8601 date"),
        ("8", "y", "created_at is not an ISO 8601 date"),
        ("9", "", "not a JSON object"),
        ("10", "", "not a JSON object"),
    ]


# -- invalid UTF-8 bytes and invalid Unicode ---------------------------------------------------
def test_invalid_utf8_in_jsonl_stops_the_run_naming_file_and_row(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "1", "text": "fine"}\n{"id": "2", "text": "bad \xff\xfe"}\n')
    code, err = score_cli(tiny_bundle, capsys, src, tmp_path / "out.jsonl")
    assert code == 2
    assert f"{src}: row 2: bytes that are not valid utf-8" in err and "--encoding" in err
    assert "Traceback" not in err and not (tmp_path / "out.jsonl").exists()


def test_lone_surrogate_escapes_in_jsonl_are_bad_rows(predictor, tmp_path):
    # Valid JSON, but "\ud800" alone is no character: it used to crash the run in the
    # tokenizer, or in writing the output ("surrogates not allowed"), with no row named.
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "1", "text": "half a pair \\ud800"}\n'
        '{"id": "2", "text": "ok", "note": "\\udc00 in another field"}\n'
        '{"id": "\\udbff", "text": "ok"}\n'
        '{"id": "4", "text": "a whole pair \\ud83d\\ude00 is an emoji"}\n',
        encoding="utf-8",
    )
    summary = run(predictor, src, tmp_path / "out.jsonl")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ["4"] and rows[0]["text"].endswith("😀 is an emoji")
    reason = "invalid Unicode (a lone surrogate such as \\ud800)"
    assert errors_of(summary) == [("1", "", reason), ("2", "", reason), ("3", "", reason)]


# -- NUL bytes ---------------------------------------------------------------------------------
def test_nul_characters_are_scored_and_kept_in_the_output(predictor, tmp_path):
    text = "The app\x00 crashed.\x00"
    src = write_csv(tmp_path / "in.csv", ["id", "text"], [["1", text], ["2", "fine"]])
    run(predictor, src, tmp_path / "out.jsonl")
    assert read_jsonl(tmp_path / "out.jsonl")[0]["text"] == text  # the input, unchanged
    run(predictor, src, tmp_path / "out.xlsx")  # Excel cannot hold NUL: dropped there only
    cells = list(load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True))
    assert cells[1][:2] == ("1", "The app crashed.")


def test_nul_characters_are_recorded_without_them_on_every_store(predictor, tmp_path, store_url):
    # PostgreSQL text cannot hold NUL: recording used to fail the whole run.
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "r1", "text": "Support\x00 never answered.", "channel": "web\x00chat"},
        {"id": "r\x002", "text": "an id with NUL cannot be stored"},
        {"id": "r3", "text": "fine", "channel": "app", "created_at": "2026-11-03"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    store = Store.open(store_url, store_text=True)
    try:
        summary = run(predictor, src, tmp_path / "out.jsonl", store=store, record=True)
        assert summary.recorded == 2 and summary.scored == 2
        assert errors_of(summary) == [("2", "r\x002", "id contains a NUL character")]
        with store.engine.connect() as connection:
            stored = {
                r.id: r
                for r in connection.execute(
                    select(feedback.c.id, feedback.c.text, feedback.c.channel)
                )
            }
        assert stored["r1"].text == "Support never answered." and stored["r1"].channel == "webchat"
        assert set(stored) == {"r1", "r3"}
    finally:
        store.close()


# -- right-to-left scripts, combining characters, emoji ---------------------------------------
def test_rtl_combining_and_emoji_texts_round_trip_unchanged(predictor, tmp_path):
    texts = [
        "الخدمة سيئة جدا. أريد التحدث إلى إنسان حقيقي!",
        "האפליקציה איטית מאוד. המחיר גבוה מדי.",
        "\u202eThe bot lied\u202c \u200fيا سلام\u200e",
        "Z\u0337\u0321\u031b\u0334a\u0338l\u0336g\u0335o\u0338 " * 40 + "e" + "\u0301" * 3000,
        "Cafe\u0301 tre\u0300s lent.",
        "Café très lent.",
        "😡😡😡",
        "👨\u200d👩\u200d👧 🇫🇷 👍🏽 ❤️",
    ]
    src = write_csv(tmp_path / "in.csv", ["id", "text"], [[str(k), t] for k, t in enumerate(texts)])
    for out in ("out.xlsx", "out.jsonl", "out.csv"):
        summary = run(predictor, src, tmp_path / out)
        assert summary.scored == len(texts) and summary.errors == 0
    sheet = list(load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True))
    assert [row[1] for row in sheet[1:]] == texts
    jsonl = read_jsonl(tmp_path / "out.jsonl")
    assert [row["text"] for row in jsonl] == texts
    assert all(s in row["text"] for row in jsonl for s in row["evidence"].values())
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as fh:
        assert [row["text"] for row in csv.DictReader(fh)] == texts


# -- unknown theme ids in label imports --------------------------------------------------------
def import_cli(capsys, src, labels_dir) -> tuple[int, str]:
    code = main(["labels", "import", str(src), "--labels", str(labels_dir), "--by", "test"])
    return code, capsys.readouterr().err


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_unknown_theme_ids_in_a_csv_import_stop_it_naming_the_rows(labels_dir, tmp_path, capsys):
    src = write_csv(
        tmp_path / "new.csv",
        ["text", "lang", "themes", "sentiment"],
        [
            ["The new plan costs twice as much", "en", "pricing_value", "negative"],
            ["Refund took a month", "en", "refunds;pricing_value", "negative"],
            ["The bot lied to me", "en", "AI_TRUST", "negative"],
        ],
    )
    before = listing(labels_dir)
    code, err = import_cli(capsys, src, labels_dir)
    assert code == 2
    assert f"{src}: 2 bad rows; nothing was imported" in err
    assert f"{src}: row 2: unknown theme ids ['refunds']" in err
    assert f"{src}: row 3: unknown theme ids ['AI_TRUST']" in err
    assert listing(labels_dir) == before


def test_unknown_theme_ids_in_a_label_studio_export_stop_it(labels_dir, tmp_path, capsys):
    def task(k, themes):
        return {
            "id": k,
            "data": {"text": f"Task {k}: why does the AI read my mail?"},
            "annotations": [
                {
                    "result": [
                        {"from_name": "themes", "type": "choices", "value": {"choices": themes}},
                        {
                            "from_name": "sentiment",
                            "type": "choices",
                            "value": {"choices": ["negative"]},
                        },
                    ]
                }
            ],
        }

    src = tmp_path / "export.json"
    src.write_text(json.dumps([task(1, ["privacy_data"]), task(2, ["bogus_theme"])]))
    before = listing(labels_dir)
    code, err = import_cli(capsys, src, labels_dir)
    assert code == 2 and f"{src}: row 2: unknown theme ids ['bogus_theme']" in err
    assert listing(labels_dir) == before


# -- malformed label import files --------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.csv",
            b"text,lang,themes,sentiment\nfine,en,,neutral\nbad \xff\xfe,en,,neutral\n",
            "bad.csv: line 3: not valid UTF-8",
        ),
        ("bad.jsonl", b'{"text": "bad \xc3", "sentiment": "neutral"}\n', "bad.jsonl: line 1"),
        ("export.json", b"[{not json", "export.json: not a Label Studio JSON export"),
        ("export.json", b'{"tasks": []}', "a Label Studio export is a JSON list of tasks"),
        (
            "rows.jsonl",
            b'{"text": "fine", "lang": "en", "themes": [], "sentiment": "neutral"}\n[1, 2]\n"x"\n',
            "rows.jsonl: row 2: not a JSON object",
        ),
        (
            "tasks.json",
            json.dumps(
                [
                    5,
                    {"data": "text", "annotations": "none"},
                    {"data": {"text": "x"}, "annotations": [{"result": ["not a dict"]}]},
                ]
            ).encode(),
            "tasks.json: 3 bad rows",
        ),
        (
            "surrogate.jsonl",
            b'{"text": "half a pair \\ud800", "lang": "en", "sentiment": "neutral"}\n',
            "surrogate.jsonl: row 1: text holds a lone surrogate",
        ),
        (
            "unbalanced.csv",
            b'text,lang,themes,sentiment\n"never closed,en,,neutral\nnext,en,,neutral\n',
            "unbalanced.csv: row 1: unknown sentiment None",
        ),
        (
            "ragged.csv",
            b"text,lang,themes,sentiment\nonly text and lang,en\n",
            "ragged.csv: row 1: unknown sentiment None",
        ),
        ("noheader.csv", b"body,lang\nx,en\n", "noheader.csv: no 'text' column (found: 'body'"),
    ],
)
def test_malformed_label_files_are_refused_naming_file_and_row(
    labels_dir, tmp_path, capsys, name, content, message
):
    # These used to end in a traceback (a JSONL line or a task that is not an object) or in
    # a bare codec / JSON error naming neither the file nor the row.
    src = tmp_path / name
    src.write_bytes(content)
    before = listing(labels_dir)
    code, err = import_cli(capsys, src, labels_dir)
    assert code == 2 and message in err and "Traceback" not in err
    assert listing(labels_dir) == before
    with pytest.raises(LabelImportError):
        import_labels(src, labels_dir, TAXONOMY)


# -- malformed CSV -----------------------------------------------------------------------------
def test_an_unbalanced_quote_stops_the_run_instead_of_swallowing_rows(
    tiny_bundle, tmp_path, capsys
):
    # The open quote used to run to the end of the file: rows 2 and 3 became part of row
    # 1's text and were silently lost.
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,fine\n2,"never closed\n3,next row\n4,last row\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, err = score_cli(tiny_bundle, capsys, src, out)
    assert code == 2 and f"{src}: row 2 (line 3): a quoted field opened here is never closed" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('id,text\n1,fine\n2,"the last field is never closed\n', "row 2 (line 3)"),
        (
            'id,text\n1,"quoted ""quotes"" are fine"\n2,"so is a\nsecond line"\n3,"x\n',
            "row 3 (line 5)",
        ),
    ],
)
def test_an_unbalanced_quote_in_the_last_row_names_it(predictor, tmp_path, content, where):
    src = tmp_path / "in.csv"
    src.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=rf"in.csv: {re.escape(where)}: a quoted field"):
        run(predictor, src, tmp_path / "out.jsonl")


def test_ragged_rows_are_bad_rows_naming_the_row(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("id,text,channel\n1,fine,app\n2,too few\n3,too,many,fields\n4,ok,web\n")
    out = tmp_path / "out.jsonl"
    code, err = score_cli(tiny_bundle, capsys, src, out)
    assert code == 0
    assert f"{src}: row 2: 2 fields where the header has 3; skipped" in err
    assert f"{src}: row 3: 4 fields where the header has 3; skipped" in err
    assert [r["id"] for r in read_jsonl(out)] == ["1", "4"]
    assert (tmp_path / "out.jsonl.errors.csv").read_text().splitlines()[1:] == [
        "2,,2 fields where the header has 3",
        "3,,4 fields where the header has 3",
    ]


def test_a_missing_text_column_stops_before_scoring(tiny_bundle, tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["id", "comment"], [["1", "Slow app"]])
    code, err = score_cli(tiny_bundle, capsys, src, tmp_path / "out.jsonl")
    assert code == 2
    assert f"{src}: no column 'text' (columns: ['id', 'comment'])" in err
    assert "--text-column" in err and not (tmp_path / "out.jsonl").exists()


def test_a_wrong_delimiter_is_a_clear_error(tiny_bundle, tmp_path, capsys):
    src = write_csv(tmp_path / "in.csv", ["id", "text"], [["1", "Slow app"]], delimiter=";")
    code, err = score_cli(tiny_bundle, capsys, src, tmp_path / "out.jsonl", "--delimiter", ",")
    assert code == 2 and f"{src}: no column 'text' (columns: ['id;text'])" in err


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_in_a_csv_file_are_detected(predictor, tmp_path, delimiter):
    # Defined result: without --delimiter the delimiter is sniffed, whatever the suffix.
    src = write_csv(
        tmp_path / "in.csv",
        ["id", "text"],
        [["1", "Slow app, again"], ["2", "Too pricey"]],
        delimiter=delimiter,
    )
    summary = run(predictor, src, tmp_path / "out.jsonl")
    assert summary.scored == 2 and summary.errors == 0
    assert read_jsonl(tmp_path / "out.jsonl")[0]["text"] == "Slow app, again"


# -- malformed Excel ---------------------------------------------------------------------------
def _book(path, *rows):
    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path.read_bytes()


def _zip_without_a_workbook(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "not a spreadsheet")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: b"PK\x03\x04 truncated zip", "not a readable .xlsx file"),
        (lambda p: b"id,text\n1,a CSV renamed\n", "not a readable .xlsx file"),
        (_zip_without_a_workbook, "not a readable .xlsx file"),
        (lambda p: _book(p), "the first sheet has no header row"),
        (lambda p: _book(p, [None, None], ["x1", "data without a header"]), "no header row"),
        (lambda p: _book(p, ["x1", "data in the header row"]), "no column 'text'"),
    ],
)
def test_malformed_excel_files_are_clear_errors(predictor, tmp_path, make, message):
    src = tmp_path / "in.xlsx"
    src.write_bytes(make(tmp_path / "made.xlsx"))
    with pytest.raises(InputError, match=message) as caught:
        run(predictor, src, tmp_path / "out.jsonl")
    assert str(src) in str(caught.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_broken_xlsx_via_the_cli_names_the_file(tiny_bundle, tmp_path, capsys):
    src = tmp_path / "export.xlsx"
    src.write_bytes(b"not a zip at all")
    code, err = score_cli(tiny_bundle, capsys, src, tmp_path / "out.xlsx")
    assert code == 2 and f"{src}: not a readable .xlsx file" in err and "Traceback" not in err


def test_bad_cells_in_an_excel_sheet_are_bad_rows(predictor, tmp_path):
    src = tmp_path / "in.xlsx"
    _book(src, ["id", "text"], ["x1", 42], ["x2", None], ["x3", datetime(2026, 1, 1)], ["x4", "ok"])
    summary = run(predictor, src, tmp_path / "out.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["x4"]
    assert errors_of(summary) == [
        ("1", "x1", "text is not a string (int)"),
        ("2", "x2", "empty text"),
        ("3", "x3", "text is not a string (datetime)"),
    ]


# -- duplicate ids in one batch file -----------------------------------------------------------
@pytest.mark.parametrize("chunk_rows", [1024, 1])
def test_duplicate_ids_are_all_scored_and_recorded_once_last_wins(predictor, tmp_path, chunk_rows):
    # Defined behaviour (README: --record uses "the same idempotent rule as the API"): every
    # row is scored and written, in input order (no row is dropped for its id); the store
    # keeps one item per id, the last row with it, whether or not the copies share a chunk.
    src = write_csv(
        tmp_path / "in.csv",
        ["id", "text", "channel", "created_at"],
        [
            ["d1", "First copy", "first", "2026-11-03"],
            ["d1", "Second copy", "second", "2026-11-03"],
            ["d2", "Other item", "other", "2026-11-04"],
            ["d1", "Third copy", "third", "2026-11-03"],
        ],
    )
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        summary = run(
            predictor, src, tmp_path / "out.csv", store=store, record=True, chunk_rows=chunk_rows
        )
        with (tmp_path / "out.csv").open(encoding="utf-8") as fh:
            out = [(r["id"], r["text"]) for r in csv.DictReader(fh)]
        assert out == [
            ("d1", "First copy"),
            ("d1", "Second copy"),
            ("d2", "Other item"),
            ("d1", "Third copy"),
        ]
        assert summary.scored == 4 and summary.errors == 0
        with store.engine.connect() as connection:
            stored = dict(connection.execute(select(feedback.c.id, feedback.c.channel)).all())
        assert stored == {"d1": "third", "d2": "other"}
    finally:
        store.close()


# -- what the store cannot take, with --record -------------------------------------------------
def test_ids_and_dates_the_store_cannot_take_are_bad_rows_with_record(predictor, tmp_path):
    # These used to stop the whole run: a bare "id is longer than 255 characters" naming no
    # row, or an OverflowError traceback for a date that leaves the calendar in UTC.
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "ok", "text": "fine", "created_at": "2026-11-03T10:00:00+01:00"},
        {"id": "x" * 256, "text": "fine"},
        {"id": 10**300, "text": "fine"},
        {"id": "early", "text": "fine", "created_at": "0001-01-01T00:00:00+14:00"},
        {"id": "late", "text": "fine", "created_at": "9999-12-31T23:00:00-05:00"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        summary = run(predictor, src, tmp_path / "out.jsonl", store=store, record=True)
    finally:
        store.close()
    assert summary.recorded == 1 and summary.scored == 1
    assert [(row, reason) for row, _, reason in errors_of(summary)] == [
        ("2", "id is longer than 255 characters"),
        ("3", "id is longer than 255 characters"),
        ("4", "created_at is out of range"),
        ("5", "created_at is out of range"),
    ]
    # Without --record the ids are only echoed into the output: a long id is fine there.
    summary = run(predictor, src, tmp_path / "plain.jsonl")
    assert summary.scored == 3


# -- options and paths that would lose or mix up data ---------------------------------------
@pytest.mark.parametrize("target", ["in.csv", "in.csv.errors.csv"])
def test_an_output_or_errors_file_over_the_input_is_refused(tiny_bundle, tmp_path, capsys, target):
    src = write_csv(tmp_path / "in.csv", ["id", "text"], [["1", "Slow app"], ["2", ""]])
    before = src.read_bytes()
    out = tmp_path / ("in.csv" if target == "in.csv" else "in.jsonl")
    if target == "in.csv.errors.csv":  # an input named like the output's errors file
        src = src.rename(tmp_path / "in.csv.errors.csv")
        out = tmp_path / "in.csv"
    code, err = score_cli(tiny_bundle, capsys, src, out)
    assert code == 2 and "would overwrite the input" in err
    assert src.read_bytes() == before


def test_record_without_an_id_column_is_refused(predictor, tmp_path):
    """Row numbers restart with every file: a second file would replace the first's records."""
    src = write_csv(tmp_path / "march.csv", ["text", "channel"], [["Too slow", "web"]])
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(InputError, match="--record needs an id column"):
        run(predictor, src, tmp_path / "out.jsonl", store=store, record=True)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"id_column": "ticket_id"}, "no id column 'ticket_id'"),
        ({"lang_column": "language_code"}, "no language column 'language_code'"),
    ],
)
def test_a_named_column_that_is_missing_is_an_error(predictor, tmp_path, option, message):
    src = write_csv(tmp_path / "in.csv", ["id", "ticket", "text"], [["7", "T1", "Slow app"]])
    with pytest.raises(InputError, match=message):
        run(predictor, src, tmp_path / "out.csv", **option)


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x1c"])
def test_line_separator_characters_in_texts_and_ids_are_scored(predictor, tmp_path, char):
    src = tmp_path / "in.jsonl"
    rows = [{"id": f"a{char}b", "text": f"Way too{char}expensive for what it does"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = run(predictor, src, tmp_path / "out.jsonl")
    assert summary.scored == 1
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [f"a{char}b"]


def test_after_a_fatal_input_error_the_suggested_fix_runs_without_restart(
    tiny_bundle, tmp_path, capsys
):
    src = tmp_path / "in.csv"
    # The bad byte comes after the part read to sniff the file, so the run has started.
    good = b"".join(b"%d,Delivery was slow again\n" % k for k in range(1, 601))
    src.write_bytes(b"id,text\n" + good + b"601,Caf\xe9 was slow\n")
    out = tmp_path / "out.jsonl"
    code, err = score_cli(tiny_bundle, capsys, src, out)
    assert code == 2 and "row 601" in err and "--encoding" in err
    code, err = score_cli(tiny_bundle, capsys, src, out, "--encoding", "latin-1")
    assert code == 0, err
    assert read_jsonl(out)[-1]["text"] == "Café was slow"


def test_a_fatal_input_error_after_the_first_chunk_leaves_no_unfinished_run(predictor, tmp_path):
    src = tmp_path / "in.csv"
    good = b"".join(b"%d,Delivery was slow again\n" % k for k in range(1, 601))
    src.write_bytes(b"id,text\n" + good + b"601,Caf\xe9 was slow\n")
    out = tmp_path / "out.jsonl"
    # Chunks of 100 rows: six are scored before the bad byte stops the run, which cannot
    # finish as it is: the suggested --encoding must not be refused as "another option".
    with pytest.raises(InputError, match="row 601"):
        run(predictor, src, out, chunk_rows=100)
    assert not (tmp_path / "out.jsonl.cxwork").exists()
    assert run(predictor, src, out, chunk_rows=100, encoding="latin-1").scored == 601


# -- ids that are numbers ------------------------------------------------------------------------
def test_nan_ids_are_missing_and_integral_float_ids_are_integers(predictor, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    ids = [1.0, float("nan"), float("inf"), 2.5, float("nan")]
    pq.write_table(pa.table({"id": ids, "text": ["Slow app"] * 5}), src)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        summary = run(predictor, src, tmp_path / "out.jsonl", store=store, record=True)
        with store.engine.connect() as connection:
            stored = sorted(connection.execute(select(feedback.c.id)).scalars())
    finally:
        store.close()
    assert [(row, reason) for row, _, reason in errors_of(summary)] == [
        ("2", "missing id"),
        ("3", "missing id"),
        ("5", "missing id"),
    ]
    assert summary.recorded == 2 and stored == ["1", "2.5"]


# -- Excel's limits --------------------------------------------------------------------------------
def test_duplicate_column_names_in_an_excel_header_are_refused(predictor, tmp_path):
    src = tmp_path / "in.xlsx"
    _book(src, ["id", "text", "text"], ["x1", "Slow app", "other"])
    with pytest.raises(InputError, match=r"duplicate column names in the header: \['text'\]"):
        run(predictor, src, tmp_path / "out.jsonl")


def test_cells_too_long_for_excel_are_bad_rows_with_xlsx_output(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "text": "Slow app"},
        {"id": "b", "text": "x" * 32_768},
        {"id": "c", "text": "Slow app", "note": "n" * 40_000},
        {"id": "d", "text": "y" * 32_767},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = run(predictor, src, tmp_path / "out.xlsx")
    out = list(load_workbook(tmp_path / "out.xlsx").active.iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in out] == ["a", "d"] and len(out[1][1]) == 32_767
    assert [(row, reason[:39]) for row, _, reason in errors_of(summary)] == [
        ("2", "text is longer than an Excel cell holds"),
        ("3", "note is longer than an Excel cell holds"),
    ]
    assert ".csv or .parquet" in errors_of(summary)[0][2]
    # Other formats take the long cells.
    assert run(predictor, src, tmp_path / "out.csv").scored == 4
