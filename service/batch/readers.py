"""Streaming readers for feedback exports: CSV/TSV (any delimiter, UTF-8 with or without BOM,
or GBK), JSONL, Parquet and Excel (.xlsx). Each yields plain row dicts in chunks, so memory
does not grow with the file, and numbers rows the way a person would find them (data rows
from 1, after the header; JSONL by line)."""

from __future__ import annotations

import codecs
import csv
import json
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


class InputError(ValueError):
    """The input cannot be read at all; the message names the file (and row where known)."""


@dataclass
class Record:
    """One input row: its number, its columns as read, or why it could not be read."""

    number: int
    values: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def input_format(path: Path) -> str:
    fmt = INPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unsupported input format {path.suffix!r}; use one of {sorted(INPUT_FORMATS)}"
        )
    return fmt


class Reader:
    """Opens ``path`` and yields :class:`Record` lists of at most ``chunk_rows`` rows."""

    def __init__(
        self, path: str | Path, encoding: str = "utf-8", delimiter: str | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        self.format = input_format(self.path)
        self.encoding = (
            "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        )
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}") from None
        self.delimiter = delimiter
        self.columns: list[str] = []
        self.arrow_schema = None  # Parquet only: the input's own column types
        if self.format == "csv":
            self.delimiter = delimiter or self._sniff_delimiter()
            self.columns = self._csv_header()
        elif self.format == "parquet":
            import pyarrow.parquet as pq

            self.arrow_schema = pq.ParquetFile(self.path).schema_arrow
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
            where = "the header" if line == 1 else f"row {line - 1} (line {line})"
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

    def _sniff_delimiter(self) -> str:
        if self.path.suffix.lower() == ".tsv":
            return "\t"
        try:
            with self._open_text() as fh:
                sample = fh.read(1 << 16)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from None
        try:
            return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        except csv.Error:
            return ","

    def _csv_header(self) -> list[str]:
        try:
            with self._open_text() as fh:
                header = next(csv.reader(fh, delimiter=self.delimiter), None)
        except UnicodeDecodeError as exc:
            raise self._decode_error(exc) from None
        if not header:
            raise InputError(f"{self.path}: the file is empty (no header row)")
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise InputError(f"{self.path}: duplicate column names in the header: {duplicates}")
        return header

    def _csv_records(self) -> Iterator[Record]:
        number = 0
        with self._open_text() as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            try:
                next(reader, None)
                for values in reader:
                    number += 1
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
            except json.JSONDecodeError:
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
            if not isinstance(obj, dict):
                yield Record(number, problem="not a JSON object")
                continue
            yield Record(number, obj)

    # -- Parquet ---------------------------------------------------------------------------
    def _parquet_records(self) -> Iterator[Record]:
        import pyarrow.parquet as pq

        number = 0
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=4096):
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
        finally:
            workbook.close()
        if not header or all(h is None for h in header):
            raise InputError(f"{self.path}: the first sheet has no header row")
        return [str(h) if h is not None else f"column_{k + 1}" for k, h in enumerate(header)]

    def _xlsx_records(self) -> Iterator[Record]:
        workbook, sheet = self._xlsx_sheet()
        try:
            rows = sheet.iter_rows(min_row=2, values_only=True)
            for number, values in enumerate(rows, 1):
                if all(v is None for v in values):
                    continue
                padded = list(values) + [None] * (len(self.columns) - len(values))
                yield Record(
                    number, dict(zip(self.columns, padded[: len(self.columns)], strict=True))
                )
        finally:
            workbook.close()
