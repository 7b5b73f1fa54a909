"""Streaming readers for feedback exports: CSV/TSV (any delimiter, UTF-8 with or without BOM,
or GBK), JSONL, Parquet and Excel (.xlsx). Each yields plain row dicts in chunks, so memory
does not grow with the file, and numbers rows the way a person would find them (data rows
from 1, after the header; JSONL by line)."""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INPUT_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
}
_DELIMITERS = ",;\t|"
# A text may be long (a pasted transcript): the csv module's default cap of 128 KiB per field
# would stop the run at such a row, so allow fields of any size a row can hold in memory.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))


# JSON may escape half of a UTF-16 surrogate pair ("\ud800"): valid JSON, but no character.
_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_unicode(value: Any) -> bool:
    """False if a string anywhere in ``value`` holds a lone surrogate (cannot be UTF-8)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class InputError(ValueError):
    """The input cannot be read at all; the message names the file (and row where known)."""


@dataclass
class Record:
    """One input row: its number, its columns as read, or why it could not be read."""

    number: int
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    # Excel only: the columns whose cell holds a formula with no saved value (a workbook
    # written by a script, never calculated), each to its cell ("C5"); their values are None.
    formulas: dict[str, str] | None = None


def input_format(path: Path) -> str:
    fmt = INPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unsupported input format {path.suffix!r}; use one of {sorted(INPUT_FORMATS)}"
        )
    return fmt


def reading_codec(encoding: str) -> str:
    """The codec to read a file in ``encoding`` with: UTF-8 also without a byte-order mark
    (Excel writes one); :class:`InputError` for an unknown encoding."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else encoding


