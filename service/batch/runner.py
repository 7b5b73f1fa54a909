"""The local batch engine: stream, score in chunks, checkpoint, resume, assemble.

Phase 1 reads the input in fixed chunks of rows. Each chunk's unique texts that the run has
not scored yet are scored in one call; the predictions go to the run's cache and then to a
chunk file, written atomically. A run that stops (Ctrl-C, kill -9, power loss) leaves its
chunk files and cache in ``OUTPUT.cxwork/``; running the same command again skips the chunks
that are done. Phase 2 reads the input again beside the chunk files and writes the output
and the errors file to temporary names, then renames them into place (the report, made from
the same pass, is written afterwards by the caller). Because
chunks are fixed and the cache keeps the first prediction for each text, the output of an
interrupted and resumed run is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from service.batch.cache import PredictionCache, text_key
from service.batch.readers import InputError, Reader, Record
from service.batch.report import ReportStats
from service.batch.writers import (
    XLSX_MAX_CELL,
    OutputWriter,
    PredictionColumns,
    output_format,
    xlsx_too_long,
)
from service.store.tables import ID_LENGTH
from service.text import has_visible_text

WORK_FORMAT = 2  # 2: the identity holds the bundle's fingerprint and the predictor's settings


@dataclass
class ScoreOptions:
    """What to read and how; ``None`` columns are taken when the input has them."""

    text_column: str = "text"
    id_column: str | None = None  # default: id, if present (else row numbers)
    date_column: str | None = None  # default: created_at, date or timestamp, if present
    metadata_columns: list[str] | None = None  # default: channel and segment, if present
    lang_column: str | None = None  # default: lang, if present
    encoding: str = "utf-8"
    delimiter: str | None = None
    prefix: str = ""
    chunk_rows: int = 1024
    record: bool = False
    restart: bool = False
    keep_work: bool = False


@dataclass
class RunSummary:
    """What a run did."""

    output: Path
    rows: int = 0
    scored: int = 0
    errors: int = 0
    texts_scored: int = 0  # unique texts sent to the model in this process
    resumed_chunks: int = 0
    recorded: int = 0
    errors_path: Path | None = None
    stats: ReportStats | None = None
    error_lines: list[str] = field(default_factory=list)
    # One line per column of rows written whose cells are Excel formulas with no saved value
    # (written empty): the rows are scored, but the output lacks what those cells would hold.
    warnings: list[str] = field(default_factory=list)


def _first_present(columns: list[str], *candidates: str) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fingerprint(path: Path) -> dict:
    """Enough to notice a different or changed input without reading all of it."""
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        if stat.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            digest.update(fh.read())
    return {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256_ends": digest.hexdigest(),
    }


def _bundle_fingerprint(bundle) -> dict:
    """The bundle as loaded: its ``bundle.json`` text plus the size and mtime of every other
    file in it (weights, ONNX graphs, tokenizer), so a changed model is noticed without
    reading hundreds of megabytes per run."""
    from service.bundle import META_FILE  # here: service.bundle imports torch

    root = Path(bundle.path)
    meta = root / META_FILE
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path != meta:
            stat = path.stat()
            files[path.relative_to(root).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return {
        "path": str(root.resolve()),
        "meta_sha256": hashlib.sha256(meta.read_bytes()).hexdigest() if meta.is_file() else None,
        "files": files,
        "backend": getattr(bundle, "backend_detail", getattr(bundle, "backend", None)),
    }


def _predictor_settings(predictor) -> dict:
    """The predictor's settings that change its predictions (see ``predictor_options``);
    the batch size and threads are left out: they change the speed, and on the bf16 backend
    scores by at most ~0.03 (its attention rounds with the pass's width; README), which a
    resumed run may mix."""
    return {
        "max_length": predictor.max_length,
        "review_margin": predictor.review_margin,
        "evidence": predictor.evidence,
        "pack_tokens": predictor.pack_tokens,
        "device": str(predictor.device),
    }


def parse_date(value: Any) -> datetime | None:
    """A datetime from an ISO 8601 string, a datetime or a date; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    if isinstance(value, str):
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    raise ValueError(f"not a date: {value!r}")


class Job:
    """One scoring run of an input file into an output file (resumable)."""

    def __init__(self, predictor, input_path, output_path, options: ScoreOptions, store=None):
        self.predictor = predictor
        self.options = options
        self.store = store
        self.input = Path(input_path)
        self.output = Path(output_path)
        self.reader = Reader(self.input, options.encoding, options.delimiter, options.text_column)
        self.output_format = output_format(self.output)
        cols = self.reader.columns
        o = options
        if o.text_column not in cols:
            raise InputError(
                f"{self.input}: no column {o.text_column!r} (columns: {cols}); "
                "choose one with --text-column"
            )
        if o.id_column and o.id_column not in cols:
            raise InputError(
                f"{self.input}: no id column {o.id_column!r} (columns: {cols}); leave "
                "--id-column out to number the rows"
            )
        self.id_column = o.id_column or "id"
        self.has_id = self.id_column in cols
        if o.record and not self.has_id:
            # Row numbers restart with every file: a second file would overwrite the first
            # one's records in the store.
            raise InputError(
                f"{self.input}: --record needs an id column (no {self.id_column!r} in "
                f"{cols}); name one with --id-column"
            )
        self.date_column = o.date_column or _first_present(cols, "created_at", "date", "timestamp")
        if o.date_column and o.date_column not in cols:
            raise InputError(f"{self.input}: no date column {o.date_column!r} (columns: {cols})")
        if o.metadata_columns is None:
            self.metadata_columns = [c for c in ("channel", "segment") if c in cols]
        else:
            missing = [c for c in o.metadata_columns if c not in cols]
            if missing:
                raise InputError(f"{self.input}: no metadata columns {missing} (columns: {cols})")
            self.metadata_columns = list(o.metadata_columns)
        if o.lang_column and o.lang_column not in cols:
            raise InputError(
                f"{self.input}: no language column {o.lang_column!r} (columns: {cols})"
            )
        self.lang_column = o.lang_column or _first_present(cols, "lang", "language")
        self.columns = PredictionColumns(
            predictor.theme_ids, predictor.sentiments, o.prefix, with_lang=self.lang_column is None
        )
        self.output_columns = cols if self.has_id else ["id", *cols]
        self.columns.check_collisions(self.output_columns, self.output_format, self.output)
        self.work = self.output.with_name(self.output.name + ".cxwork")
        # Named from the output's whole name, as the work folder and the temporary names are:
        # outputs ``x.csv`` and ``x.parquet`` in one folder each keep their own errors file (a
        # clean run removes its own stale one, never another output's).
        self.errors_path = self.output.with_name(self.output.name + ".errors.csv")
        for what, path in (("output", self.output), ("errors file", self.errors_path)):
            if path.resolve() == self.input.resolve():
                raise InputError(
                    f"{self.input}: the {what} would overwrite the input; choose another -o"
                )

    # -- the run's identity ------------------------------------------------------------------
    def _identity(self) -> dict:
        o = asdict(self.options)
        # ``record`` stays: a run resumed with --record must not skip recording the chunks
        # scored before the interruption without it.
        for k in ("restart", "keep_work"):
            o.pop(k)
        return {
            "format": WORK_FORMAT,
            "input": _fingerprint(self.input),
            "options": o,
            "model_version": self.predictor.model_version,
            # A retrained bundle may keep its version name, and the settings change the
            # predictions too: either change must not mix old chunks into the new run.
            "model": _bundle_fingerprint(self.predictor.bundle),
            "predictor": _predictor_settings(self.predictor),
        }

    def _prepare_work(self) -> None:
        identity = self._identity()
        self._input_fingerprint = identity["input"]  # the input as scored: checked again later
        manifest = self.work / "run.json"
        if self.options.restart and self.work.exists():
            shutil.rmtree(self.work)
        if manifest.exists():
            if json.loads(manifest.read_text(encoding="utf-8")) != identity:
                raise InputError(
                    f"{self.work}: an unfinished run with another input, model, model settings "
                    "or options is there; run the same command again to resume it, or pass "
                    "--restart"
                )
            return
        self.work.mkdir(parents=True, exist_ok=True)
        _fsync_write(manifest, json.dumps(identity, indent=1))

    def _chunk_path(self, k: int) -> Path:
        return self.work / f"chunk-{k:07d}.jsonl"

    # -- phase 1: score ----------------------------------------------------------------------
    def _row_id(self, record: Record) -> Any:
        if not self.has_id:
            return record.number
        value = record.values.get(self.id_column)
        if isinstance(value, float):
            # Parquet/Excel/JSON number ids: NaN (an empty cell) is no id, and would make
            # every such row one record; 1.0 is the id "1", as the API gets it.
            if not math.isfinite(value):
                return None
            if value.is_integer():
                return int(value)
        return value

    def _problem(self, record: Record) -> str | None:
        if record.problem:
            return record.problem
        if record.formulas:  # Excel: read as None, which would say "empty text"/"missing id"
            for what, column in (
                ("text", self.options.text_column),
                ("id", self.id_column if self.has_id else None),
                ("date", self.date_column),
            ):
                if column in record.formulas:
                    return (
                        f"{what} cell {record.formulas[column]} holds a formula with no saved "
                        "value (the workbook was never calculated); open and save it in Excel, "
                        "or export it as CSV"
                    )
        if self.options.text_column not in record.values:
            return f"no {self.options.text_column!r} field"
        text = record.values.get(self.options.text_column)
        if text is None or (isinstance(text, str) and not has_visible_text(text)):
            return "empty text"  # or only whitespace, zero-width or control characters
        if not isinstance(text, str):
            return f"text is not a string ({type(text).__name__})"
        if self.output_format == "xlsx" and (column := xlsx_too_long(record.values)):
            # Excel would cut the cell short when the file is opened: say so, not lose it.
            return (
                f"{column} is longer than an Excel cell holds ({XLSX_MAX_CELL:,} characters); "
                "write .csv or .parquet to keep it"
            )
        row_id = self._row_id(record)
        if row_id is None or (isinstance(row_id, str) and not row_id.strip()):
            return "missing id"
        if self.options.record:  # the store's rule for ids (the API's too)
            if len(str(row_id)) > ID_LENGTH:
                return f"id is longer than {ID_LENGTH} characters"
            if "\x00" in str(row_id):
                return "id contains a NUL character"
        if self.date_column:
            try:
                moment = parse_date(record.values.get(self.date_column))
                if moment is not None and moment.tzinfo is not None:
                    moment.astimezone(UTC)  # as the store keeps it
            except (ValueError, TypeError):
                return f"{self.date_column} is not an ISO 8601 date"
            except OverflowError:
                return f"{self.date_column} is out of range"
        return None

    def _lang(self, record: Record) -> str | None:
        if not self.lang_column:
            return None
        value = record.values.get(self.lang_column)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def _score_chunk(self, k: int, chunk: list[Record], cache: PredictionCache, summary) -> None:
        entries: list[dict] = []
        wanted: dict[str, tuple[str, str | None]] = {}
        for record in chunk:
            problem = self._problem(record)
            if problem:
                entries.append(
                    {"n": record.number, "id": _jsonable(self._row_id(record)), "error": problem}
                )
                continue
            text = record.values[self.options.text_column]
            lang = self._lang(record)
            key = text_key(text, lang)
            wanted.setdefault(key, (text, lang))
            entries.append({"n": record.number, "id": _jsonable(self._row_id(record)), "k": key})
        known = cache.get_many(wanted)
        todo = [k_ for k_ in wanted if k_ not in known]
        if todo:
            predictions = self.predictor.predict(
                [wanted[k_][0] for k_ in todo], langs=[wanted[k_][1] for k_ in todo]
            )
            fresh = {}
            for key, p in zip(todo, predictions, strict=True):
                row = p.as_row(None)
                row.pop("id")
                fresh[key] = row
            cache.put_many(fresh)
            known.update(fresh)
            summary.texts_scored += len(todo)
        for e in entries:
            if "k" in e:
                e["p"] = known[e.pop("k")]
        if self.options.record and self.store is not None:
            summary.recorded += self._record(chunk, entries)
        _fsync_write(
            self._chunk_path(k), "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        )

    def _record(self, chunk: list[Record], entries: list[dict]) -> int:
        from service.predictor import Prediction
        from service.store import RecordInput

        items = []
        for record, e in zip(chunk, entries, strict=True):
            if "p" not in e:
                continue
            meta = {c: record.values.get(c) for c in self.metadata_columns}
            if self.date_column:
                meta["created_at"] = parse_date(record.values.get(self.date_column))
            meta = {k: v for k, v in meta.items() if v is not None}
            items.append(
                RecordInput(
                    id=e["id"],
                    text=record.values[self.options.text_column],
                    prediction=Prediction(**e["p"]),
                    metadata=meta,
                )
            )
        bundle = self.predictor.bundle
        version = bundle.meta.get("taxonomy_version", "")
        return self.store.record(items, version, bundle.thresholds) if items else 0

    # -- phase 2: assemble -------------------------------------------------------------------
    def _assemble(self, summary: RunSummary) -> None:
        # Phase 2 reads the input again beside the chunk files: an input changed since the run
        # began would pair its rows with another text's predictions.
        if _fingerprint(self.input) != self._input_fingerprint:
            raise InputError(
                f"{self.input}: the file changed while it was being scored; "
                "run the command again with --restart"
            )
        segment = _first_present(self.metadata_columns, "segment", "channel")
        stats = ReportStats(self.predictor.theme_ids, self.predictor.sentiments, segment)
        # Temporary names no reader takes for data (not *.parquet, *.csv): an interrupted run
        # leaves nothing that looks like a finished output.
        tmp_out = self.output.with_name(self.output.name + ".partial")
        tmp_err = self.errors_path.with_name(self.errors_path.name + ".partial")
        writer = OutputWriter(
            tmp_out,
            self.output_columns,
            self.columns,
            self._output_schema(),
            self.reader.delimiter or ",",
            final_path=self.output,
        )
        try:
            self._write_output(writer, tmp_err, stats, segment, summary)
        except BaseException:
            writer.abort()
            tmp_out.unlink(missing_ok=True)
            tmp_err.unlink(missing_ok=True)
            raise
        writer.close()
        os.replace(tmp_out, self.output)
        if summary.errors:
            os.replace(tmp_err, self.errors_path)
            summary.errors_path = self.errors_path
        else:
            tmp_err.unlink()
            self.errors_path.unlink(missing_ok=True)
        summary.stats = stats

    def _output_schema(self):
        """Parquet: the input's column types, with an int64 ``id`` first when row numbers
        are added (without it every column would be written as a string)."""
        schema = self.reader.arrow_schema
        if schema is None or self.has_id:
            return schema
        import pyarrow as pa

        return pa.schema([pa.field("id", pa.int64()), *schema])

    def _write_output(self, writer: OutputWriter, tmp_err: Path, stats, segment, summary) -> None:
        # Excel cells outside the text, id and date columns (those make a bad row) that hold a
        # formula with no saved value: read as None, so written empty, and with --record stored
        # without that metadata. Counted here, in the pass over every row (a resumed run skips
        # the scoring of finished chunks): column -> [first cell, cells].
        blank_formulas: dict[str, list] = {}
        with tmp_err.open("w", encoding="utf-8", newline="") as err_fh:
            errors = csv.writer(err_fh)
            errors.writerow(["row", "id", "reason"])
            for k, chunk in enumerate(self.reader.chunks(self.options.chunk_rows)):
                # split("\n"), not splitlines(): that also splits at U+2028, U+0085 and
                # others, which json.dumps leaves unescaped inside texts and ids.
                lines = self._chunk_path(k).read_text(encoding="utf-8").split("\n")
                entries = {e["n"]: e for e in map(json.loads, filter(None, lines))}
                values, predictions = [], []
                for record in chunk:
                    e = entries[record.number]
                    summary.rows += 1
                    if "error" in e:
                        errors.writerow([record.number, e["id"], e["error"]])
                        summary.errors += 1
                        summary.error_lines.append(
                            f"{self.input}: row {record.number}: {e['error']}; skipped"
                        )
                        continue
                    for column, cell in (record.formulas or {}).items():
                        blank_formulas.setdefault(column, [cell, 0])[1] += 1
                    p = {**e["p"], "id": e["id"]}
                    row = record.values if self.has_id else {"id": e["id"], **record.values}
                    values.append(row)
                    predictions.append(p)
                    stats.add(p, record.values.get(segment) if segment else None)
                writer.write(values, predictions)
                summary.scored += len(values)
        for column, (cell, cells) in blank_formulas.items():
            which = f"cell {cell} holds" if cells == 1 else f"{cells} cells (first {cell}) hold"
            summary.warnings.append(
                f"{self.input}: column {column!r}: {which} a formula with no saved value (the "
                "workbook was never calculated), written empty; open and save it in Excel, or "
                "export it as CSV"
            )

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        progress: bool = True,
        err: TextIO | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> RunSummary:
        err = err or sys.stderr
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_work()
        summary = RunSummary(self.output)
        cache = PredictionCache(self.work / "cache.sqlite")
        bar = tqdm(
            total=self.reader.estimate_rows(),
            desc=f"scoring {self.input.name}",
            unit=" rows",
            disable=not progress,
            file=err,
            smoothing=0.1,
        )
        try:
            try:
                for k, chunk in enumerate(self.reader.chunks(self.options.chunk_rows)):
                    if self._chunk_path(k).exists():
                        summary.resumed_chunks += 1
                    else:
                        self._score_chunk(k, chunk, cache, summary)
                        if on_chunk is not None:
                            on_chunk(k)
                    bar.update(len(chunk))
            finally:
                bar.close()
                cache.close()
        except InputError:
            # Damage in the input (bytes not in its encoding, an unclosed quote): the run
            # cannot finish as it is, and the fix the error suggests (another --encoding, a
            # fixed file) is another run. Leave no unfinished run behind that would refuse it
            # without --restart, even when chunks before the damage were scored.
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        self._assemble(summary)
        if not self.options.keep_work:
            shutil.rmtree(self.work)
        return summary


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
