"""Readers and writers: every format in and out, encodings, delimiters, bad rows."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.batch.readers import InputError, Reader
from service.batch.runner import Job, ScoreOptions
from tests.conftest import read_jsonl


def run(predictor, src, out, **options):
    return Job(predictor, src, out, ScoreOptions(**options)).run(progress=False)


def test_jsonl_keeps_input_fields_and_reports_bad_rows(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "text": "Refund took a month.", "stars": 1}),
                json.dumps({"id": "b", "text": "   "}),
                "{broken",
                json.dumps({"id": "c", "body": "no text field"}),
                "",
                json.dumps({"text": "no id here"}),
                json.dumps({"id": "d", "text": "客服态度很好", "extra": {"k": [1, 2]}}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    summary = run(predictor, src, tmp_path / "out.jsonl")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ["a", "d"] and summary.scored == 2 and summary.errors == 4
    assert rows[0]["stars"] == 1 and rows[1]["extra"] == {"k": [1, 2]}  # input kept as it was
    assert set(rows[0]) >= {
        "themes",
        "scores",
        "sentiment",
        "sentiment_scores",
        "needs_review",
        "evidence",
        "model_version",
    }
    with summary.errors_path.open() as fh:
        errors = list(csv.DictReader(fh))
    assert [(e["row"], e["reason"]) for e in errors] == [
        ("2", "empty text"),
        ("3", "invalid JSON (Expecting property name enclosed in double quotes)"),
        ("4", "no 'text' field"),
        ("6", "missing id"),
    ]


def test_csv_semicolons_bom_and_custom_columns(predictor, tmp_path):
    src = tmp_path / "export.csv"
    src.write_text(
        '\ufeffticket;body;channel\nT1;"Slow; very slow\napp";email\nT2;Great price;chat\n'
        "T3;too;many;fields\n",
        encoding="utf-8",
    )
    reader = Reader(src)
    assert reader.delimiter == ";" and reader.columns == ["ticket", "body", "channel"]
    summary = run(predictor, src, tmp_path / "out.csv", text_column="body", id_column="ticket")
    with (tmp_path / "out.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    assert [r["ticket"] for r in rows] == ["T1", "T2"]
    assert rows[0]["body"] == "Slow; very slow\napp" and rows[0]["channel"] == "email"
    assert {"themes", "score_pricing_value", "sentiment_negative"} <= set(rows[0])
    assert summary.errors == 1 and "4 fields" in summary.error_lines[0]


def test_gbk_needs_its_encoding_and_bad_bytes_name_the_row(predictor, tmp_path):
    src = tmp_path / "gbk.csv"
    src.write_bytes("id,text\n1,价格太贵了\n2,客服很好\n".encode("gbk"))
    with pytest.raises(InputError, match=r"gbk.csv: .*--encoding"):
        Job(predictor, src, tmp_path / "o.csv", ScoreOptions()).run(progress=False)
    summary = run(predictor, src, tmp_path / "o.csv", encoding="gbk")
    assert summary.scored == 2
    with (tmp_path / "o.csv").open(encoding="utf-8") as fh:
        assert [r["text"] for r in csv.DictReader(fh)] == ["价格太贵了", "客服很好"]
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"id,text\n1,fine\n2,bad \xff\xfe bytes\n")
    with pytest.raises(
        InputError, match=r"broken.csv: row 2 \(line 3\): bytes that are not valid utf-8"
    ):
        run(predictor, broken, tmp_path / "b.csv")


def test_parquet_keeps_types_and_adds_typed_predictions(predictor, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"id": [10, 11], "text": ["Too pricey", "Love the app"], "score": [1.5, 4.0]}), src
    )
    run(predictor, src, tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("score").type == pa.float64()
    assert table.schema.field("themes").type == pa.list_(pa.string())
    assert table.schema.field("score_privacy_data").type == pa.float32()
    assert table.column("id").to_pylist() == [10, 11]


def test_excel_in_and_out(predictor, tmp_path):
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "text", "segment"])
    sheet.append(["x1", "The chatbot never lets me reach a person", "smb"])
    sheet.append([None, None, None])  # blank rows are skipped silently
    sheet.append(["x2", "Prices doubled", "enterprise"])
    book.save(tmp_path / "in.xlsx")
    summary = run(predictor, tmp_path / "in.xlsx", tmp_path / "out.xlsx")
    assert summary.scored == 2
    rows = list(load_workbook(tmp_path / "out.xlsx").active.iter_rows(values_only=True))
    assert rows[0][:3] == ("id", "text", "segment") and "themes" in rows[0]
    assert [r[0] for r in rows[1:]] == ["x1", "x2"]


def _with_saved_value(path, cell, value):
    """``path`` as Excel would save it after calculating ``cell``'s formula: its ``<v>``."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    sheet, n = re.subn(
        rf'<c r="{cell}"([^>]*)><f>(.*?)</f><v\s*/?>(</v>)?',
        rf'<c r="{cell}"\1 t="str"><f>\2</f><v>{value}</v>',
        sheet,
    )
    assert n == 1, sheet
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)


