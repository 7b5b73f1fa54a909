"""Property tests of the batch readers: what the standard writers write, we read back, and
whatever bytes a file holds, we answer rows or our own InputError, never a crash or a hang.

Round trips: rows of ids and texts with any Unicode (quotes, every delimiter we detect, line
breaks of every kind, NUL, a BOM at the start of the file or of a text, right-to-left and
combining marks, emoji) written with the stdlib ``csv`` and ``json`` modules, ``pyarrow`` and
``openpyxl``, come back through :class:`Reader` as the same ids and texts, in order.

Odd files: arbitrary bytes, ragged rows, a wrong or impossible delimiter, bytes that are not
UTF-8 in some row, garbage under a .parquet / .xlsx / .jsonl name: the reader either gives
rows (a row it cannot use carries its ``problem``) or raises :class:`InputError` naming the
file (and the row where there is one).
"""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from service.batch.readers import InputError, Reader

pytestmark = pytest.mark.timeout(300)  # a hang is a failure, not a stuck run

PROPS = settings(
    max_examples=100,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that make CSV and JSON lines hard: quotes, the delimiters we detect, every line
# break (\r alone, \r\n, U+2028, NEL), NUL, BOM, RTL marks, combining marks, emoji.
_TRICKY = st.sampled_from(
    list(",;\t|\"'\r\n\x00\ufeff\u2028\u2029\x85\x0b\x0c\u202e\u200f\u0301 ")
    + ["\r\n", '""', "שלום", "客服", "👩‍👩‍👧", "=1+1", "-", "NaN", "null"]
)
_ANY = st.characters(exclude_categories=("Cs",))  # lone surrogates are not text
TEXT = st.lists(st.one_of(_TRICKY, _ANY), max_size=25).map("".join)
ID = st.one_of(TEXT.filter(lambda s: s.strip()), st.integers(-(10**12), 10**12).map(str))
ROWS = st.lists(st.tuples(ID, TEXT), max_size=15)

# What the stdlib writer can round-trip: with "\n" line ends QUOTE_MINIMAL leaves a lone "\r"
# in a field unquoted (a csv-module quirk no reader can undo), so that pairing quotes all.
CSV_DIALECTS = st.sampled_from(
    [("\r\n", csv.QUOTE_MINIMAL), ("\r\n", csv.QUOTE_ALL), ("\n", csv.QUOTE_ALL)]
)


def read_all(reader: Reader, chunk_rows: int = 4) -> list:
    records = [r for chunk in reader.chunks(chunk_rows) for r in chunk]
    assert all(0 < len(chunk) <= chunk_rows for chunk in reader.chunks(chunk_rows))
    return records


def write_csv(path, rows, delimiter, dialect, bom, header=("id", "text")) -> None:
    line_end, quoting = dialect
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8-sig" if bom else "utf-8"))


@pytest.fixture(scope="module")
def new_file(tmp_path_factory):
    """A fresh file name per example (hypothesis runs many examples in one test call)."""
    folder = tmp_path_factory.mktemp("readers")
    counter = iter(range(10**9))
    return lambda suffix: folder / f"f{next(counter)}{suffix}"


# -- round trips ---------------------------------------------------------------------------------
@PROPS
@given(
    rows=ROWS,
    delimiter=st.sampled_from(",;\t|"),
    dialect=CSV_DIALECTS,
    bom=st.booleans(),
    suffix=st.sampled_from([".csv", ".txt"]),
)
def test_csv_round_trip_with_the_delimiter_given(new_file, rows, delimiter, dialect, bom, suffix):
    path = new_file(suffix)
    write_csv(path, rows, delimiter, dialect, bom)
    reader = Reader(path, delimiter=delimiter)
    assert reader.columns == ["id", "text"]
    records = read_all(reader)
    assert [r.problem for r in records] == [None] * len(rows)
    assert [(r.values["id"], r.values["text"]) for r in records] == rows
    assert [r.number for r in records] == list(range(1, len(rows) + 1))


@PROPS
@given(
    rows=ROWS,
    delimiter=st.sampled_from(",;\t|"),
    dialect=CSV_DIALECTS,
    bom=st.booleans(),
)
def test_csv_round_trip_with_the_delimiter_detected(new_file, rows, delimiter, dialect, bom):
    # The header names the columns: whatever the texts hold, that is where the delimiter shows.
    path = new_file(".tsv" if delimiter == "\t" else ".csv")
    rows = [(i, t, "web") for i, t in rows]
    write_csv(path, rows, delimiter, dialect, bom, header=("id", "text", "channel"))
    reader = Reader(path)
    assert reader.delimiter == delimiter
    records = read_all(reader)
    assert [(r.values["id"], r.values["text"], r.values["channel"]) for r in records] == rows


def _gbk_ok(value: str) -> bool:
    try:
        value.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


GBK_TEXT = st.lists(
    st.one_of(_TRICKY.filter(_gbk_ok), st.characters(codec="gbk", exclude_categories=("Cs",)))
).map("".join)


@settings(PROPS, max_examples=30)
@given(
    rows=st.lists(st.tuples(GBK_TEXT.filter(str.strip), GBK_TEXT), max_size=10),
    dialect=CSV_DIALECTS,
)
def test_csv_round_trip_in_gbk(new_file, rows, dialect):
    path = new_file(".csv")
    line_end, quoting = dialect
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=line_end, quoting=quoting).writerows([("id", "text"), *rows])
    path.write_bytes(buffer.getvalue().encode("gbk"))
    records = read_all(Reader(path, encoding="gbk", delimiter=","))
    assert [(r.values["id"], r.values["text"]) for r in records] == rows


