"""``cxthemes score --engine ray``: the same scoring on Ray Data, for files too big for one
machine. The input is read with ``ray.data.read_*``, scored by ``map_batches`` on a pool of
actors (each loads the model once) and written with ``write_*`` as a folder of part files;
rows that cannot be scored go to ``OUTPUT.errors/``. The prediction columns are the local
engine's flat columns, so the two engines' outputs compare row by row.

The input is checked as the local engine checks it (the same :class:`Job` checks) before Ray
starts; rows are refused for the same reasons (empty text, missing id, a bad date, a broken
JSONL line). Both folders are written under temporary names and renamed into place at the end,
so a rerun replaces an older output, as the local engine does, instead of adding to it.

Locally, Ray is started on 127.0.0.1 only, without its dashboard; ``--ray-address`` joins a
cluster instead, where the model path and the input must be reachable from every node.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from service.batch.readers import InputError, Reader
from service.batch.runner import Job, ScoreOptions, parse_date
from service.batch.writers import PredictionColumns
from service.text import has_visible_text

# The column that carries each row's problem (None: scorable) between the read and the filter;
# dropped from the output, written as ``reason`` into the errors folder.
_PROBLEM = "__cxthemes_problem__"
# The column of ``ray.data.read_text``: one JSONL line.
_LINE = "text"


def actor_arguments(model_path: str | Path, options: dict, settings) -> dict:
    """The :class:`ScoreActor` constructor arguments: each actor builds its predictor from the
    settings exactly as the local engine does (backend included)."""
    from service.predictor import predictor_options

    return {
        "model_path": str(Path(model_path).resolve()),
        "options": options,
        "predictor_kwargs": predictor_options(settings),
    }


def _csv_cell(value: Any) -> str:
    """A prediction value as the local engine's CSV writer (Python's ``csv``) writes it."""
    return "" if value is None else str(value)


class ScoreActor:
    """Holds one predictor; scores Arrow batches."""

    def __init__(self, model_path: str, options: dict, predictor_kwargs: dict) -> None:
        from service.predictor import Predictor

        self.predictor = Predictor.from_path(model_path, **predictor_kwargs)
        self.options = options
        self.columns = PredictionColumns(
            self.predictor.theme_ids,
            self.predictor.sentiments,
            options["prefix"],
            with_lang=options["lang_column"] is None,
        )
        # CSV has no list type (Arrow's CSV writer refuses list<string>): there the prediction
        # columns are text, written as the local engine's CSV writer writes them.
        self.csv = options.get("output_format") == "csv"

    def _schema(self):
        import pyarrow as pa

        if self.csv:
            return pa.schema([pa.field(name, pa.string()) for name in self.columns.flat_names])
        return pa.schema(self.columns.arrow_fields())

    def __call__(self, batch):
        import pyarrow as pa

        texts = batch.column(self.options["text_column"]).to_pylist()
        lang_column = self.options["lang_column"]
        langs = batch.column(lang_column).to_pylist() if lang_column else [None] * len(texts)
        langs = [lang.strip() if isinstance(lang, str) and lang.strip() else None for lang in langs]
        unique: dict[tuple[str, str | None], int] = {}
        for text, lang in zip(texts, langs, strict=True):
            unique.setdefault((text, lang), len(unique))
        predictions = self.predictor.predict(
            [t for t, _ in unique], langs=[lang for _, lang in unique]
        )
        flat = [
            self.columns.flat(predictions[unique[(t, lang)]].as_row(None), lists=not self.csv)
            for t, lang in zip(texts, langs, strict=True)
        ]
        if self.csv:
            flat = [{k: _csv_cell(v) for k, v in row.items()} for row in flat]
        table = pa.Table.from_pylist(flat, schema=self._schema())
        for name in table.column_names:
            batch = batch.append_column(name, table.column(name))
        return _formula_safe(batch) if self.csv else batch


def _formula_safe(table):
    """``table`` with every text cell a spreadsheet would run as a formula quoted, as the
    local engine's CSV writer does (texts and evidence come from customers)."""
    import pyarrow as pa

    from service.spreadsheet import safe_cell

    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pa.array([safe_cell(v) for v in column.to_pylist()], type=column.type)
        columns[name] = column
    return pa.table(columns)