def test_xlsx_formula_cells_without_a_saved_value_are_bad_rows(predictor, tmp_path):
    """A workbook written by a script holds formulas Excel never calculated: openpyxl reads them
    as None, which is not an empty text or a missing id; the reason names the cell."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "channel", "text"])
    sheet.append(["r1", "app", "The app is slow"])
    sheet.append(["r2", "web", '=B3&" checkout is broken"'])  # C3: never calculated
    sheet.append(['="r"&3', "web", "Too expensive"])  # A4: never calculated
    sheet.append(["r4", "web", ""])  # really empty
    sheet.append(["r5", "web", '=B6&" app crashes"'])  # C6: calculated and saved, below
    sheet.append(["r6", '="a"&"pp"', "Support never answers"])  # B7: another column
    sheet.append([None, '="w"&"eb"', None])  # only B8, filled down below the data: blank
    sheet.append([None, None, '="late "&"delivery"'])  # only C9, the text: reported
    book.save(tmp_path / "in.xlsx")
    _with_saved_value(tmp_path / "in.xlsx", "C6", "web app crashes")

    summary = run(predictor, tmp_path / "in.xlsx", tmp_path / "out.jsonl")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [(r["id"], r["text"]) for r in rows] == [
        ("r1", "The app is slow"),
        ("r5", "web app crashes"),
        ("r6", "Support never answers"),
    ]
    with summary.errors_path.open(encoding="utf-8") as fh:
        errors = [(e["row"], e["id"], e["reason"]) for e in csv.DictReader(fh)]
    hint = "holds a formula with no saved value (the workbook was never calculated); open and "
    assert errors == [
        ("2", "r2", f"text cell C3 {hint}save it in Excel, or export it as CSV"),
        ("3", "", f"id cell A4 {hint}save it in Excel, or export it as CSV"),
        ("4", "r4", "empty text"),
        ("8", "", f"text cell C9 {hint}save it in Excel, or export it as CSV"),
    ]
    # The date column's cell too (a date read as None would be taken as no date).
    from service.batch.readers import Record

    (tmp_path / "dated.csv").write_text("id,text,created_at\n", encoding="utf-8")
    job = Job(predictor, tmp_path / "dated.csv", tmp_path / "dated.jsonl", ScoreOptions())
    values = {"id": "r5", "text": "ok", "created_at": None}
    record = Record(5, values, formulas={"created_at": "C6"})
    assert job._problem(record).startswith("date cell C6 holds a formula with no saved value")


def test_xlsx_reads_without_formula_detection_if_openpyxl_internals_move(tmp_path, monkeypatch):
    """The formula check uses openpyxl's private parser; an openpyxl without it must still
    read workbooks (formulas with no saved value then read as empty, as before)."""
    from openpyxl import Workbook

    from service.batch import readers

    book = Workbook()
    book.active.append(["id", "text"])
    book.active.append(["r1", "The app is slow"])
    book.active.append(["r2", '="never"&" calculated"'])
    book.active.append([None, None])
    book.active.append(["r4", "Too expensive"])
    book.save(tmp_path / "in.xlsx")

    def moved():
        raise ImportError("cannot import name 'WorkSheetParser'")

    monkeypatch.setattr(readers, "_formula_aware_parser", moved)
    records = [r for chunk in readers.Reader(tmp_path / "in.xlsx").chunks(10) for r in chunk]
    assert [(r.number, r.values["id"], r.values["text"], r.formulas) for r in records] == [
        (1, "r1", "The app is slow", None),
        (2, "r2", None, None),
        (4, "r4", "Too expensive", None),
    ]


def test_no_id_column_numbers_the_rows(predictor, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text\nfirst\n\nsecond\n", encoding="utf-8")
    run(predictor, src, tmp_path / "out.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [1, 3]


def test_prediction_columns_never_overwrite_input_columns(predictor, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text,sentiment\n1,Great,5 stars\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\['sentiment'\].*--prefix"):
        run(predictor, src, tmp_path / "out.csv")
    run(predictor, src, tmp_path / "out.csv", prefix="cx_")
    with (tmp_path / "out.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["sentiment"] == "5 stars" and row["cx_sentiment"] in (
        "negative",
        "neutral",
        "positive",
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.xml", b"<a/>", "unsupported input format"),
        ("in.csv", b"", "empty"),
        ("in.csv", b"id,id\n1,2\n", "duplicate column"),
        ("in.xlsx", b"not a zip", "not a readable .xlsx"),
        ("in.csv", b"id,body\n1,x\n", "no column 'text'"),
    ],
)
def test_unreadable_inputs_are_clear_errors(predictor, tmp_path, name, content, message):
    src = tmp_path / name
    src.write_bytes(content)
    with pytest.raises(InputError, match=message):
        run(predictor, src, tmp_path / "out.jsonl")


def test_parquet_without_an_id_column_keeps_its_types(predictor, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["Too pricey", "Love it"], "n": [3, 4], "f": [1.5, 2.5]}), src)
    run(predictor, src, tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("n").type == pa.int64()
    assert table.schema.field("f").type == pa.float64()
    assert table.column("id").to_pylist() == [1, 2]


def test_jsonl_output_has_no_nan(predictor, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"id": [1, 2], "text": ["Slow", "Fast"], "f": [float("nan"), 1.0]}), src
    )
    run(predictor, src, tmp_path / "out.jsonl")
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
        for line in lines
    ]
    assert [r["f"] for r in rows] == [None, 1.0]


def test_txt_input_is_written_as_csv_by_default(tiny_bundle, tmp_path, capsys):
    from service.cli import main

    src = tmp_path / "notes.txt"
    src.write_text("id,text\n1,Slow app\n", encoding="utf-8")
    assert main(["score", str(src), "--model", str(tiny_bundle), "-q"]) == 0, capsys.readouterr()
    with (tmp_path / "notes.scored.txt.csv").open(encoding="utf-8") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == ["1"]


def test_default_outputs_of_txt_and_csv_inputs_in_one_folder_never_collide(
    tiny_bundle, tmp_path, capsys
):
    """``in.txt`` is written as CSV: its default output must not be ``in.csv``'s (scoring one
    replaced the other's results), nor share its work folder or errors file."""
    from service.cli import main

    (tmp_path / "in.txt").write_text("id,text\nt1,Slow app\nt2,\n", encoding="utf-8")
    (tmp_path / "in.csv").write_text("id,text\nc1,Too pricey\nc2,\n", encoding="utf-8")
    for name in ("in.txt", "in.csv"):
        code = main(["score", str(tmp_path / name), "--model", str(tiny_bundle), "-q"])
        assert code == 0, capsys.readouterr()
    for output, ids in (("in.scored.txt.csv", ["t1"]), ("in.scored.csv", ["c1"])):
        with (tmp_path / output).open(encoding="utf-8") as fh:
            assert [r["id"] for r in csv.DictReader(fh)] == ids
        errors = (tmp_path / f"{output}.errors.csv").read_text(encoding="utf-8")
        assert errors.splitlines()[1:] == [f"2,{ids[0][0]}2,empty text"]


