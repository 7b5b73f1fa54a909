"""Streaming writers: the input's columns plus the prediction columns, as JSONL, CSV/TSV,
Parquet or Excel. JSONL keeps the prediction nested (``scores`` as an object); the tabular
formats flatten it into one column per theme score and sentiment score."""

from __future__ import annotations

import csv
import json
import math
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.batch.readers import InputError
from service.spreadsheet import safe_cell

OUTPUT_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
}
XLSX_MAX_ROWS = 1_048_575
XLSX_MAX_CELL = 32_767  # characters in one Excel cell: longer text is cut when opened
# Cells a spreadsheet runs as a formula when they start so: the rule of the API's CSV
# (service/api/routes/metrics.py), kept here too so the batch writers need not import the API.
# The workbook's created/modified times: fixed, so the same run gives the same bytes.
_XLSX_TIME = datetime(2000, 1, 1)
_KEYS = (
    "themes",
    "scores",
    "sentiment",
    "sentiment_scores",
    "needs_review",
    "review_reasons",
    "evidence",
)  # Excel's limit, less the header


def default_output(source: Path) -> Path:
    """The output ``score`` writes when no ``-o`` is given: ``march.csv`` gives
    ``march.scored.csv``, in the input's own format. A ``.txt`` input is read, and so written,
    as CSV: ``notes.txt`` gives ``notes.scored.txt.csv``, never ``notes.scored.csv``, which is
    ``notes.csv``'s (one run would replace the other's results). Every other input keeps its
    extension, so the name maps back to one input (``X.scored.S`` is only ``X.S``'s, and
    ``X.scored.txt.csv`` only ``X.txt``'s) and existing default names stay as they were."""
    if source.suffix.lower() == ".txt":
        return source.with_name(f"{source.stem}.scored{source.suffix}.csv")
    return source.with_name(f"{source.stem}.scored{source.suffix}")


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unsupported output format {path.suffix!r}; use one of "
            f"{sorted(OUTPUT_FORMATS)}"
        )
    return fmt


class PredictionColumns:
    """Names of the prediction columns, prefixed, and how a prediction row maps onto them."""

    def __init__(self, theme_ids: list[str], sentiments: list[str], prefix: str, with_lang: bool):
        self.theme_ids, self.sentiments, self.prefix = theme_ids, sentiments, prefix
        self.with_lang = with_lang
        # The prediction row's keys, in output order: one list for nested and flat names.
        self.keys = list(_KEYS) + (["lang"] if with_lang else []) + ["model_version"]
        self.nested_names = [prefix + k for k in self.keys]
        self.flat_names = list(self.flat(None, lists=False))

    def check_collisions(self, input_columns: list[str], fmt: str, path: Path) -> None:
        names = self.nested_names if fmt == "jsonl" else self.flat_names
        clash = sorted(set(names) & set(input_columns))
        if clash:
            raise InputError(
                f"{path}: input columns {clash} have the names of prediction columns; "
                "pass --prefix (e.g. --prefix cx_) to name the prediction columns apart"
            )

    def nested(self, p: dict) -> dict:
        return {self.prefix + k: p[k] for k in self.keys}

    def flat(self, p: dict | None, lists: bool) -> dict:
        """One value per column (``p=None``: the column names only); ``lists``: themes as a
        list (Parquet), else ';'-joined."""
        out: dict[str, Any] = {}
        for key in self.keys:
            if key == "scores":
                out.update({f"score_{t}": p and p["scores"][t] for t in self.theme_ids})
            elif key == "sentiment_scores":
                out.update({f"sentiment_{s}": p and p[key][s] for s in self.sentiments})
            elif p is None:
                out[key] = None
            elif key == "themes":
                out[key] = p[key] if lists else ";".join(p[key])
            elif key == "review_reasons":
                out[key] = ";".join(p[key])
            elif key == "evidence":
                out[key] = json.dumps(p[key], ensure_ascii=False)
            else:
                out[key] = p[key]
        return {self.prefix + k: v for k, v in out.items()}

    def arrow_fields(self) -> list:
        import pyarrow as pa

        types = {"themes": pa.list_(pa.string()), "needs_review": pa.bool_()}
        fields = []
        for name in self.flat_names:
            base = name[len(self.prefix) :]
            if base.startswith(("score_", "sentiment_")) and base != "sentiment":
                fields.append(pa.field(name, pa.float32()))
            else:
                fields.append(pa.field(name, types.get(base, pa.string())))
        return fields


def xlsx_too_long(values: dict) -> str | None:
    """The first column whose cell would not fit in an Excel cell, or None."""
    for column, value in values.items():
        value = _text_value(value)
        if isinstance(value, str) and len(value) > XLSX_MAX_CELL:
            return column
    return None