def _missing(value: Any) -> bool:
    """An id the local engine would take as missing; NaN and infinities too (a Parquet or
    pandas float column's empty cells), which are no id to find a row by."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and not math.isfinite(value)


def _problem(options: dict, row: dict) -> str | None:
    """Why a row cannot be scored (None: it can), with the local engine's reasons."""
    text_column, date_column = options["text_column"], options["date_column"]
    if row.get(_PROBLEM):
        return row[_PROBLEM]
    text = row.get(text_column)
    if text is None or (isinstance(text, str) and not has_visible_text(text)):
        return "empty text"  # or only whitespace, zero-width or control characters
    if not isinstance(text, str):
        return f"text is not a string ({type(text).__name__})"
    if _missing(row.get(options["id_column"])):
        return "missing id"
    if date_column:
        try:
            parse_date(row.get(date_column))
        except (ValueError, TypeError):
            return f"{date_column} is not an ISO 8601 date"
        except OverflowError:
            return f"{date_column} is out of range"
    return None


def _mark_problems(options: dict):
    """A ``map_batches`` function that sets each row's problem column."""

    def mark(batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        problems = pa.array([_problem(options, row) for row in rows], pa.string())
        if _PROBLEM in batch.column_names:
            return batch.set_column(batch.column_names.index(_PROBLEM), _PROBLEM, problems)
        return batch.append_column(_PROBLEM, problems)

    return mark


def _as_text(value: Any) -> str | None:
    """A JSON value as the local engine writes it to a text cell: strings as they are,
    structures as JSON (never a guessed type: ``"001"`` stays ``"001"``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _parse_jsonl(columns: list[str]):
    """A ``map_batches`` function from JSONL lines to the input's columns, all text.

    ``ray.data.read_json`` goes through pandas/Arrow type inference, which turns ``"001"``
    into 1, ``"02134"`` into 2134 and dates into epoch milliseconds; parsing each line
    ourselves keeps the values as written. A line that is not a JSON object becomes a row
    with only its problem set (the local engine's reasons), not a failed run."""

    def parse(batch):
        import pyarrow as pa

        out: dict[str, list] = {c: [] for c in columns}
        problems: list[str | None] = []
        for line in batch.column(_LINE).to_pylist():
            try:
                obj = json.loads(line)
                problem = None if isinstance(obj, dict) else "not a JSON object"
            except json.JSONDecodeError as exc:
                obj, problem = {}, f"invalid JSON ({exc.msg})"
            except RecursionError:
                obj, problem = {}, "invalid JSON (nested too deeply)"
            if problem:
                obj = {}
            for c in columns:
                out[c].append(_as_text(obj.get(c)))
            problems.append(problem)
        arrays = {c: pa.array(v, pa.string()) for c, v in out.items()}
        return pa.table({**arrays, _PROBLEM: pa.array(problems, pa.string())})

    return parse


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise InputError(
            f"--engine ray needs Ray Data: pip install '.[ray]' (or use --engine local): {exc}"
        ) from None
    return ray


def _start_ray(address: str | None) -> None:
    # Read by Ray when it is first imported, so set before that.
    if not address:
        # Token auth would write under the home folder; a local, loopback-only Ray does not
        # need it. A cluster joined by address keeps its own (disabled here, a cluster that
        # requires tokens would refuse the run).
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # Without this, Ray resolves even 127.0.0.1 to the machine's network address and its
        # servers listen there; with it, every Ray service binds to loopback.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _import_ray()

    if ray.is_initialized():
        return
    if address:
        _check_reachable(ray, address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
            return
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        where = f"at {address}" if address else "locally"
        raise InputError(f"cannot start or reach Ray {where}: {_first_line(exc)}") from None


REACH_TIMEOUT_S = 5.0


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` (or ``[v6]:port``) of a Ray address; None when it is not one."""
    host, sep, port = address.rpartition(":")
    host = host.strip().removeprefix("[").removesuffix("]")
    if not sep or not host or not port.strip().isdigit():
        return None
    return host, int(port)


def _check_reachable(ray, address: str) -> None:
    """Fail fast when nothing listens at ``address``: ``ray.init`` would retry for minutes
    before its own error. Checked for the forms that are a TCP endpoint: a cluster's
    ``host:port`` (GCS) and a Ray Client ``ray://host:port``; ``auto``, ``local``, other
    ``scheme://`` addresses and anything else are left to Ray. Ray connects to the machine's
    network address for ``localhost:port``/``127.0.0.1:port``, so the address Ray will use is
    tried too, and either accepting a connection is enough."""
    if address in ("auto", "local"):
        return
    inner = address.removeprefix("ray://")
    if "://" in inner:
        return
    target = _host_port(inner)
    if target is None:
        return  # Ray says what is wrong with it
    targets = [target]
    if not address.startswith("ray://"):
        try:
            canonical = ray._private.services.canonicalize_bootstrap_address(inner)
        except Exception:  # only a check before Ray's own: Ray reports its errors itself
            canonical = None
        resolved = _host_port(canonical) if canonical else None
        if resolved and resolved != target:
            targets.append(resolved)
    reasons = []
    for host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S):
                return
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            reasons.append(f"{host}:{port}: {reason}")
    raise InputError(
        f"cannot reach Ray at {address} ({'; '.join(reasons)}; waited up to "
        f"{REACH_TIMEOUT_S:g} s): check --ray-address and that Ray is running there (a head "
        "node listens on the port given to `ray start --head --port`, 6379 by default)"
    )


def actor_cpus(total_cpus: float, actors: int, local: bool) -> float:
    """CPUs to reserve for each scoring actor.

    Ray Data's read, filter and write tasks need a CPU each; on a local Ray whose CPUs the
    actors took all of (``--ray-actors`` equal to the core count), they never run and the job
    waits forever. Locally the actors therefore share all CPUs but one (fractions of a CPU
    when there are more actors than that); a cluster is sized by its operator, so there each
    actor takes one CPU as Ray's default."""
    if not local:
        return 1.0
    return min(1.0, max(total_cpus - 1, 0) / max(actors, 1))


def _first_line(exc: BaseException) -> str:
    """A Ray failure in one line: the user-code exception's message where Ray wraps one, else
    the first line of Ray's own (whose messages run to whole tracebacks)."""
    cause = exc
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:
        cause = cause.cause  # RayTaskError wraps the task's exception
    while cause.__cause__ is not None:
        cause = cause.__cause__
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    # RayTaskError's text starts with the task's name ("ray::ReadCSV()"): the message follows.
    lines = [line for line in lines if not line.startswith(("ray::", "\x1b[36mray::"))]
    text = lines[0] if lines else type(cause).__name__
    return f"{type(cause).__name__}: {text}" if not text.startswith(type(cause).__name__) else text


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_input(
    model_path: str | Path, source: Path, output: Path, options: ScoreOptions
) -> tuple[Job, Reader]:
    """The local engine's checks of the input and options, before Ray starts: a missing named
    column, prediction columns that collide with input columns, an output over the input.
    Returns the :class:`Job` that holds them (never run) and its reader."""
    from service.bundle import read_meta

    reader = Reader(source, options.encoding, options.delimiter)
    if reader.format == "xlsx":
        raise InputError(
            f"{source}: Ray reads CSV, JSONL and Parquet; use --engine local for .xlsx"
        )
    if options.record:
        raise InputError(
            "--record is not supported with --engine ray; record with the local engine"
        )
    out_suffix = output.suffix.lower()
    if out_suffix not in (".parquet", ".csv", ".jsonl"):
        raise InputError(f"{output}: Ray writes .parquet, .csv or .jsonl folders")
    # Job only needs the theme and sentiment names for its checks: read them from the bundle
    # rather than load the model in the driver (each actor loads it).
    meta = read_meta(model_path)
    names = SimpleNamespace(theme_ids=meta["theme_ids"], sentiments=meta["sentiment_labels"])
    job = Job(names, source, output, options)
    if not job.has_id:
        raise InputError(
            f"{source}: --engine ray needs an id column ({job.id_column!r} is not in "
            f"{reader.columns}); name one with --id-column"
        )
    # Ray writes the flat columns in every format (JSONL included), so check those names too.
    job.columns.check_collisions(job.output_columns, "csv", output)
    return job, reader


def score_with_ray(
    model_path: str | Path,
    source: str | Path,
    output: str | Path,
    options: ScoreOptions,
    settings,
    address: str | None = None,
    actors: int = 1,
) -> int:
    """Score ``source`` into the folder ``output``; returns the number of rows scored.

    Raises :class:`InputError` with a one-line message for bad input or options, a missing
    Ray, an unreachable cluster and a failed Ray job."""
    source, output = Path(source), Path(output)
    job, reader = check_input(model_path, source, output, options)
    out_suffix = output.suffix.lower()
    opts = {
        "text_column": options.text_column,
        "id_column": job.id_column,
        "lang_column": job.lang_column,
        "date_column": job.date_column,
        "prefix": options.prefix,
        "output_format": out_suffix[1:],
    }

    _start_ray(address)
    import ray

    errors = output.with_name(output.name + ".errors")
    # Temporary names beside the final ones (same file system, so the renames are atomic):
    # a failed run leaves an older output as it was, and a rerun replaces it (as the local
    # engine replaces its output file) instead of adding part files to it.
    tmp_out = output.with_name(output.name + ".partial")
    tmp_err = errors.with_name(errors.name + ".partial")
    for tmp in (tmp_out, tmp_err):
        _remove(tmp)
    try:
        _run(
            ray,
            source,
            reader,
            tmp_out,
            tmp_err,
            opts,
            options.chunk_rows,
            actors,
            address,
            actor_arguments(model_path, opts, settings),
        )
        rows = _count_rows(tmp_out) if tmp_out.exists() else 0
        bad = _count_rows(tmp_err) if tmp_err.exists() else 0
    except BaseException as exc:
        for tmp in (tmp_out, tmp_err):
            _remove(tmp)
        if isinstance(exc, ray.exceptions.RayError | ray.data.exceptions.UserCodeException):
            raise InputError(f"{source}: the Ray job failed: {_first_line(exc)}") from None
        raise
    _remove(output)
    if tmp_out.exists():
        os.replace(tmp_out, output)
    else:  # no scorable rows, so no part files: an empty folder says so
        output.mkdir()
    _remove(errors)
    if bad:
        os.replace(tmp_err, errors)
    else:
        _remove(tmp_err)
    return rows


def _run(
    ray,
    source: Path,
    reader: Reader,
    out: Path,
    err: Path,
    opts: dict,
    chunk_rows: int,
    actors: int,
    address: str | None,
    constructor: dict,
) -> None:
    """Read, check, score and write: scored rows into ``out``, the others into ``err``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # output rows in input order
    if reader.format == "csv":
        dataset = ray.data.read_csv(
            str(source),
            read_options=pacsv.ReadOptions(encoding=reader.encoding.replace("utf-8-sig", "utf8")),
            parse_options=pacsv.ParseOptions(delimiter=reader.delimiter, newlines_in_values=True),
            # Every column as text, as the local engine reads CSV (no guessing of types).
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in reader.columns},
                strings_can_be_null=False,
            ),
        )
    elif reader.format == "jsonl":
        lines = ray.data.read_text(str(source), encoding=reader.encoding)
        dataset = lines.map_batches(_parse_jsonl(reader.columns), batch_format="pyarrow")
    else:
        dataset = ray.data.read_parquet(str(source))

    marked = dataset.map_batches(_mark_problems(opts), batch_format="pyarrow")
    good = marked.filter(lambda row: row[_PROBLEM] is None).drop_columns([_PROBLEM])
    bad = marked.filter(lambda row: row[_PROBLEM] is not None).rename_columns({_PROBLEM: "reason"})
    total = ray.cluster_resources().get("CPU", 1.0)
    scored = good.map_batches(
        ScoreActor,
        fn_constructor_kwargs=constructor,
        batch_size=chunk_rows,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus(total, actors, local=not address),
    )
    writers = {"parquet": "write_parquet", "csv": "write_csv", "jsonl": "write_json"}
    getattr(scored, writers[opts["output_format"]])(str(out))
    bad.write_csv(str(err))


def _count_rows(folder: Path) -> int:
    """Rows written, read back from the part files (running the pipeline again would cost a
    second pass over the data)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    total = 0
    for part in sorted(p for p in folder.iterdir() if p.is_file()):
        if part.suffix == ".parquet":
            total += pq.ParquetFile(part).metadata.num_rows
        elif part.suffix == ".csv":
            parse = pacsv.ParseOptions(newlines_in_values=True)
            total += pacsv.read_csv(part, parse_options=parse).num_rows
        else:
            with part.open(encoding="utf-8") as fh:
                total += sum(1 for line in fh if line.strip())
    return total