@PROPS
@given(
    rows=st.lists(st.tuples(st.one_of(ID, st.integers()), TEXT), max_size=15),
    ascii_only=st.booleans(),
    line_end=st.sampled_from(["\n", "\r\n"]),
    blank_after=st.sets(st.integers(0, 15)),
    bom=st.booleans(),
)
def test_jsonl_round_trip(new_file, rows, ascii_only, line_end, blank_after, bom):
    path = new_file(".jsonl")
    lines, numbers = [], []
    for k, (row_id, text) in enumerate(rows):
        lines.append(json.dumps({"id": row_id, "text": text}, ensure_ascii=ascii_only))
        numbers.append(len(lines))
        if k in blank_after:
            lines.append("  ")  # blank lines are skipped but still counted
    content = "".join(line + line_end for line in lines)
    path.write_bytes(content.encode("utf-8-sig" if bom else "utf-8"))
    reader = Reader(path)
    assert reader.columns == (["id", "text"] if rows else [])
    records = read_all(reader)
    assert [r.problem for r in records] == [None] * len(rows)
    assert [(r.values["id"], r.values["text"]) for r in records] == rows
    assert [r.number for r in records] == numbers


@PROPS
@given(
    rows=st.lists(st.tuples(ID, st.one_of(st.none(), TEXT)), max_size=40),
    row_group=st.integers(1, 16),
)
def test_parquet_round_trip(new_file, rows, row_group):
    path = new_file(".parquet")
    table = pa.table(
        {"id": [r[0] for r in rows], "text": [r[1] for r in rows]},
        schema=pa.schema([("id", pa.string()), ("text", pa.string())]),
    )
    pq.write_table(table, path, row_group_size=row_group)
    reader = Reader(path)
    assert reader.columns == ["id", "text"]
    records = read_all(reader, chunk_rows=7)
    assert [(r.values["id"], r.values["text"]) for r in records] == rows
    assert [r.number for r in records] == list(range(1, len(rows) + 1))


# XML 1.0 cannot hold most C0 controls and normalises "\r" to "\n": no .xlsx can carry them,
# so the Excel round trip leaves them out (openpyxl refuses to write the former).
_XLSX_TEXT = TEXT.map(lambda s: "".join(c for c in s if c in "\t\n" or not _xml_unsafe(c)))


def _xml_unsafe(c: str) -> bool:
    return ord(c) < 0x20 or c in "\ufffe\uffff" or c == "\r"