def test_default_output_names_map_back_to_one_input():
    from pathlib import Path

    from service.batch.writers import default_output

    names = ["in.csv", "in.txt", "in.TXT", "in.txt.csv", "in.tsv", "in.jsonl", "in.ndjson"]
    names += ["in.parquet", "in.xlsx", "in.scored.csv", "in.scored.txt", "in.csv.txt"]
    outputs = {name: default_output(Path("d") / name).name for name in names}
    assert len(set(outputs.values())) == len(names), outputs
    assert outputs["in.csv"] == "in.scored.csv" and outputs["in.txt"] == "in.scored.txt.csv"
    assert outputs["in.TXT"] == "in.scored.TXT.csv" and outputs["in.xlsx"] == "in.scored.xlsx"


def test_xlsx_formulas_with_no_saved_value_in_other_columns_warn_once_per_column(
    predictor, tiny_bundle, tmp_path, capsys
):
    """A channel or segment cell whose formula was never calculated reads as empty: the row is
    scored (the text is there) and written with the cell empty, but the run says so once per
    column, naming the first cell and the count, never per row and never as a bad row."""
    from openpyxl import Workbook

    from service.cli import main

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "text", "channel", "segment"])
    sheet.append(["r1", "The app is slow", "app", '="s"&"mb"'])  # D2
    sheet.append(["r2", "Too expensive", '="w"&"eb"', "smb"])  # C3
    sheet.append(["r3", '="never"&" calculated"', "app", '="s"&"mb"'])  # a bad row: not counted
    sheet.append(["r4", "Support never answers", "app", '="en"&"t"'])  # D5
    book.save(tmp_path / "in.xlsx")

    summary = run(predictor, tmp_path / "in.xlsx", tmp_path / "out.jsonl")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [(r["id"], r["channel"], r["segment"]) for r in rows] == [
        ("r1", "app", None),
        ("r2", None, "smb"),
        ("r4", "app", None),
    ]
    assert summary.scored == 3 and summary.errors == 1
    hint = "a formula with no saved value (the workbook was never calculated), written empty"
    src = tmp_path / "in.xlsx"
    assert summary.warnings == [
        f"{src}: column 'segment': 2 cells (first D2) hold {hint}; open and save it in Excel, "
        "or export it as CSV",
        f"{src}: column 'channel': cell C3 holds {hint}; open and save it in Excel, or export "
        "it as CSV",
    ]
    # The command prints them, even with -q.
    out = tmp_path / "o.csv"
    code = main(["score", str(src), "-o", str(out), "--model", str(tiny_bundle), "-q"])
    err = capsys.readouterr().err
    assert code == 0 and f"warning: {summary.warnings[0]}" in err
    assert f"warning: {summary.warnings[1]}" in err and err.count("warning:") == 2


