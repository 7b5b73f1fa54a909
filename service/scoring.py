"""Batch scoring of feedback files: JSONL, CSV/TSV or Parquet in; JSONL, CSV or Parquet out.

Rows are read and scored in chunks, so memory does not grow with the file. Rows that cannot be
scored (empty text, missing id) are reported with their row number and skipped; the run goes on.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from service.predictor import Predictor

log = logging.getLogger(__name__)

CHUNK_ROWS = 512
INPUT_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


class ScoringInputError(ValueError):
    """The input file cannot be read at all (unknown format, missing text column)."""


@dataclass
class Row:
    """One input row: its 1-based data-row number, id and text."""

    number: int
    id: Any
    text: Any


@dataclass
class ScoreSummary:
    """What a scoring run did."""

    scored: int = 0
    skipped: list[str] = field(default_factory=list)


def _format(path: Path, table: dict[str, str], what: str) -> str:
    fmt = table.get(path.suffix.lower())
    if fmt is None:
        raise ScoringInputError(
            f"{path}: unsupported {what} format {path.suffix!r}; use one of {sorted(set(table))}"
        )
    return fmt


def iter_rows(path: Path, text_column: str, id_column: str) -> Iterator[Row]:
    """Yield the rows of ``path``; ids are row numbers when the file has no id column."""
    fmt = _format(path, INPUT_FORMATS, "input")
    if fmt == "jsonl":
        yield from _jsonl_rows(path, text_column, id_column)
    elif fmt in ("csv", "tsv"):
        yield from _csv_rows(path, text_column, id_column, "\t" if fmt == "tsv" else ",")
    else:
        yield from _parquet_rows(path, text_column, id_column)


def _jsonl_rows(path: Path, text_column: str, id_column: str) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Row(number, None, _Bad(f"invalid JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                yield Row(number, None, _Bad("not a JSON object"))
                continue
            yield Row(number, obj.get(id_column, number), obj.get(text_column, _MISSING))


def _csv_rows(path: Path, text_column: str, id_column: str, delimiter: str) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if reader.fieldnames is None or text_column not in reader.fieldnames:
            raise ScoringInputError(
                f"{path}: no column {text_column!r} (columns: {reader.fieldnames}); "
                "choose one with --text-column"
            )
        has_id = id_column in reader.fieldnames
        for number, rec in enumerate(reader, 1):
            yield Row(number, rec.get(id_column) if has_id else number, rec.get(text_column))


def _parquet_rows(path: Path, text_column: str, id_column: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    if text_column not in names:
        raise ScoringInputError(
            f"{path}: no column {text_column!r} (columns: {names}); choose one with --text-column"
        )
    columns = [text_column] + ([id_column] if id_column in names else [])
    number = 0
    for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
        data = batch.to_pydict()
        for k in range(batch.num_rows):
            number += 1
            row_id = data[id_column][k] if id_column in data else number
            yield Row(number, row_id, data[text_column][k])


class _Bad(str):
    """A row-level read problem carried in place of the text."""


_MISSING = _Bad("missing text column")


def row_problem(row: Row) -> str | None:
    """Why ``row`` cannot be scored, or None."""
    if isinstance(row.text, _Bad):
        return str(row.text)
    if row.text is None:
        return "empty text"
    if not isinstance(row.text, str):
        return f"text is not a string ({type(row.text).__name__})"
    if not row.text.strip():
        return "empty text"
    if row.id is None or (isinstance(row.id, str) and not row.id.strip()):
        return "missing id"
    return None


class _Writer:
    """Writes prediction rows as JSONL, CSV or Parquet, chunk by chunk."""

    def __init__(self, path: Path, theme_ids: list[str], sentiments: list[str]) -> None:
        self.path, self.fmt = path, _format(path, OUTPUT_FORMATS, "output")
        self.theme_ids, self.sentiments = theme_ids, sentiments
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = None
        self._csv: csv.DictWriter | None = None
        self._parquet = None

    def _flat(self, row: dict) -> dict:
        flat = {
            "id": row["id"],
            "themes": ";".join(row["themes"]),
            **{f"score_{t}": row["scores"][t] for t in self.theme_ids},
            "sentiment": row["sentiment"],
            **{f"sentiment_{s}": row["sentiment_scores"][s] for s in self.sentiments},
            "needs_review": row["needs_review"],
            "review_reasons": ";".join(row["review_reasons"]),
            "evidence": json.dumps(row["evidence"], ensure_ascii=False),
            "lang": row["lang"],
            "model_version": row["model_version"],
        }
        return flat

    def write(self, rows: list[dict]) -> None:
        if self.fmt == "jsonl":
            if self._fh is None:
                self._fh = self.path.open("w", encoding="utf-8")
            for row in rows:
                self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "csv":
            flat = [self._flat(r) for r in rows]
            if self._csv is None:
                self._fh = self.path.open("w", encoding="utf-8", newline="")
                fields = list(self._flat_fields())
                self._csv = csv.DictWriter(self._fh, fieldnames=fields)
                self._csv.writeheader()
            self._csv.writerows(flat)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            flat = [self._flat(r) for r in rows]
            for f in flat:
                f["id"] = str(f["id"])
                f["themes"] = f["themes"].split(";") if f["themes"] else []
            table = pa.Table.from_pylist(flat, schema=self._arrow_schema())
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table)

    def _flat_fields(self) -> Iterator[str]:
        yield from ("id", "themes")
        yield from (f"score_{t}" for t in self.theme_ids)
        yield "sentiment"
        yield from (f"sentiment_{s}" for s in self.sentiments)
        yield from ("needs_review", "review_reasons", "evidence", "lang", "model_version")

    def _arrow_schema(self):
        import pyarrow as pa

        fields = [pa.field("id", pa.string()), pa.field("themes", pa.list_(pa.string()))]
        fields += [pa.field(f"score_{t}", pa.float32()) for t in self.theme_ids]
        fields += [pa.field("sentiment", pa.string())]
        fields += [pa.field(f"sentiment_{s}", pa.float32()) for s in self.sentiments]
        fields += [
            pa.field("needs_review", pa.bool_()),
            pa.field("review_reasons", pa.string()),
            pa.field("evidence", pa.string()),
            pa.field("lang", pa.string()),
            pa.field("model_version", pa.string()),
        ]
        return pa.schema(fields)

    def close(self) -> None:
        if self.fmt == "parquet" and self._parquet is None:
            self.write([])  # an empty but valid file with the schema
        if self._parquet is not None:
            self._parquet.close()
        if self._fh is not None:
            self._fh.close()


def score_file(
    predictor: Predictor,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = "text",
    id_column: str = "id",
    progress: bool = True,
    err: TextIO | None = None,
) -> ScoreSummary:
    """Score every row of ``input_path`` into ``output_path``; bad rows are reported and skipped."""
    err = err or sys.stderr
    src, dst = Path(input_path), Path(output_path)
    if not src.is_file():
        raise ScoringInputError(f"{src}: no such file")
    _format(dst, OUTPUT_FORMATS, "output")
    summary = ScoreSummary()
    writer = _Writer(dst, predictor.theme_ids, predictor.sentiments)
    bar = tqdm(desc=f"scoring {src.name}", unit=" rows", disable=not progress, file=err)
    chunk: list[Row] = []

    def flush() -> None:
        predictions = predictor.predict([r.text for r in chunk])
        writer.write([p.as_row(r.id) for r, p in zip(chunk, predictions, strict=True)])
        summary.scored += len(chunk)
        bar.update(len(chunk))
        chunk.clear()

    try:
        for row in iter_rows(src, text_column, id_column):
            problem = row_problem(row)
            if problem:
                message = f"{src}: row {row.number}: {problem}; skipped"
                summary.skipped.append(message)
                print(message, file=err)
                continue
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                flush()
        if chunk:
            flush()
    finally:
        writer.close()
        bar.close()
    return summary