@settings(PROPS, max_examples=20)
@given(
    rows=st.lists(
        st.tuples(ID.map(lambda s: "".join(c for c in s if not _xml_unsafe(c))), _XLSX_TEXT),
        max_size=8,
    )
)
def test_xlsx_round_trip(new_file, rows):
    from openpyxl import Workbook

    rows = [(i, t) for i, t in rows if i.strip() and t]  # an empty cell is no value at all
    path = new_file(".xlsx")
    book = Workbook()
    sheet = book.active
    for r, values in enumerate([("id", "text"), *rows], 1):
        for c, value in enumerate(values, 1):
            cell = sheet.cell(r, c)
            cell.value = value
            cell.data_type = "s"  # a text such as "=1+1" stays text, not a formula
    book.save(path)
    reader = Reader(path)
    assert reader.columns == ["id", "text"]
    records = read_all(reader)
    assert [(r.values["id"], r.values["text"]) for r in records] == rows


# -- odd files -------------------------------------------------------------------------------
_CSV_BYTES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b",",
                b";",
                b"\t",
                b"|",
                b'"',
                b"\n",
                b"\r",
                b"\r\n",
                b"\x00",
                b"\xef\xbb\xbf",
                b"id",
                b"text",
                b"\xff",
                b"\xe4\xb8",
                b"\xc3",
                b" ",
                b"a",
                b"\\",
            ]
        ),
        st.binary(max_size=20),
    ),
    max_size=60,
).map(b"".join)


def assert_rows_or_input_error(path, **options) -> None:
    """Either every row comes back (as values under the header's names, or as a problem) or
    the reader raises InputError naming the file; nothing else."""
    try:
        reader = Reader(path, **options)
        records = read_all(reader, chunk_rows=3)
    except InputError as exc:
        assert str(path) in str(exc), exc
        return
    numbers = [r.number for r in records]
    assert numbers == sorted(set(numbers)) and all(n > 0 for n in numbers)
    for r in records:
        if r.problem is None:
            if reader.format == "csv":
                assert list(r.values) == reader.columns
        else:
            assert not r.values and r.problem.strip()


@PROPS
@given(
    content=st.one_of(_CSV_BYTES, st.binary(max_size=300)),
    suffix=st.sampled_from([".csv", ".tsv", ".txt", ".jsonl"]),
)
def test_any_bytes_give_rows_or_input_error(new_file, content, suffix):
    path = new_file(suffix)
    path.write_bytes(content)
    assert_rows_or_input_error(path)


@settings(PROPS, max_examples=25)
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".parquet", ".xlsx"]))
def test_garbage_parquet_or_xlsx_is_an_input_error(new_file, content, suffix):
    path = new_file(suffix)
    path.write_bytes(content)
    assert_rows_or_input_error(path)


@settings(PROPS, max_examples=25)
@given(
    rows=ROWS.filter(len), cut=st.floats(0.0, 1.0), suffix=st.sampled_from([".parquet", ".xlsx"])
)
def test_truncated_parquet_or_xlsx_is_an_input_error(new_file, rows, cut, suffix):
    from openpyxl import Workbook

    path = new_file(suffix)
    if suffix == ".parquet":
        pq.write_table(pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows]}), path)
    else:
        book = Workbook()
        book.active.append(["id", "text"])
        book.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    assert_rows_or_input_error(path)


@settings(PROPS, max_examples=40)
@given(
    rows=st.lists(st.tuples(st.text("abc", min_size=1), st.text("xyz")), min_size=1, max_size=5),
    data=st.data(),
)
def test_corrupt_sheet_in_a_valid_xlsx_is_an_input_error(new_file, rows, data):
    # The zip is sound, the worksheet XML inside it is not: openpyxl only finds out while the
    # rows are read, after the header.
    import zipfile

    from openpyxl import Workbook

    good = new_file(".xlsx")
    book = Workbook()
    book.active.append(["id", "text"])
    for row in rows:
        book.active.append(list(row))
    book.save(good)
    path = new_file(".xlsx")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                start = data.draw(st.integers(content.find(b"<row"), len(content)), label="at")
                junk = data.draw(
                    st.sampled_from([b"<", b'"', b"x", b"</row>", b"<v>abc</v>", b"\xff"])
                    | st.binary(max_size=8),
                    label="junk",
                )
                cut = data.draw(st.integers(0, 8), label="bytes replaced")
                content = content[:start] + junk + content[start + cut :]
            dst.writestr(info, content)
    assert_rows_or_input_error(path)