@pytest.mark.parametrize("name", ["rep.json", "rep", "rep.md"])
def test_a_report_path_never_overwrites_its_own_files(predictor, tmp_path, name):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,Slow app\n", encoding="utf-8")
    summary = run(predictor, src, tmp_path / "out.csv")
    written = summary.stats.write(tmp_path / name, "t")
    assert sorted(p.name for p in written) == ["rep.json", "rep.md", "rep.png"]
    assert (tmp_path / "rep.md").read_text().startswith("#")
    assert json.loads((tmp_path / "rep.json").read_text())["rows_scored"] == 1


FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\t=1", "\r=1"]


def test_csv_output_quotes_cells_a_spreadsheet_would_run_as_formulas(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"r{k}", "text": t}) + "\n" for k, t in enumerate(FORMULAS))
        + json.dumps({"id": "=id", "text": "plain"})
        + "\n",
        encoding="utf-8",
    )
    run(predictor, src, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["text"] for r in rows] == ["'" + t for t in FORMULAS] + ["plain"]
    assert rows[-1]["id"] == "'=id"


def test_xlsx_output_writes_formula_like_text_as_text(predictor, tmp_path):
    from openpyxl import load_workbook

    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"=r{k}", "text": t}) + "\n" for k, t in enumerate(FORMULAS)),
        encoding="utf-8",
    )
    run(predictor, src, tmp_path / "out.xlsx")
    sheet = load_workbook(tmp_path / "out.xlsx").active
    cells = [row[:2] for row in sheet.iter_rows(min_row=2)]
    assert all(c.data_type == "s" for row in cells for c in row)
    # (XML reads a lone \r back as \n: the last text is left out of the comparison.)
    assert [row[1].value for row in cells[:-1]] == FORMULAS[:-1]


