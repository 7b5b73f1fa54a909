"""``cxthemes score --engine ray``: the same scoring on Ray Data, for files too big for one
machine. The input is read with ``ray.data.read_*``, scored by ``map_batches`` on a pool of
actors (each loads the model once) and written with ``write_*`` as a folder of part files;
rows that cannot be scored go to ``OUTPUT.errors/``. The prediction columns are the local
engine's flat columns, so the two engines' outputs compare row by row.

Locally, Ray is started on 127.0.0.1 only, without its dashboard; ``--ray-address`` joins a
cluster instead, where the model path and the input must be reachable from every node.
"""

from __future__ import annotations

import os
from pathlib import Path

from service.batch.readers import InputError, Reader
from service.batch.runner import ScoreOptions
from service.batch.writers import PredictionColumns


def actor_arguments(model_path: str | Path, options: dict, settings) -> dict:
    """The :class:`ScoreActor` constructor arguments: each actor builds its predictor from the
    settings exactly as the local engine does (backend included)."""
    from service.predictor import predictor_options

    return {
        "model_path": str(Path(model_path).resolve()),
        "options": options,
        "predictor_kwargs": predictor_options(settings),
    }


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

    def __call__(self, batch):
        import pyarrow as pa

        texts = batch.column(self.options["text_column"]).to_pylist()
        lang_column = self.options["lang_column"]
        langs = batch.column(lang_column).to_pylist() if lang_column else [None] * len(texts)
        langs = [lang if isinstance(lang, str) and lang.strip() else None for lang in langs]
        unique: dict[tuple[str, str | None], int] = {}
        for text, lang in zip(texts, langs, strict=True):
            unique.setdefault((text, lang), len(unique))
        predictions = self.predictor.predict(
            [t for t, _ in unique], langs=[lang for _, lang in unique]
        )
        flat = [
            self.columns.flat(predictions[unique[(t, lang)]].as_row(None), lists=True)
            for t, lang in zip(texts, langs, strict=True)
        ]
        table = pa.Table.from_pylist(flat, schema=pa.schema(self.columns.arrow_fields()))
        for name in table.column_names:
            batch = batch.append_column(name, table.column(name))
        return batch


def _valid(options: dict):
    text_column, id_column = options["text_column"], options["id_column"]

    def check(row: dict) -> bool:
        text, row_id = row.get(text_column), row.get(id_column)
        return (
            isinstance(text, str)
            and bool(text.strip())
            and row_id is not None
            and not (isinstance(row_id, str) and not row_id.strip())
        )

    return check


def _start_ray(address: str | None) -> None:
    # Read by Ray when it is first imported, so set before that. Token auth would write under
    # the home folder; a local, loopback-only Ray does not need it.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not address:
        # Without this, Ray resolves even 127.0.0.1 to the machine's network address and its
        # servers listen there; with it, every Ray service binds to loopback.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


def score_with_ray(
    model_path: str | Path,
    source: str | Path,
    output: str | Path,
    options: ScoreOptions,
    settings,
    address: str | None = None,
    actors: int = 1,
) -> int:
    """Score ``source`` into the folder ``output``; returns the number of rows scored."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    source, output = Path(source), Path(output)
    reader = Reader(source, options.encoding, options.delimiter)
    if reader.format == "xlsx":
        raise InputError(
            f"{source}: Ray reads CSV, JSONL and Parquet; use --engine local for .xlsx"
        )
    if options.text_column not in reader.columns:
        raise InputError(f"{source}: no column {options.text_column!r} (columns: {reader.columns})")
    id_column = options.id_column or "id"
    if id_column not in reader.columns:
        raise InputError(f"{source}: --engine ray needs an id column ({id_column!r})")
    if options.record:
        raise InputError(
            "--record is not supported with --engine ray; record with the local engine"
        )
    lang_column = options.lang_column or next(
        (c for c in ("lang", "language") if c in reader.columns), None
    )
    opts = {
        "text_column": options.text_column,
        "id_column": id_column,
        "lang_column": lang_column,
        "prefix": options.prefix,
    }
    out_suffix = output.suffix.lower()
    if out_suffix not in (".parquet", ".csv", ".jsonl"):
        raise InputError(f"{output}: Ray writes .parquet, .csv or .jsonl folders")

    _start_ray(address)
    import ray

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
        dataset = ray.data.read_json(str(source), lines=True)
    else:
        dataset = ray.data.read_parquet(str(source))

    check = _valid(opts)
    good = dataset.filter(check)
    bad = dataset.filter(lambda row: not check(row))
    scored = good.map_batches(
        ScoreActor,
        fn_constructor_kwargs=actor_arguments(model_path, opts, settings),
        batch_size=options.chunk_rows,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
    )
    writers = {".parquet": "write_parquet", ".csv": "write_csv", ".jsonl": "write_json"}
    getattr(scored, writers[out_suffix])(str(output))
    errors = output.with_name(output.name + ".errors")
    if bad.count():
        bad.write_csv(str(errors))
    return _count_rows(output)


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