def _text_value(value: Any) -> Any:
    """A cell for CSV/Excel/all-string Parquet: scalars as they are, structures as JSON."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


class OutputWriter:
    """Writes merged rows to ``path`` chunk by chunk."""

    def __init__(
        self,
        path: Path,
        input_columns: list[str],
        columns: PredictionColumns,
        input_schema=None,
        delimiter: str = ",",
        final_path: Path | None = None,
    ) -> None:
        """``final_path``: the name ``path`` (a temporary one) will get, whose suffix sets the
        format (default: ``path``'s own)."""
        named = final_path or path
        self.path, self.fmt = path, output_format(named)
        self.input_columns, self.columns = input_columns, columns
        self.input_schema = input_schema
        # The delimiter follows the output's name: a .csv of a tab-separated input gets
        # commas; a ;-separated CSV stays ;-separated (Excel's habit in many locales).
        if named.suffix.lower() == ".tsv":
            self.delimiter = "\t"
        else:
            self.delimiter = "," if delimiter == "\t" else delimiter
        self.rows = 0
        self._fh = None
        self._csv = None
        self._parquet = None
        self._schema = None
        self._book = None
        self._sheet = None
        self._open()

    def _open(self) -> None:
        if self.fmt == "jsonl":
            self._fh = self.path.open("w", encoding="utf-8", newline="\n")
        elif self.fmt == "csv":
            self._fh = self.path.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._fh, delimiter=self.delimiter)
            self._csv.writerow([safe_cell(c) for c in self.input_columns + self.columns.flat_names])
        elif self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self.input_schema is not None:
                inputs = [self.input_schema.field(c) for c in self.input_columns]
            else:
                inputs = [pa.field(c, pa.string()) for c in self.input_columns]
            self._schema = pa.schema(inputs + self.columns.arrow_fields())
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        else:
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._book.properties.created = _XLSX_TIME  # see _save_xlsx
            self._sheet = self._book.create_sheet("scored")
            self._sheet.append(
                [self._excel(c) for c in self.input_columns + self.columns.flat_names]
            )

    def write(self, values: list[dict], predictions: list[dict]) -> None:
        """Write one chunk: each input row's values with its prediction row."""
        if not values:
            return
        self.rows += len(values)
        if self.fmt == "jsonl":
            for v, p in zip(values, predictions, strict=True):
                row = {k: _finite(x) for k, x in v.items()}
                self._fh.write(
                    json.dumps({**row, **self.columns.nested(p)}, ensure_ascii=False, default=str)
                    + "\n"
                )
        elif self.fmt == "csv":
            for v, p in zip(values, predictions, strict=True):
                row = [_text_value(v.get(c)) for c in self.input_columns]
                row += self.columns.flat(p, lists=False).values()
                self._csv.writerow([safe_cell(x) for x in row])
        elif self.fmt == "parquet":
            import pyarrow as pa

            typed = self.input_schema is not None
            rows = [
                {
                    **{c: (v.get(c) if typed else _string(v.get(c))) for c in self.input_columns},
                    **self.columns.flat(p, lists=True),
                }
                for v, p in zip(values, predictions, strict=True)
            ]
            self._parquet.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        else:
            if self.rows > XLSX_MAX_ROWS:
                raise InputError(
                    f"{self.path}: more than {XLSX_MAX_ROWS:,} rows do not fit in an Excel "
                    "sheet; write .parquet or .csv instead"
                )
            for v, p in zip(values, predictions, strict=True):
                row = [v.get(c) for c in self.input_columns]
                row += self.columns.flat(p, False).values()
                try:
                    self._sheet.append([self._excel(x) for x in row])
                except (ValueError, TypeError) as exc:  # a type openpyxl cannot write
                    raise InputError(
                        f"{self.path}: id {p.get('id')!r}: a cell Excel cannot hold "
                        f"({exc}); write .parquet or .csv instead"
                    ) from None

    def _excel(self, value: Any) -> Any:
        """An Excel cell: strings as string cells (never formulas: texts come from customers),
        aware datetimes as naive UTC and bytes as hex (Excel has neither)."""
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).hex()
        elif isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        value = _text_value(value)
        if not isinstance(value, str):
            return value
        # Control characters Excel cannot hold are dropped.
        cell = WriteOnlyCell(self._sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"  # openpyxl takes a string that starts with = for a formula
        return cell

    def abort(self) -> None:
        """Close without finishing the file (the caller deletes it): an interrupted run must
        not leave a file that looks complete."""
        if self._fh is not None:
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        self._book = None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._fh.close()
        if self._parquet is not None:
            self._parquet.close()
        if self._book is not None:
            _save_xlsx(self._book, self.path)


class _FixedTimeZip(zipfile.ZipFile):
    """A zip whose entries all carry one fixed time (zipfile stamps the current time, or the
    file's mtime, into each): the same workbook gives the same bytes."""

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = self.compression
        info.external_attr = 0o600 << 16
        return info

    def writestr(self, zinfo_or_arcname, data, *args: Any, **kwargs: Any) -> None:
        if not isinstance(zinfo_or_arcname, zipfile.ZipInfo):
            zinfo_or_arcname = self._info(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename, arcname=None, *args: Any, **kwargs: Any) -> None:
        # Streamed (a write-only sheet is a temporary file, possibly gigabytes).
        info = self._info(arcname or Path(filename).name)
        info.file_size = Path(filename).stat().st_size  # sets ZIP64 up front when needed
        with open(filename, "rb") as src, self.open(info, "w") as dest:
            shutil.copyfileobj(src, dest, 1 << 20)


def _save_xlsx(book, path: Path) -> None:
    """``book.save(path)``, byte for byte the same on every run: openpyxl stamps the time of
    saving into the core properties and the zip entries."""
    from openpyxl.writer.excel import ExcelWriter

    if not book.worksheets:
        book.create_sheet()
    book.properties.modified = _XLSX_TIME
    archive = _FixedTimeZip(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    ExcelWriter(book, archive).save()  # closes the archive


def _finite(value: Any) -> Any:
    """NaN and infinities (from Parquet or Excel cells) as null: JSON has no such numbers,
    and strict parsers (jq, JavaScript) reject the ``NaN`` that ``json.dumps`` would write."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _string(value: Any) -> str | None:
    if value is None:
        return None
    value = _text_value(value)
    return value if isinstance(value, str) else str(value)