def test_parquet_with_aware_datetimes_and_bytes_writes_xlsx(predictor, tmp_path):
    from datetime import UTC, datetime, timedelta, timezone

    from openpyxl import load_workbook

    src = tmp_path / "in.parquet"
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    pq.write_table(
        pa.table({"id": [1], "text": ["Slow app"], "at": [moment], "raw": [b"\x00\xff"]}), src
    )
    assert run(predictor, src, tmp_path / "out.xlsx").scored == 1
    row = next(load_workbook(tmp_path / "out.xlsx").active.iter_rows(min_row=2, values_only=True))
    assert row[2] == moment.astimezone(UTC).replace(tzinfo=None) and row[3] == "00ff"


def test_a_cell_excel_cannot_hold_is_a_one_line_error(predictor, tmp_path):
    from service.batch.writers import OutputWriter, PredictionColumns

    columns = PredictionColumns(predictor.theme_ids, predictor.sentiments, "", with_lang=False)
    writer = OutputWriter(tmp_path / "out.xlsx", ["id", "text", "odd"], columns)
    p = {"id": "a", "themes": [], "scores": dict.fromkeys(predictor.theme_ids, 0.0)}
    p |= {"sentiment": "neutral", "sentiment_scores": dict.fromkeys(predictor.sentiments, 0.0)}
    p |= {"needs_review": False, "review_reasons": [], "evidence": {}, "model_version": "v"}
    with pytest.raises(InputError, match=r"id 'a': a cell Excel cannot hold.*\.parquet or \.csv"):
        writer.write([{"id": "a", "text": "x", "odd": object()}], [p])
    writer.abort()


@pytest.mark.parametrize(
    ("src_name", "content", "out_name", "delimiter"),
    [
        ("in.tsv", "id\ttext\n1\tSlow, very slow\n", "out.csv", ","),
        ("in.csv", 'id,text\n1,"Slow, very slow"\n', "out.tsv", "\t"),
        ("in.csv", "id;text\n1;Slow, very slow\n", "out.csv", ";"),  # a ;-CSV stays one
    ],
)
def test_the_output_delimiter_follows_the_output_name(
    predictor, tmp_path, src_name, content, out_name, delimiter
):
    src = tmp_path / src_name
    src.write_text(content, encoding="utf-8")
    run(predictor, src, tmp_path / out_name)
    header, row = (tmp_path / out_name).read_text(encoding="utf-8").splitlines()[:2]
    assert header.startswith(f"id{delimiter}text{delimiter}")
    assert next(csv.reader([row], delimiter=delimiter))[1] == "Slow, very slow"


def test_xlsx_output_is_byte_identical_across_runs(predictor, tmp_path, monkeypatch):
    import time as time_module

    src = tmp_path / "in.csv"
    src.write_text("id,text\n1,Slow app\n2,Too pricey\n", encoding="utf-8")
    run(predictor, src, tmp_path / "a.xlsx")
    real = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real() + 86_400)  # a day later
    run(predictor, src, tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


# -- texts with nothing visible ----------------------------------------------------------------
INVISIBLE_TEXTS = ["\x00\x01\x02\x7f", "\u200b\u200b", "\u200d\ufeff\u2060", "\u2800", "\u3164"]


def test_a_text_of_invisible_characters_is_an_empty_text_bad_row(predictor, tmp_path):
    """Control, zero-width, filler characters alone were scored (controls as "positive");
    now they are bad rows like a blank text. Emoji or punctuation alone are still scored."""
    src = tmp_path / "in.jsonl"
    texts = ["Refund took a month.", *INVISIBLE_TEXTS, "👍", "!!!"]
    src.write_text(
        "".join(json.dumps({"id": f"r{k}", "text": t}) + "\n" for k, t in enumerate(texts)),
        encoding="utf-8",
    )
    summary = run(predictor, src, tmp_path / "out.jsonl")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ["r0", "r6", "r7"] and summary.errors == 5
    with summary.errors_path.open() as fh:
        errors = list(csv.DictReader(fh))
    assert [e["reason"] for e in errors] == ["empty text"] * 5


def test_the_ray_engine_refuses_invisible_texts_as_empty_too():
    from service.batch.ray_engine import _problem

    opts = {"text_column": "text", "id_column": "id", "date_column": None}
    for text in INVISIBLE_TEXTS:
        assert _problem(opts, {"id": "a", "text": text}) == "empty text"
    assert _problem(opts, {"id": "a", "text": "👍"}) is None