class Reader:
    """Opens ``path`` and yields :class:`Record` lists of at most ``chunk_rows`` rows."""

    def __init__(
        self,
        path: str | Path,
        encoding: str = "utf-8",
        delimiter: str | None = None,
        text_column: str | None = None,
    ) -> None:
        """``text_column``: Excel only, a row whose text cell is a formula with no saved value
        is kept (for the runner to report) even when it reads as blank."""
        self.path = Path(path)
        self.text_column = text_column
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        self.format = input_format(self.path)
        self.encoding = reading_codec(encoding)
        if delimiter and len(delimiter) != 1:
            raise InputError(f"{self.path}: the delimiter must be one character, got {delimiter!r}")
        self.delimiter = delimiter
        self.columns: list[str] = []
        self.arrow_schema = None  # Parquet only: the input's own column types
        if self.format == "csv":
            self.delimiter = delimiter or self._sniff_delimiter()
            self.columns = self._csv_header()
        elif self.format == "parquet":
            self.arrow_schema = self._parquet_file().schema_arrow
            self.columns = list(self.arrow_schema.names)
        elif self.format == "xlsx":
            self.columns = self._xlsx_header()
        else:
            self.columns = self._jsonl_keys()

    # -- sizing ----------------------------------------------------------------------------
    def estimate_rows(self) -> int | None:
        """Rows in the file, exact for Parquet, counted by lines for text formats."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        if self.format == "xlsx":
            return None
        lines = 0
        with self.path.open("rb") as fh:
            while block := fh.read(1 << 22):
                lines += block.count(b"\n")
        return max(0, lines - (1 if self.format == "csv" else 0))

    # -- chunks ----------------------------------------------------------------------------
    def chunks(self, chunk_rows: int) -> Iterator[list[Record]]:
        chunk: list[Record] = []
        for record in self._records():
            chunk.append(record)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _records(self) -> Iterator[Record]:
        if self.format == "csv":
            return self._csv_records()
        if self.format == "jsonl":
            return self._jsonl_records()
        if self.format == "parquet":
            return self._parquet_records()
        return self._xlsx_records()

    # -- CSV -------------------------------------------------------------------------------
    def _open_text(self):
        return self.path.open(encoding=self.encoding, newline="", errors="strict")

    def _decode_error(self, exc: UnicodeDecodeError) -> InputError:
        line = self._first_bad_line()
        if line is None:
            where = "somewhere"
        elif self.format == "csv":
            row = self._csv_row_of_line(line)
            where = "the header" if row == 0 else f"row {row} (line {line})"
        else:
            where = f"row {line}"
        hint = "gbk" if self.encoding.startswith("utf") else "utf-8"
        return InputError(
            f"{self.path}: {where}: bytes that are not valid {self.encoding.removesuffix('-sig')} "
            f"({exc.reason}); if the file is in another encoding, pass --encoding (e.g. {hint})"
        )

    def _first_bad_line(self) -> int | None:
        """The first line whose bytes do not decode (found only when reading has failed)."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    decoder.decode(line)
                except UnicodeDecodeError:
                    return number
        return None

    def _csv_row_of_line(self, line: int) -> int:
        """The row (0: the header; data rows from 1, as :meth:`chunks` numbers them) that
        holds physical ``line``: a quoted field can span lines, so rows and lines part ways."""
        newlines = 0

        def counted(fh):
            nonlocal newlines
            for text in fh:
                newlines += text.endswith("\n")
                yield text

        row = -1
        with self.path.open(encoding=self.encoding, newline="", errors="replace") as fh:
            reader = csv.reader(counted(fh), delimiter=self.delimiter or ",")
            try:
                for _ in reader:
                    row += 1
                    if newlines >= line:
                        break
            except csv.Error:
                pass
        return max(row, 0)

    def _sniff_delimiter(self) -> str:
        """The candidate that splits the header into columns and the most of the rows after
        it into as many (csv.Sniffer guesses from quotes and is fooled by texts that hold
        quotes and delimiters). Bytes that do not decode are left to the reads that follow,
        which name their row."""
        if self.path.suffix.lower() == ".tsv":
            return "\t"
        with self.path.open(encoding=self.encoding, newline="", errors="replace") as fh:
            sample = fh.read(1 << 16)
            whole = not fh.read(1)
        best, best_key = ",", None
        for delimiter in _DELIMITERS:
            try:
                rows = list(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter))
            except csv.Error:
                continue
            if not whole:
                rows = rows[:-1]  # cut off by the sample's end
            if not rows or len(rows[0]) < 2:
                continue
            body = [r for r in rows[1:] if r and not (len(r) == 1 and not r[0].strip())]
            fitting = sum(len(r) == len(rows[0]) for r in body)
            key = (fitting / len(body) if body else 1.0, len(rows[0]))
            if best_key is None or key > best_key:
                best, best_key = delimiter, key
        return best

    def _csv_header(self) -> list[str]:
        try:
            with self._open_text() as fh:
                header = next(csv.reader(fh, delimiter=self.delimiter), None)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from None
        if not header:
            raise InputError(f"{self.path}: the file is empty (no header row)")
        self._check_duplicates(header)
        return header

    def _check_duplicates(self, header: list[str]) -> None:
        """Rows become dicts by column name: a repeated name would keep only its last cell."""
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise InputError(f"{self.path}: duplicate column names in the header: {duplicates}")

    def _csv_records(self) -> Iterator[Record]:
        number = 0
        ended = []  # set when the file runs out: inside a row, a quote was never closed

        def lines(fh):
            yield from fh
            ended.append(True)

        with self._open_text() as fh:
            reader = csv.reader(lines(fh), delimiter=self.delimiter)
            try:
                next(reader, None)
                start_line = reader.line_num + 1
                for values in reader:
                    number += 1
                    if ended:
                        raise InputError(
                            f"{self.path}: row {number} (line {start_line}): a quoted field "
                            "opened here is never closed, so the rest of the file cannot be "
                            "read as rows; close the quote (a quote inside a quoted field is "
                            'written "")'
                        )
                    start_line = reader.line_num + 1
                    if not values or (len(values) == 1 and not values[0].strip()):
                        continue  # blank line
                    if len(values) != len(self.columns):
                        yield Record(
                            number,
                            problem=f"{len(values)} fields where the header has "
                            f"{len(self.columns)}",
                        )
                        continue
                    yield Record(number, dict(zip(self.columns, values, strict=True)))
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc) from None
            except csv.Error as exc:
                raise InputError(f"{self.path}: row {number + 1}: malformed CSV ({exc})") from None

    # -- JSONL -----------------------------------------------------------------------------
    def _jsonl_lines(self) -> Iterator[tuple[int, str]]:
        with self._open_text() as fh:
            try:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        yield number, line
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc) from None

    def _jsonl_keys(self) -> list[str]:
        """Every top-level key in order of first appearance (a quick pass, no parsing kept)."""
        keys: dict[str, None] = {}
        for _, line in self._jsonl_lines():
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
        return list(keys)

    def _jsonl_records(self) -> Iterator[Record]:
        for number, line in self._jsonl_lines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Record(number, problem=f"invalid JSON ({exc.msg})")
                continue
            except RecursionError:  # the parser recurses once per level of [ or {
                yield Record(number, problem="invalid JSON (nested too deeply)")
                continue
            if not isinstance(obj, dict):
                yield Record(number, problem="not a JSON object")
                continue
            if _LONE_SURROGATE.search(line) and not _is_unicode(obj):
                yield Record(number, problem="invalid Unicode (a lone surrogate such as \\ud800)")
                continue
            yield Record(number, obj)

    # -- Parquet ---------------------------------------------------------------------------
    def _parquet_file(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def _parquet_records(self) -> Iterator[Record]:
        import pyarrow as pa

        number = 0
        batches = self._parquet_file().iter_batches(batch_size=4096)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"{self.path}: row {number + 1} onwards cannot be read ({exc})"
                ) from None
            if batch is None:
                return
            for values in batch.to_pylist():
                number += 1
                yield Record(number, values)

    # -- Excel -----------------------------------------------------------------------------
    def _xlsx_sheet(self):
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a broken file
            raise InputError(f"{self.path}: not a readable .xlsx file ({exc})") from None
        return workbook, workbook.worksheets[0]

    def _xlsx_header(self) -> list[str]:
        workbook, sheet = self._xlsx_sheet()
        try:
            header = next(sheet.iter_rows(max_row=1, values_only=True), None)
        except Exception as exc:  # a broken sheet shows only as its rows are parsed
            raise InputError(
                f"{self.path}: the header row is not readable ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            workbook.close()
        if not header or all(h is None for h in header):
            raise InputError(f"{self.path}: the first sheet has no header row")
        names = [str(h) if h is not None else f"column_{k + 1}" for k, h in enumerate(header)]
        self._check_duplicates(names)
        return names

    def _xlsx_records(self) -> Iterator[Record]:
        workbook, sheet = self._xlsx_sheet()
        number = 0
        rows = self._xlsx_rows(workbook, sheet)
        try:
            while True:
                try:
                    row = next(rows, None)
                except Exception as exc:  # a broken sheet shows only as its rows are parsed
                    raise InputError(
                        f"{self.path}: row {number + 1}: not readable ({type(exc).__name__}: {exc})"
                    ) from None
                if row is None:
                    return
                number, values, formulas = row
                # A blank row is skipped; so is one whose only cells are formulas with no saved
                # value outside the text column (formulas filled down below the data): a row
                # whose text cell is such a formula is the runner's to report.
                if all(v is None for v in values) and (
                    formulas is None or self.text_column not in formulas
                ):
                    continue
                yield Record(
                    number, dict(zip(self.columns, values, strict=True)), formulas=formulas
                )
        finally:
            rows.close()
            workbook.close()

    def _xlsx_rows(self, workbook, sheet) -> Iterator[tuple[int, list, dict[str, str] | None]]:
        """(row number, values padded to the header, the columns whose cell is a formula with
        no saved value to its cell) for each data row, from openpyxl's own row parser as
        ``sheet.iter_rows`` runs it, but one that tells a formula never calculated from an
        empty cell (both read as None): one streaming pass, see _formula_aware_parser."""
        from openpyxl.utils import get_column_letter

        width = len(self.columns)
        try:
            parser_class = _formula_aware_parser()
            source_of, strings = sheet._get_source, sheet._shared_strings
            formats = workbook._date_formats, workbook._timedelta_formats
        except (ImportError, AttributeError):
            # An openpyxl whose internals moved: read as before, formulas as empty cells.
            yield from self._xlsx_plain_rows(sheet)
            return
        with source_of() as source:
            parser = parser_class(
                source,
                strings,
                data_only=True,
                epoch=workbook.epoch,
                date_formats=formats[0],
                timedelta_formats=formats[1],
            )
            last = 1  # the header row
            for index, cells in parser.parse():
                if index <= last:
                    continue  # the header, or a row out of order (iter_rows skips it too)
                last = index
                values: list[Any] = [None] * width
                formulas = None
                for cell in cells:
                    column = cell["column"]
                    if column > width:
                        continue
                    value = cell["value"]
                    if value is _NO_SAVED_VALUE:
                        formulas = formulas or {}
                        formulas[self.columns[column - 1]] = f"{get_column_letter(column)}{index}"
                        value = None
                    values[column - 1] = value
                yield index - 1, values, formulas  # data rows from 1: Excel's row 2 is row 1

    def _xlsx_plain_rows(self, sheet) -> Iterator[tuple[int, list, None]]:
        """Rows as ``sheet.iter_rows`` gives them (no formula detection), shaped as
        ``_xlsx_rows``'s."""
        width = len(self.columns)
        for number, values in enumerate(sheet.iter_rows(min_row=2, values_only=True), 1):
            padded = (list(values) + [None] * width)[:width]
            yield number, padded, None


# What a formula cell with no saved value reads as, in place of openpyxl's None.
_NO_SAVED_VALUE = object()


@functools.cache
def _formula_aware_parser():
    """openpyxl's worksheet parser with a formula cell that has no saved value (``<f>`` and
    no ``<v>``: a workbook written by a script, never calculated by Excel) read as
    ``_NO_SAVED_VALUE`` rather than None, which an empty cell also reads as. The check runs
    only for cells that read as None, so the cost is nil for cells with values. Built on first
    use (openpyxl is imported only for .xlsx input); it uses openpyxl's ``_reader`` module, as
    its read-only worksheet does (openpyxl is pinned in constraints.txt, and
    test_formats.py::test_xlsx_formula_cells_without_a_saved_value_are_bad_rows breaks if
    this stops working)."""
    from openpyxl.worksheet._reader import FORMULA_TAG, WorkSheetParser

    class FormulaAwareParser(WorkSheetParser):
        def parse_cell(self, element):
            cell = super().parse_cell(element)
            if cell["value"] is None and element.find(FORMULA_TAG) is not None:
                cell["value"] = _NO_SAVED_VALUE
            return cell

    return FormulaAwareParser