@PROPS
@given(
    rows=st.lists(st.tuples(ID, TEXT), min_size=1, max_size=10),
    ragged=st.dictionaries(
        st.integers(0, 9),
        st.lists(
            st.text(st.characters(codec="ascii", exclude_characters=',\r\n"'), min_size=1).filter(
                str.strip
            ),
            min_size=1,
            max_size=5,
        ),
    ),
    dialect=CSV_DIALECTS,
)
def test_ragged_rows_are_reported_by_row(new_file, rows, ragged, dialect):
    # A row with a field too many or too few is that row's problem; the others read fine.
    table = [list(r) for r in rows]
    for k, fields in ragged.items():
        if k < len(table) and len(fields) != 2:
            table[k] = fields
    path = new_file(".csv")
    write_csv(path, table, ",", dialect, bom=False)
    records = read_all(Reader(path, delimiter=","))
    assert [r.number for r in records] == list(range(1, len(table) + 1))
    for row, r in zip(table, records, strict=True):
        if len(row) == 2:
            assert r.problem is None and [r.values["id"], r.values["text"]] == row
        else:
            assert r.problem == f"{len(row)} fields where the header has 2"


@PROPS
@given(rows=ROWS, written=st.sampled_from(",;\t|"), given_=st.sampled_from(",;\t|"))
def test_wrong_delimiter_reads_rows_without_crashing(new_file, rows, written, given_):
    assume(written != given_)
    path = new_file(".csv")
    write_csv(path, rows, written, ("\r\n", csv.QUOTE_MINIMAL), bom=False)
    reader = Reader(path, delimiter=given_)
    assert reader.columns == [f"id{written}text"]  # one column: the header did not split
    assert_rows_or_input_error(path, delimiter=given_)


@PROPS
@given(
    depth=st.integers(1, 200_000),
    opener=st.sampled_from(["[", '{"a":']),
    at=st.integers(0, 3),
)
@example(depth=200_000, opener="[", at=1)  # far past the parser's recursion limit
def test_deeply_nested_json_is_that_lines_problem(new_file, depth, opener, at):
    lines = [json.dumps({"id": str(k), "text": "ok"}) for k in range(3)]
    lines.insert(at, opener * depth)
    path = new_file(".jsonl")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = read_all(Reader(path))
    assert [r.number for r in records] == [1, 2, 3, 4]
    assert records[at].problem.startswith("invalid JSON")
    assert [r.values["id"] for r in records if r.problem is None] == ["0", "1", "2"]


@pytest.mark.parametrize("delimiter", [";;", "\\t", "tab"])
def test_a_delimiter_that_is_not_one_character_is_an_input_error(new_file, delimiter):
    path = new_file(".csv")
    path.write_text("id,text\n1,ok\n", encoding="utf-8")
    with pytest.raises(InputError, match="one character") as exc:
        read_all(Reader(path, delimiter=delimiter))
    assert str(path) in str(exc.value)


@PROPS
@given(
    rows=st.lists(st.tuples(ID, TEXT), min_size=1, max_size=8),
    data=st.data(),
    bad=st.sampled_from([b"\xff", b"\xfe\xff", b"\xe4\xb8", b"\xc3(", b"\xed\xa0\x80", b"\x80"]),
    sniff=st.booleans(),
)
def test_bytes_that_are_not_utf8_name_their_row(new_file, rows, data, bad, sniff):
    k = data.draw(st.integers(0, len(rows) - 1), label="bad row index")
    path = new_file(".csv")
    write_csv(path, rows, ",", ("\r\n", csv.QUOTE_ALL), bom=False)
    # Put the bad bytes at the end of row k's text, just before its closing quote.
    content = path.read_bytes()
    buffer = io.StringIO(newline="")
    csv.writer(buffer, quoting=csv.QUOTE_ALL).writerows([("id", "text"), *rows[:k]])
    head = buffer.getvalue().encode("utf-8")
    row = io.StringIO(newline="")
    csv.writer(row, quoting=csv.QUOTE_ALL).writerow(rows[k])
    at = len(head) + len(row.getvalue().encode("utf-8")) - len(b'"\r\n')  # inside the text
    path.write_bytes(content[:at] + bad + content[at:])
    line = content[:at].count(b"\n") + 1
    with pytest.raises(InputError) as exc:
        read_all(Reader(path, delimiter=None if sniff else ","))
    message = str(exc.value)
    assert str(path) in message
    assert f"row {k + 1} (line {line})" in message, message
    assert "--encoding" in message
