"""The ``cxthemes`` command line.

Serving and scoring need only the service; ``base-model``, ``train``, ``evaluate`` and
``labels`` import the training package (``pip install '.[train]'``) when they run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from service.core.config import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("cxthemes")


class CLIError(Exception):
    """A problem to report to the user as one line, with exit code 2."""


def _training(module: str):
    """Import a training module, explaining the extra that provides it if it is missing."""
    import importlib

    try:
        return importlib.import_module(f"training.{module}")
    except ImportError as exc:
        raise CLIError(
            f"'{module}' needs the training extras: pip install '.[train]' ({exc})"
        ) from exc


# -- base-model ------------------------------------------------------------------------------
def cmd_base_model(args: argparse.Namespace, settings: Settings) -> int:
    base_model = _training("base_model")
    if not args.out and not base_model.looks_local(settings.base_model):
        # Building into ./<id> would hide the hub model of that name from every later load.
        print(
            f"nothing to build: the base model {settings.base_model} is a Hugging Face id, "
            "which training downloads (for a local folder, write it as a path, e.g. "
            f"./{settings.base_model})"
        )
        return 0
    out = Path(args.out or settings.base_model)
    if args.if_missing and base_model.is_built(out):
        print(f"base model already built: {out}")
        return 0
    if args.if_missing and (out / "config.json").is_file():
        # A build lands whole (renamed into place, provenance last): this is another model.
        print(
            f"{out} holds a model not built by cxthemes (no {base_model.PROVENANCE_FILE}): "
            "used as it is; remove it first to build multilingual-e5-small there"
        )
        return 0
    path = base_model.build_base_model(out)
    print(f"built {path}")
    return 0


# -- train -----------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from service.registry import current_version, may_become_current

    current = current_version(settings.models_dir)
    if args.if_missing and current:
        print(f"a current model exists ({current}); not training")
        return 0
    train = _training("train")
    base = args.base_model or settings.base_model
    if _looks_local(base) and not Path(base).exists():
        raise CLIError(f"base model {base} not found: run 'cxthemes base-model' first")
    if Path(base).exists() and not (Path(base) / "config.json").is_file():
        # Else transformers answers with an unrelated message (install sentencepiece...).
        raise CLIError(
            f"base model {base} is not a model folder (no config.json): give a Hugging Face "
            "model id or a folder saved with save_pretrained, or run 'cxthemes base-model'"
        )
    # Only options given on the command line override TrainConfig's defaults (one source).
    overrides = {
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
        "seeds": args.seeds,
        "max_steps": args.max_steps,
        "freeze_layers": args.freeze_layers,
        "version": args.version,
    }
    config = train.TrainConfig(
        base_model=base,
        labels=Path(args.labels or settings.labels_dir),
        models_dir=settings.models_dir,
        freeze_embeddings=not args.train_embeddings,
        # The first model becomes current; later ones are challengers until promoted.
        make_current=(args.promote or may_become_current(settings.models_dir, current))
        and not args.no_current,
        # Without --promote the run may only replace the model current when it began.
        replacing=... if args.promote else current,
        taxonomy_path=settings.taxonomy_path,
        baselines=not args.no_baselines,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    path = train.train(config)
    if path is None:  # a non-main process of a distributed run
        return 0
    print(f"model bundle: {path}")
    card = path / "README.md"
    if card.is_file():
        print(card.read_text(encoding="utf-8"))
    now = current_version(settings.models_dir)
    if now is None:
        print(
            f"{path.name} is not current (--no-current); make it so with:\n"
            f"  cxthemes models promote {path.name}"
        )
    elif now != path.name:
        print(
            f"challenger {path.name} is not current; compare and promote it with:\n"
            f"  cxthemes models compare {now} {path.name}\n"
            f"  cxthemes models promote {path.name}"
        )
    return 0


def _seed_list(value: str) -> tuple[int, ...]:
    """``13,29,41`` as distinct integer seeds (argparse type)."""
    try:
        seeds = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers separated by commas: {value!r}"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"give distinct seeds, e.g. 13,29,41: {value!r}")
    return seeds


def _int_at_least(minimum: int):
    """An argparse type: an integer no smaller than ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


def _positive_float(value: str) -> float:
    """An argparse type: a finite number above 0 (``--epochs 0`` would train nothing)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return number


def _looks_local(name: str) -> bool:
    return _training("base_model").looks_local(name)


# -- distill ---------------------------------------------------------------------------------
def cmd_distill(args: argparse.Namespace, settings: Settings) -> int:
    from service.registry import current_version

    distill = _training("distill")
    overrides = {
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "max_steps": args.max_steps,
        "version": args.version,
        "student_layers": args.layers,
        "student_ffn": args.ffn,
        "corpus_texts": args.corpus_texts,
        "text_column": args.text_column,
        "sentiment_loss_weight": args.sentiment_weight,
        "label_weight": args.label_weight,
    }
    if args.label_weight is not None and not 0.0 <= args.label_weight <= 1.0:
        raise CLIError(f"--label-weight must be between 0 and 1, got {args.label_weight}")
    if args.if_missing:
        layers = args.layers or distill.DistillConfig.student_layers
        done = distill.existing_student(settings.models_dir, args.teacher, layers)
        if done:
            print(f"{done}; not distilling")
            return 0
    for path in args.unlabelled:
        if not Path(path).is_file():
            raise CLIError(f"{path}: no such file")
    config = distill.DistillConfig(
        teacher=args.teacher or "",
        extra_teachers=list(args.also_teacher),
        labels=Path(args.labels or settings.labels_dir),
        models_dir=settings.models_dir,
        unlabelled=[Path(p) for p in args.unlabelled],
        make_current=not args.no_current,
        taxonomy_path=settings.taxonomy_path,
        **{k: v for k, v in overrides.items() if v is not None},
    )
    result = distill.distill(config)
    if result is None:  # a non-main process of a distributed run
        return 0
    path, ships = result
    print(f"student bundle: {path}")
    card = path / "README.md"
    if card.is_file():
        print(card.read_text(encoding="utf-8"))
    now = current_version(settings.models_dir)
    if not ships:
        print(
            f"{path.name} does not ship: it lost more than {config.max_f1_loss} macro F1 or "
            f"{config.max_sentiment_loss} sentiment accuracy against its teacher (figures in "
            f"its card); the current model stays {now}"
        )
    elif now is not None and now != path.name and not args.no_current:
        # Gated against a teacher that is not the champion (see may_become_current).
        print(
            f"challenger {path.name} is not current: its teacher is not the current model "
            f"{now}; compare and promote it with:\n"
            f"  cxthemes models compare {now} {path.name}\n"
            f"  cxthemes models promote {path.name}"
        )
    return 0


# -- evaluate --------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    evaluation = _training("evaluation")
    from service.bundle import resolve_model_path
    from service.predictor import apply_torch_threads

    apply_torch_threads(settings)
    model_path = resolve_model_path(args.model, settings.models_dir)
    result = evaluation.evaluate(
        model_path,
        data=Path(args.data) if args.data else None,
        labels=Path(args.labels or settings.labels_dir),
        baselines=not args.no_baselines,
        batch_size=settings.batch_size,
        taxonomy_path=settings.taxonomy_path,
        base_model=settings.base_model,
    )
    duplicates = result.get("duplicates", [])
    for line in duplicates[:20]:
        print(line, file=sys.stderr)
    if duplicates:
        more = f" (... {len(duplicates) - 20} more)" if len(duplicates) > 20 else ""
        print(
            f"{len(duplicates)} repeated texts in {args.data} were evaluated once, with the "
            f"labels of their first line{more}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(evaluation.format_result(result))
    return 0


# -- score -----------------------------------------------------------------------------------
def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    from service.batch.readers import input_format
    from service.batch.runner import Job, ScoreOptions
    from service.batch.writers import default_output
    from service.bundle import resolve_model_path
    from service.predictor import Predictor, apply_torch_threads, predictor_options

    apply_torch_threads(settings)
    source = Path(args.input)
    input_format(source)  # a clear error before the model loads
    # INPUT.scored in its own format; a .txt one (read as CSV) as INPUT.scored.txt.csv, so it
    # never shares an output (nor its work folder and errors file) with a .csv beside it.
    output = Path(args.output) if args.output else default_output(source)
    options = ScoreOptions(
        text_column=args.text_column,
        id_column=args.id_column,
        date_column=args.date_column,
        metadata_columns=_split(args.metadata_columns),
        lang_column=args.lang_column,
        encoding=args.encoding,
        delimiter=args.delimiter.replace("\\t", "\t") if args.delimiter else None,
        prefix=args.prefix,
        record=args.record,
        restart=args.restart,
        keep_work=args.keep_work,
    )
    model_path = resolve_model_path(args.model, settings.models_dir)
    if args.engine == "ray":
        from service.batch.ray_engine import score_with_ray

        if args.report:
            # The report's statistics are gathered by the local engine's assembly pass,
            # which the Ray engine does not have.
            raise CLIError("--report is not supported with --engine ray; use --engine local")
        # Bad input, a missing Ray and a failed Ray job come back as InputError (one line).
        rows = score_with_ray(
            model_path,
            source,
            output,
            options,
            settings,
            address=args.ray_address,
            actors=args.ray_actors,
        )
        print(f"scored {rows} rows with Ray into {output}/", file=sys.stderr)
        return 0
    predictor = Predictor.from_path(
        model_path, **predictor_options(settings, batch_size=args.batch_size)
    )
    store = None
    if args.record:
        from service.store import Store

        store = Store.open(settings.database_url, store_text=settings.store_text)
    job = Job(predictor, source, output, options, store=store)
    try:
        summary = job.run(progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: run the same command again to resume ({job.work})", file=sys.stderr)
        return 130
    for line in summary.error_lines[:20]:
        print(line, file=sys.stderr)
    if summary.errors > 20:
        print(f"... {summary.errors - 20} more", file=sys.stderr)
    if summary.errors:
        print(f"rows that could not be scored: {summary.errors_path}", file=sys.stderr)
    for line in summary.warnings:  # even with -q: the output lacks what those cells hold
        print(f"warning: {line}", file=sys.stderr)
    if args.report:
        written = summary.stats.write(Path(args.report), f"Feedback themes: {source.name}")
        print("report: " + ", ".join(str(p) for p in written), file=sys.stderr)
    if not args.quiet:
        print(summary.stats.text(), file=sys.stderr)
    recorded = f"; recorded {summary.recorded} in the metrics store" if args.record else ""
    print(
        f"scored {summary.scored} rows into {output}; skipped {summary.errors} bad rows; "
        f"{summary.texts_scored} unique texts went through the model "
        f"(model {predictor.model_version}){recorded}",
        file=sys.stderr,
    )
    return 0


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value is not None else None


# -- serve -----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import os

    import uvicorn

    from service.core.logging import configure_logging, logging_config

    overrides = {
        "host": args.host,
        "port": args.port,
        "model": args.model,
        "workers": args.workers,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    # Validated like the environment's values (model_copy would take --port 70000 as is).
    settings = Settings.model_validate({**settings.model_dump(), **overrides})
    if not settings.api_keys and not _is_loopback(settings.host):
        raise CLIError(
            f"refusing to listen on {settings.host} without API keys: set CXTHEMES_API_KEYS "
            "(see `cxthemes keys create`) or serve on 127.0.0.1"
        )
    configure_logging(settings.log_level)
    if not settings.api_keys:
        logging.getLogger("service").warning(
            "no API keys configured: serving without authentication on loopback only"
        )
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_config": logging_config(settings.log_level),
        "access_log": False,  # our middleware logs requests as JSON, without bodies
        "timeout_graceful_shutdown": 30,
    }
    if settings.workers > 1:
        # Each worker builds its own app, and uvicorn restarts a worker that dies: a model or
        # store that cannot start would crash and respawn forever. Check once, in a process
        # of its own (its memory goes with it), before forking.
        problem = _serving_problem_in_subprocess(settings)
        if problem:
            raise CLIError(f"not starting: {problem}")
        # Each worker process builds its own app from the environment: pass the overrides on.
        for key, value in overrides.items():
            os.environ[f"CXTHEMES_{key.upper()}"] = str(value)
        uvicorn.run("service.api.main:create_app", factory=True, workers=settings.workers, **common)
        return 0
    from service.api.main import create_app

    uvicorn.run(create_app(settings), **common)
    return 0


def _serving_problem(settings: Settings) -> str | None:
    """Why the API could not start with ``settings`` (model or store), or None."""
    from service.api.main import load_predictor
    from service.store import Store

    try:
        load_predictor(settings)
        Store.open(
            settings.database_url,
            store_text=settings.store_text,
            auto_migrate=settings.auto_migrate,
        ).engine.dispose()
    except Exception as exc:  # reported, not raised: it crosses a process boundary
        return f"{type(exc).__name__}: {exc}"
    return None


def _serving_problem_in_subprocess(settings: Settings) -> str | None:
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked torch or OpenMP state
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_serving_problem, settings).result()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- labels import, model registry, review queue -------------------------------------------
def cmd_labels_import(args: argparse.Namespace, settings: Settings) -> int:
    label_import = _training("label_import")
    from service.taxonomy import load_taxonomy

    path = Path(args.file)
    labels_root = Path(args.labels or settings.labels_dir)
    taxonomy = load_taxonomy(settings.taxonomy_path)
    train_only = args.train_only
    if train_only is None:
        # Review-queue items and `labels select` batches were picked near a threshold: split by
        # hash, about 30% would make dev and test harder than real traffic, silently.
        train_only = _chosen_by_model(path)
        if train_only:
            print(
                f"note: {path} holds tasks chosen by the model (meta.review_reasons, from "
                "`review export` or `labels select`): recorded as train, as with --train-only "
                "(--no-train-only splits them by hash)",
                file=sys.stderr,
            )
    if train_only:
        splits = _training("splits")
        # Checked before the import is written: recorded only afterwards, a damaged manifest
        # (a merge conflict) would otherwise leave imported items in their hash split.
        try:
            splits.check_manifest(splits.SPLITS_FILE)
        except ValueError as exc:
            raise CLIError(
                f"{exc}; nothing was imported (--train-only records the items there)"
            ) from None
    result = label_import.import_labels(
        path, labels_root, taxonomy, by=args.by, source=args.source, encoding=args.encoding
    )
    for line in result.duplicates:
        print(f"duplicate, skipped: {line}", file=sys.stderr)
    for line in result.conflicts:
        print(f"CONFLICT, skipped: {line}", file=sys.stderr)
    where = f" into {result.out_path}" if result.out_path else ""
    print(
        f"imported {result.imported} items{where}; {len(result.duplicates)} duplicates and "
        f"{len(result.conflicts)} conflicts skipped; {result.unannotated} tasks not annotated"
    )
    if result.masked:
        print(f"personal data masked in {result.masked} of the imported texts")
    for line in result.disagreements:
        print(f"annotators disagree: {line}", file=sys.stderr)
    if result.disagreements:
        print(
            f"{len(result.disagreements)} tasks had annotators who disagree (a ground-truth "
            "annotation, else the newest complete one, was used)",
            file=sys.stderr,
        )
    if train_only:
        _record_train_only(labels_root, [*result.texts, *result.imported_before])
    return 1 if result.conflicts else 0


def _chosen_by_model(path: Path) -> bool:
    """Whether ``path`` is a Label Studio export of tasks that `review export` or `labels
    select` wrote (an unreadable file is left for the import to report)."""
    from service.labelstudio import chosen_by_model

    if path.suffix.lower() != ".json":
        return False
    try:
        return chosen_by_model(json.loads(path.read_text(encoding="utf-8-sig")))
    except (OSError, ValueError):
        return False


def _record_train_only(labels_root: Path, texts: list[str]) -> None:
    """Record ``texts`` as train: those just imported and those whose labelled copy an earlier
    import wrote (a first run without --train-only, or one whose recording failed, imported
    them, and a re-run finds only duplicates). Items already in the manifest keep their
    split."""
    splits = _training("splits")
    if not labels_root.resolve().is_relative_to(splits.SPLITS_FILE.parent):
        # One frozen manifest serves every labels folder (train and evaluate read it).
        print(
            f"note: the train split is recorded in {splits.SPLITS_FILE}, beside the code, "
            f"not in {labels_root.resolve()}: keep that file with these labels",
            file=sys.stderr,
        )
    try:
        recorded = splits.record_split(texts, "train", splits.SPLITS_FILE)
    except (OSError, ValueError) as exc:
        raise CLIError(
            f"the labels were imported, but not recorded as train ({exc}): fix that and run "
            "the same import again, which records the items it finds already imported"
        ) from None
    already = len({splits.text_key(t) for t in texts}) - recorded
    print(f"{recorded} recorded as train in the frozen splits; {already} were already there")


# Texts scored at a time by `labels select` (the predictor sorts each chunk by length).
_SELECT_CHUNK = 4096


def cmd_labels_select(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np
    from tqdm import tqdm

    data = _training("data")
    selection = _training("selection")
    from service.batch.readers import InputError
    from service.bundle import resolve_model_path
    from service.labelstudio import label_config, review_task
    from service.predictor import Predictor, predictor_options
    from service.privacy import mask_pii
    from service.taxonomy import load_taxonomy

    if args.n < 1:
        raise CLIError(f"--n must be at least 1, got {args.n}")
    if not 0.0 <= args.random_share <= 1.0:
        raise CLIError(f"--random-share must lie in [0, 1], got {args.random_share}")
    taxonomy = load_taxonomy(settings.taxonomy_path)
    labels = Path(args.labels or settings.labels_dir)
    items, _ = data.load_items(data.find_label_files(labels), taxonomy)
    try:
        found = selection.read_candidates(
            Path(args.file),
            args.text_column,
            args.id_column,
            (i.text for i in items),
            encoding=args.encoding,
        )
    except InputError as exc:
        raise CLIError(str(exc)) from None
    for line in found.skipped[:20]:
        print(line, file=sys.stderr)
    if len(found.skipped) > 20:
        print(f"... {len(found.skipped) - 20} more rows skipped", file=sys.stderr)
    if not found.texts:
        raise CLIError(f"{args.file}: no unlabelled texts to choose from")

    options = predictor_options(settings)
    options["evidence"] = False  # only the scores matter here
    predictor = Predictor.from_path(resolve_model_path(args.model, settings.models_dir), **options)
    # Scored in chunks, keeping per text only its scores (a float32 row) and its answer: whole
    # predictions of a large export would take gigabytes. The bar tells an hour's run from a hang.
    scores = np.empty((len(found.texts), len(predictor.theme_ids)), dtype=np.float32)
    answers: list[tuple[list[str], str, str | None]] = []
    with tqdm(total=len(found.texts), desc="scoring", unit="text", file=sys.stderr) as bar:
        for start in range(0, len(found.texts), _SELECT_CHUNK):
            part = predictor.predict(found.texts[start : start + _SELECT_CHUNK])
            for k, p in enumerate(part, start):
                scores[k] = [p.scores[t] for t in predictor.theme_ids]
                answers.append((p.themes, p.sentiment, p.lang))
            bar.update(len(part))
    margin = selection.margins(scores, predictor.thresholds)
    chosen = selection.select(margin, args.n, args.random_share, seed=args.seed)

    tasks = []
    for i, why in chosen:
        themes, sentiment, lang = answers[i]
        row = {
            "id": found.ids[i],
            # Masked as the store masks the texts `review export` writes: the task file is
            # handed to labellers and Label Studio. The model scored the text as it came.
            "text": mask_pii(found.texts[i]),
            "lang": lang,
            "themes": themes,
            "sentiment": sentiment,
            "model_version": predictor.model_version,
            "review_margin": round(float(margin[i]), 4),
            "review_reasons": [why],
        }
        tasks.append(review_task(row))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    config = out.with_suffix(".label-config.xml")
    config.write_text(label_config(taxonomy), encoding="utf-8")
    n_random = sum(why == selection.RANDOM for _, why in chosen)
    print(
        f"wrote {len(tasks)} tasks to {out} ({len(tasks) - n_random} uncertain, {n_random} "
        f"random) from {len(found.texts)} unlabelled texts, scored by "
        f"{predictor.model_version} (labelling interface: {config})"
    )
    return 0


def cmd_models_list(args: argparse.Namespace, settings: Settings) -> int:
    from service.registry import list_models, read_registry

    entries = list_models(settings.models_dir)
    if not entries:
        print(f"no models in {settings.models_dir}")
        return 0
    print("| | version | created | data | test macro F1 |\n|---|---|---|---|---|")
    for e in entries:
        f1 = f"{e.macro_f1:.3f}" if e.macro_f1 is not None else "n/a"
        mark = "current" if e.current else ""
        print(f"| {mark} | {e.version} | {e.created_at[:19]} | {e.fingerprint} | {f1} |")
    history = read_registry(settings.models_dir)["history"]
    if history:
        print("\nhistory:")
        for ev in history[-10:]:
            forced = " (forced)" if ev.get("forced") else ""
            print(
                f"  {ev['time']} {ev['action']}{forced} {ev.get('previous')} -> "
                f"{ev['version']} by {ev.get('by')}"
            )
    return 0


def _bundle_path(settings: Settings, version: str) -> Path:
    """A bundle named by its path or its version (see :func:`resolve_model_path`)."""
    from service.bundle import BundleError, resolve_model_path

    try:
        path = resolve_model_path(version, settings.models_dir)
    except BundleError:
        path = None
    if path is None or not (path / "bundle.json").is_file():
        raise CLIError(f"no model {version!r} (see cxthemes models list)")
    return path


def _compare(
    settings: Settings,
    a: str,
    b: str,
    extra: str | None,
    labels: str | None,
    resamples: int = 1000,
):
    compare = _training("compare")
    from service.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy_path)
    sets = compare.evaluation_items(
        Path(labels or settings.labels_dir), taxonomy, Path(extra) if extra else None
    )
    paths = [_bundle_path(settings, a), _bundle_path(settings, b)]
    try:
        results, decisions = compare.evaluate_models(paths, sets, taxonomy)
    except Exception as exc:  # a damaged bundle fails in many ways: refuse, never crash
        raise CLIError(f"a model could not be loaded and evaluated: {exc}") from None
    names = list(results)
    spread = {}
    if resamples > 0 and len(names) == 2:
        spread = compare.intervals(*names, decisions, sets, taxonomy, n_resamples=resamples)
    return compare, names, results, spread


def cmd_models_compare(args: argparse.Namespace, settings: Settings) -> int:
    if args.resamples < 0:
        raise CLIError(f"--resamples must be 0 or more, got {args.resamples}")
    compare, (a, b), results, spread = _compare(
        settings, args.a, args.b, args.data, args.labels, args.resamples
    )
    if args.json:
        print(json.dumps({**results, "intervals": spread}, indent=1))
    else:
        print(compare.format_comparison(a, b, results, spread))
    return 0


def cmd_models_promote(args: argparse.Namespace, settings: Settings) -> int:
    from service.registry import current_version, set_current_version

    champion = current_version(settings.models_dir)
    checked_against = champion  # what the registry must still say when we switch
    path = _bundle_path(settings, args.version)
    models_dir = Path(settings.models_dir).resolve()
    if path.parent != models_dir:
        # The registry names a model by its folder in the models folder: a bundle elsewhere
        # would be taken for the one of the same name there (or for none).
        raise CLIError(
            f"{path} is not in the models folder {models_dir}: copy it there first "
            f"(cp -r {path} {models_dir}/), then promote it by its name"
        )
    challenger = path.name
    if champion == challenger:
        print(f"{challenger} is already current")
        return 0
    # Loaded once where that suffices: the comparison's loads (torch) are the models' load
    # checks, and the challenger is loaded apart, as the API loads it, only when nothing is
    # compared or the API's backend may be another (auto, onnx...). Only a failed comparison
    # loads them again, to tell which one cannot be loaded.
    if champion is None or settings.backend != "torch":
        _refuse_unloadable(settings, challenger)
    reasons: list[str] = []
    skipped = ""
    compared = None
    if champion is not None:
        try:
            compared = _compare(settings, champion, challenger, None, args.labels)
        except CLIError:
            _refuse_unloadable(settings, challenger)
            broken = _load_problem(settings, champion)
            if broken is None:
                raise
            # Nothing to compare against, and the service cannot serve the current model
            # anyway: refusing would leave no way out but editing the registry by hand.
            skipped = f"the current model {champion} cannot be loaded ({broken}); not compared"
            print(f"warning: {skipped}", file=sys.stderr)
    if compared is not None:
        compare, (a, b), results, spread = compared
        print(compare.format_comparison(a, b, results, spread))
        reasons = compare.gate(
            results[a]["test split"],
            results[b]["test split"],
            settings.promote_max_macro_drop,
            settings.promote_max_theme_drop,
        )
    if reasons and not args.force:
        for r in reasons:
            print(f"refused: {r}", file=sys.stderr)
        print(
            f"{challenger} was not promoted; {champion} stays current (--force overrides)",
            file=sys.stderr,
        )
        return 1
    event = set_current_version(
        settings.models_dir,
        challenger,
        "promote",
        forced=bool(reasons),
        reason="; ".join(reasons) or skipped,
        # The comparison took minutes: another promotion in the meantime voids it.
        replacing=checked_against,
    )
    if reasons:
        logging.getLogger("service.registry").warning(
            "forced promotion of %s despite: %s", challenger, "; ".join(reasons)
        )
    print(
        f"promoted {challenger} (was {event['previous']}); running APIs pick it up with "
        "POST /v1/admin/reload (or CXTHEMES_WATCH_MODELS_S)"
    )
    return 0


def _refuse_unloadable(settings: Settings, challenger: str) -> None:
    """``CLIError`` when ``challenger`` cannot be loaded as the API loads it: never made
    current, --force or not, since the API could not serve it."""
    if problem := _load_problem(settings, challenger):
        raise CLIError(f"{challenger} could not be loaded ({problem}); not promoted")


def _load_problem(settings: Settings, version: str) -> str | None:
    """Why the bundle ``version`` cannot be loaded, or None when it loads."""
    from service.bundle import load_bundle

    try:
        load_bundle(Path(settings.models_dir) / version, backend=settings.backend)
    except Exception as exc:  # a damaged bundle fails in many ways
        return f"{type(exc).__name__}: {exc}"
    return None


def cmd_models_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from service.registry import rollback, rollback_target

    target = rollback_target(settings.models_dir)
    if problem := _load_problem(settings, target):
        raise CLIError(f"cannot roll back to {target}: it cannot be loaded ({problem})")
    event = rollback(settings.models_dir)
    print(f"rolled back to {event['version']} (from {event['previous']})")
    return 0


def cmd_review_export(args: argparse.Namespace, settings: Settings) -> int:
    from service.labelstudio import label_config, review_task
    from service.store import Store
    from service.taxonomy import load_taxonomy

    _refuse_missing_sqlite(settings.database_url)  # it only reads: a typo must not create one
    store = Store.open(settings.database_url)
    total, rows = store.review_queue(limit=args.limit, offset=0)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps([review_task(r) for r in rows], ensure_ascii=False, indent=1, default=str),
        encoding="utf-8",
    )
    config = out.with_suffix(".label-config.xml")
    config.write_text(label_config(load_taxonomy(settings.taxonomy_path)), encoding="utf-8")
    missing = sum(1 for r in rows if not r.get("text"))
    print(f"wrote {len(rows)} of {total} review tasks to {out} (labelling interface: {config})")
    if missing:
        print(
            f"{missing} tasks have no text: the store keeps texts only with "
            "CXTHEMES_STORE_TEXT=true",
            file=sys.stderr,
        )
    return 0


def cmd_review_resolve(args: argparse.Namespace, settings: Settings) -> int:
    from service.store import Store

    ids = [str(i) for i in args.ids]
    if args.from_file:
        ids += _labelled_ids(Path(args.from_file), settings)
    if not ids:
        raise CLIError("no ids: give them as arguments or with --from")
    _refuse_missing_sqlite(settings.database_url)  # a typo must not create an empty store
    store = Store.open(settings.database_url)
    try:
        result = store.resolve_reviews(ids, resolved=not args.reopen)
    finally:
        store.close()
    for item_id in result.not_found:
        print(f"not in the store, skipped: {item_id}", file=sys.stderr)
    print(
        f"{'reopened' if args.reopen else 'resolved'} {result.changed} items "
        f"({len(result.unchanged)} unchanged, {len(result.not_found)} not found); "
        f"{result.remaining} items left in the review queue"
    )
    return 0


def _labelled_ids(path: Path, settings: Settings) -> list[str]:
    """The ids of the items ``path`` labels, if `labels import` accepts the file: for a Label
    Studio export, each annotated task's ``data.id``; for labels (JSONL, CSV), each row's
    ``id``. Tasks not annotated, and tasks or rows without an id, are skipped and counted."""
    label_import = _training("label_import")
    from service.labelstudio import task_item_id
    from service.taxonomy import load_taxonomy

    # The import refuses a whole file for one bad row (an incomplete annotation, an unknown
    # theme): closing its other items would drop them from the queue with their labels never
    # imported. So the file is checked as the import checks it.
    try:
        rows, unannotated = label_import.check_labels(path, load_taxonomy(settings.taxonomy_path))
    except label_import.LabelImportError as exc:
        lines = str(exc).splitlines()
        raise CLIError(
            "\n".join(
                [
                    f"{path}: `labels import` refuses it, so nothing was resolved (fix it, "
                    "import it, then resolve):",
                    *(lines[1:] or lines),
                ]
            )
        ) from None
    if path.suffix.lower() == ".json":
        # Ids from data.id only: a task without one (not written by `review export`) would
        # otherwise fall back to Label Studio's task number, which may name an unrelated item.
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
        found = [task_item_id(tasks[number - 1]) for number, _ in rows]
        what = "annotated tasks have no data.id (not from `review export`)"
    else:
        found = [None if row.get("id") in (None, "") else str(row["id"]) for _, row in rows]
        what = "rows have no id"
    ids = [i for i in found if i is not None]
    if unannotated:  # not labelled yet: they stay in the queue
        print(f"{unannotated} tasks in {path} are not annotated: left open", file=sys.stderr)
    if len(ids) < len(found):
        missing = [number for (number, _), i in zip(rows, found, strict=True) if i is None]
        print(
            f"{len(missing)} {what}: skipped (row{'s' * (len(missing) > 1)} "
            f"{_numbers(missing)} of {path})",
            file=sys.stderr,
        )
    return ids


def _numbers(numbers: list[int], shown: int = 10) -> str:
    """``1, 4, 9`` or ``1, 4, ... (25 in all)``."""
    head = ", ".join(str(n) for n in numbers[:shown])
    return head if len(numbers) <= shown else f"{head}, ... ({len(numbers)} in all)"


# -- export --------------------------------------------------------------------------------
def cmd_export_onnx(args: argparse.Namespace, settings: Settings) -> int:
    export = _training("export")
    from service.bundle import read_meta, resolve_model_path

    path = resolve_model_path(args.model, settings.models_dir)
    meta = read_meta(path)
    # Exported: the graph, its figures and the weights it was made from (a bundle copied over
    # an exported folder, or an export from before weights were recorded, is exported again).
    exported = args.if_missing and export.is_exported(path, int8=args.int8)
    check_bf16 = args.bf16 and args.check_texts > 0
    if exported and (not check_bf16 or "bf16" in meta):
        print(f"{path.name} already has an ONNX export")
        return 0
    texts, test = [], []
    if args.check_texts:
        data = _training("data")
        from service.taxonomy import load_taxonomy

        taxonomy = load_taxonomy(settings.taxonomy_path)
        items, _ = data.load_items(data.find_label_files(Path(settings.labels_dir)), taxonomy)
        test = data.split_items(items)["test"]
        texts = [i.text for i in test][: args.check_texts]
    if not exported:
        figures = export.export_onnx(path, texts, check_items=test, int8=args.int8)
        print(json.dumps(figures, indent=1))
    if check_bf16:
        bf16 = _training("precision").check_bf16(path, texts, check_items=test)
        print(json.dumps({"bf16": bf16}, indent=1))
    return 0


# -- keys and database -----------------------------------------------------------------------
def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from service.core.config import ApiKey
    from service.core.security import generate_key, hash_key

    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    key = generate_key()
    entry = ApiKey(name=args.name, sha256=hash_key(key), scopes=scopes)
    print(f"key (shown once; give it to {args.name}): {key}")
    print("add this entry to the JSON list in CXTHEMES_API_KEYS:")
    print(json.dumps(entry.model_dump()))
    return 0


@contextmanager
def _store_engine(settings: Settings, create: bool) -> Iterator[Engine]:
    """An engine for the metrics store, disposed of at the end. Its failures (no server, no
    driver, a bad URL, an unknown revision) become one line naming the URL without its
    password. ``create=False``, for a command that only reads, refuses a SQLite file that does
    not exist: connecting would create it, and its folder, at a mistyped path."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from service.store import _safe_url  # the store's own password-hiding rendering
    from service.store.engine import create_store_engine

    url = settings.database_url
    if not create:
        _refuse_missing_sqlite(url)
    engine = None
    try:
        engine = create_store_engine(url)
        yield engine
    except (SQLAlchemyError, ImportError, CommandError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CLIError(
            f"the metrics store {_safe_url(url)}: {type(exc).__name__}: {first}"
        ) from None
    finally:
        if engine is not None:
            engine.dispose()


def _refuse_missing_sqlite(url: str) -> None:
    """A ``CLIError`` when ``url`` names a SQLite file that does not exist (see
    :func:`_store_engine`); other URLs, and ones that do not parse, pass (they fail where
    they are used, with their own message)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri"):
        return
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return
    if not Path(database).is_file():
        raise CLIError(
            f"no metrics store at {database} (CXTHEMES_DATABASE_URL): check the path; "
            "'cxthemes db upgrade' creates a new one"
        )


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from service.store.engine import current_revision, migrate

    with _store_engine(settings, create=True) as engine:
        migrate(engine, args.revision)
        revision = current_revision(engine)
    print(f"database at revision {revision}")
    return 0


def cmd_db_current(args: argparse.Namespace, settings: Settings) -> int:
    from service.store.engine import current_revision

    with _store_engine(settings, create=False) as engine:
        revision = current_revision(engine)
    print(revision or "empty")
    return 0


def cmd_db_rebuild_rollup(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import func, select

    from service.store.engine import current_revision
    from service.store.records import rebuild_rollup
    from service.store.tables import daily_counts, feedback

    with _store_engine(settings, create=False) as engine:
        if current_revision(engine) is None:
            raise CLIError("the store has no schema: run 'cxthemes db upgrade' first")
        rebuild_rollup(engine)
        with engine.connect() as connection:
            items = connection.execute(select(func.count()).select_from(feedback)).scalar_one()
            rows = connection.execute(select(func.count()).select_from(daily_counts)).scalar_one()
    print(f"rebuilt the daily rollup: {rows} rows from {items} recorded items")
    return 0


# -- labels ----------------------------------------------------------------------------------
def cmd_labels_check(args: argparse.Namespace, settings: Settings) -> int:
    data = _training("data")
    from service.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy_path)
    root = Path(args.labels or settings.labels_dir)
    files = data.find_label_files(root)
    if not files:
        raise CLIError(f"no labelled JSONL files under {root}")
    items, problems = data.load_items(files, taxonomy)
    print(data.counts_table(items, taxonomy))
    splits = data.split_items(items)
    print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    for line in problems.errors + problems.duplicates:
        print(line, file=sys.stderr)
    for line in problems.unavailable:
        print(f"{line}: text not available (its source package is not installed)", file=sys.stderr)
    if problems:
        n_err, n_dup = len(problems.errors), len(problems.duplicates)
        print(
            f"labels check failed: {n_err} errors, {n_dup} duplicate texts, "
            f"{len(problems.unavailable)} texts unavailable",
            file=sys.stderr,
        )
        return 1
    if not items:
        print(f"labels check failed: no labelled items in {root}", file=sys.stderr)
        return 1
    print(f"labels check passed: {len(items)} items in {len(files)} files")
    return 0


def cmd_labels_freeze_splits(args: argparse.Namespace, settings: Settings) -> int:
    data = _training("data")
    splits = _training("splits")
    from service.taxonomy import load_taxonomy

    target = Path(args.out) if args.out else splits.SPLITS_FILE
    if args.add_new and not target.exists():
        raise CLIError(f"{target} does not exist: freeze the splits first")
    if target.exists() and not args.force and not args.add_new:
        raise CLIError(
            f"{target} exists: frozen splits must not move (new items already get a split by "
            "hash); --force rebuilds it, invalidating every earlier test figure"
        )
    items, problems = data.load_items(
        data.find_label_files(Path(args.labels or settings.labels_dir)),
        load_taxonomy(settings.taxonomy_path),
    )
    if problems.errors:
        raise CLIError("fix the labelled data first (cxthemes labels check)")
    if problems.unavailable:  # frozen without them, they could never get a stratified split
        raise CLIError(
            f"{len(problems.unavailable)} labelled texts are unavailable (their source package "
            f"is not installed; first: {problems.unavailable[0]}): install it, then freeze "
            "(cxthemes labels check)"
        )
    if args.add_new:
        n = splits.extend_manifest(items, target)
        print(f"recorded the splits of {n} new items in {target} (as they were: none moved)")
        return 0
    n = splits.write_manifest(splits.stratified_assignment(items), target)
    print(f"froze the splits of {n} items into {target}")
    return 0


def cmd_labels_agreement(args: argparse.Namespace, settings: Settings) -> int:
    agreement = _training("agreement")
    from service.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy_path)
    result = agreement.agreement(
        agreement.read_pass(Path(args.first), taxonomy),
        agreement.read_pass(Path(args.second), taxonomy),
        taxonomy,
    )
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{result['n']} items labelled twice")
    print("| theme | kappa | agreement | first pass | second pass |\n|---|---|---|---|---|")
    for theme, r in result["per_theme"].items():
        print(f"| {theme} | {r['kappa']:.3f} | {r['agree']:.3f} | {r['first']} | {r['second']} |")
    print(f"| sentiment | {result['sentiment_kappa']:.3f} | {result['sentiment_agree']:.3f} | | |")
    print(
        f"mean theme kappa {result['mean_theme_kappa']:.3f}; identical theme sets "
        f"{result['exact_theme_set_agreement']:.3f}; {len(result['disagreements'])} disagreements"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(prog="cxthemes", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("base-model", help="build the offline multilingual-e5-small base model")
    p.add_argument("--out", help="output folder (default: the base_model setting)")
    p.add_argument("--if-missing", action="store_true", help="do nothing if already built")
    p.set_defaults(func=cmd_base_model)

    p = sub.add_parser("train", help="fine-tune a model bundle on the labelled data")
    p.add_argument("--labels", help="folder or JSONL file of labelled items")
    p.add_argument("--base-model", help="Hugging Face id or local path of the encoder")
    p.add_argument("--epochs", type=_positive_float, help="training epochs (default 4)")
    p.add_argument("--lr", type=float, help="encoder learning rate (default 1.5e-4)")
    p.add_argument("--batch-size", type=_int_at_least(1), help="per device (default 16)")
    p.add_argument("--max-length", type=int, help="tokens per training text (default 128)")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="random seed (default 29)")
    seed.add_argument(
        "--seeds",
        type=_seed_list,
        help="comma-separated seeds, e.g. 13,29,41: train one model per seed and keep the one "
        "with the best dev score (the card lists every run)",
    )
    # At least 1: the Trainer takes 0 or less as no limit and would train by epochs.
    p.add_argument("--max-steps", type=_int_at_least(1), help="stop after N steps (smoke tests)")
    p.add_argument("--freeze-layers", type=int, help="also freeze the bottom N encoder layers")
    p.add_argument(
        "--train-embeddings",
        action="store_true",
        help="also train the word embeddings (about 3x slower on a CPU)",
    )
    p.add_argument("--version", help="bundle version id (default: cx-<UTC time>)")
    p.add_argument("--no-current", action="store_true", help="never make it current")
    p.add_argument(
        "--promote", action="store_true", help="make it current without the promotion checks"
    )
    p.add_argument("--no-baselines", action="store_true", help="skip the baselines in the card")
    p.add_argument("--if-missing", action="store_true", help="do nothing if models/current exists")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "distill", help="train a smaller, faster student of a model on its own outputs"
    )
    p.add_argument("--teacher", help="bundle path or version (default: models/current)")
    p.add_argument(
        "--also-teacher",
        action="append",
        default=[],
        metavar="MODEL",
        help="another trained model (e.g. another seed) whose outputs are averaged with the "
        "teacher's into the soft targets; repeatable. The student is still cut from --teacher "
        "and judged against it",
    )
    p.add_argument("--layers", type=int, help="transformer layers the student keeps (default 8)")
    p.add_argument(
        "--ffn",
        type=int,
        help="feed-forward neurons each student layer keeps, the most active on the texts "
        "(default: all of the teacher's)",
    )
    p.add_argument(
        "--unlabelled",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="unlabelled feedback (CSV/TSV/JSONL/Parquet/Excel) for soft targets: one or "
        "more files (a shell glob works), repeatable",
    )
    p.add_argument("--text-column", help="text column of the unlabelled files (default text)")
    p.add_argument(
        "--corpus-texts",
        type=int,
        help="also take N real texts from the offline corpora (zh reviews, en tweets)",
    )
    p.add_argument(
        "--sentiment-weight",
        type=float,
        help="weight of the sentiment loss next to the summed theme losses (default 2)",
    )
    p.add_argument(
        "--label-weight",
        type=float,
        help="share of the gold labels in the labelled training items' targets, 0-1 "
        "(default 0: the teacher's outputs only)",
    )
    p.add_argument("--labels", help="folder or JSONL file of labelled items")
    p.add_argument("--epochs", type=_positive_float, help="training epochs (default 3)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    p.add_argument("--batch-size", type=_int_at_least(1), help="per device (default 16)")
    p.add_argument("--seed", type=int, help="random seed (default 29)")
    p.add_argument("--max-steps", type=_int_at_least(1), help="stop after N steps (smoke tests)")
    p.add_argument("--version", help="bundle version id (default: <teacher>-student<N>)")
    p.add_argument(
        "--no-current", action="store_true", help="never make it current, even if it ships"
    )
    p.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing if the teacher is itself a student or already has one of --layers "
        "layers in the models folder",
    )
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("evaluate", help="evaluate a model and the two baselines")
    p.add_argument("--model", help="bundle path or version name (default: the current model)")
    p.add_argument("--data", help="labelled JSONL to evaluate on (default: the frozen test split)")
    p.add_argument("--labels", help="labelled data for the baselines' training and dev splits")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--no-baselines", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "score", help="score a CSV/TSV, JSONL, Parquet or Excel file (streaming, resumable)"
    )
    p.add_argument("input")
    p.add_argument(
        "-o",
        "--output",
        help=".jsonl, .csv, .tsv, .parquet or .xlsx (default: INPUT.scored in the input's "
        "format: in.csv gives in.scored.csv; a .txt input, read as CSV, in.scored.txt.csv)",
    )
    p.add_argument("--model", help="bundle path or version name (default: the current model)")
    p.add_argument("--text-column", default="text", help="(default text)")
    p.add_argument("--id-column", help="default: id if present, else row numbers")
    p.add_argument("--date-column", help="default: created_at, date or timestamp if present")
    p.add_argument("--metadata-columns", help="comma list (default: channel,segment where present)")
    p.add_argument(
        "--lang-column", help="language codes, if known (default: lang or language if present)"
    )
    p.add_argument(
        "--encoding", default="utf-8", help="of CSV/JSONL input, e.g. gbk (default utf-8)"
    )
    p.add_argument("--delimiter", help="CSV delimiter (default: detected)")
    p.add_argument("--prefix", default="", help="prefix for the prediction columns")
    p.add_argument("--record", action="store_true", help="also write to the metrics store")
    p.add_argument(
        "--report", help="write a report: REPORT.md, with REPORT.json and REPORT.png beside it"
    )
    p.add_argument("--restart", action="store_true", help="discard an unfinished run")
    p.add_argument("--keep-work", action="store_true", help="keep OUTPUT.cxwork/ at the end")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument(
        "--ray-address",
        help="Ray cluster: HOST:PORT of its head, ray://HOST:PORT or auto; one where nothing "
        "listens fails within 5 s (default: a local Ray on 127.0.0.1)",
    )
    p.add_argument(
        "--ray-actors", type=int, default=1, help="model replicas (Ray actors; default 1)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="rows per forward pass at most (default: CXTHEMES_BATCH_SIZE, else 32)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("serve", help="start the HTTP API")
    p.add_argument("--host", help="(default: CXTHEMES_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="(default: CXTHEMES_PORT, else 8000)")
    p.add_argument("--model", help="bundle path or version name (default: the current model)")
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes, each loads the model (default: CXTHEMES_WORKERS, else 1)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="the model registry: list, compare, promote, rollback")
    models_sub = p.add_subparsers(dest="models_command", required=True)
    q = models_sub.add_parser("list", help="bundles, the current one, and the history")
    q.set_defaults(func=cmd_models_list)
    q = models_sub.add_parser("compare", help="evaluate two models on the frozen test split")
    q.add_argument("a")
    q.add_argument("b")
    q.add_argument("--data", help="an extra labelled JSONL file to compare on")
    q.add_argument("--labels", help="labelled-data folder (default: labels/data)")
    q.add_argument(
        "--resamples",
        type=int,
        default=1000,
        help="bootstrap resamples for the intervals of the changes (default 1000; 0: none)",
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_models_compare)
    q = models_sub.add_parser("promote", help="make a model current if it is not worse")
    q.add_argument("version")
    q.add_argument("--force", action="store_true", help="promote despite the checks (logged)")
    q.add_argument("--labels", help="labelled-data folder (default: labels/data)")
    q.set_defaults(func=cmd_models_promote)
    q = models_sub.add_parser("rollback", help="return to the previous current model")
    q.set_defaults(func=cmd_models_rollback)

    p = sub.add_parser("review", help="the review queue")
    review_sub = p.add_subparsers(dest="review_command", required=True)
    q = review_sub.add_parser("export", help="flagged items as Label Studio tasks")
    q.add_argument("-o", "--output", required=True, help="tasks .json")
    q.add_argument(
        "--limit",
        type=_int_at_least(1),
        default=500,
        help="export at most this many tasks, the most uncertain first (default 500)",
    )
    q.set_defaults(func=cmd_review_export)
    q = review_sub.add_parser(
        "resolve",
        help="take reviewed items out of the queue (ids, or the annotated tasks of an export)",
    )
    q.add_argument("ids", nargs="*", help="recorded item ids")
    q.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="a Label Studio export (.json: its annotated tasks' data.id) or labels (.jsonl/.csv: "
        "id); only a file that `labels import` accepts",
    )
    q.add_argument("--reopen", action="store_true", help="put the items back in the queue")
    q.set_defaults(func=cmd_review_resolve)

    p = sub.add_parser(
        "export-onnx",
        help="add an ONNX export (fp32 and int8) and a bf16 check to a bundle (fast CPU)",
    )
    p.add_argument("--model", help="bundle path or version name (default: the current model)")
    p.add_argument(
        "--check-texts",
        type=_int_at_least(0),
        default=2000,
        help="test-split texts to measure int8 and bf16 against fp32 torch on "
        "(default 2000; 0: skip)",
    )
    p.add_argument(
        "--no-bf16",
        dest="bf16",
        action="store_false",
        help="skip the bf16 check (bf16 is then never chosen by the auto backend)",
    )
    p.add_argument(
        "--no-int8",
        dest="int8",
        action="store_false",
        help="export the fp32 graph only: no int8 graph and no int8 check (about a minute "
        "saved; for CPUs that serve bf16, or models whose int8 graph failed its gate)",
    )
    p.add_argument("--if-missing", action="store_true", help="do nothing if already exported")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("keys", help="API keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    q = keys_sub.add_parser("create", help="make a key; prints it once and its settings entry")
    q.add_argument("--name", required=True, help="who holds it (shown in logs)")
    q.add_argument(
        "--scopes",
        default="classify",
        help="comma list of classify,metrics,admin (default classify)",
    )
    q.set_defaults(func=cmd_keys_create)

    p = sub.add_parser("db", help="the metrics store: schema and daily rollup")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    q = db_sub.add_parser("upgrade", help="apply Alembic migrations (CXTHEMES_DATABASE_URL)")
    q.add_argument("revision", nargs="?", default="head", help="(default head)")
    q.set_defaults(func=cmd_db_upgrade)
    q = db_sub.add_parser("current", help="print the schema's revision")
    q.set_defaults(func=cmd_db_current)
    q = db_sub.add_parser(
        "rebuild-rollup",
        help="recompute the daily_counts rollup from feedback and feedback_themes "
        "(CXTHEMES_DATABASE_URL)",
    )
    q.set_defaults(func=cmd_db_rebuild_rollup)

    p = sub.add_parser("labels", help="labelled-data tools")
    labels_sub = p.add_subparsers(dest="labels_command", required=True)
    q = labels_sub.add_parser("check", help="validate the labelled data and print counts")
    q.add_argument("--labels", help="folder or JSONL file (default: labels/data)")
    q.set_defaults(func=cmd_labels_check)
    q = labels_sub.add_parser("freeze-splits", help="stratify and freeze the dev/test splits once")
    q.add_argument("--labels", help="folder or JSONL file (default: labels/data)")
    q.add_argument("--out", help="manifest path (default: labels/splits.tsv)")
    q.add_argument("--force", action="store_true", help="rebuild an existing manifest")
    q.add_argument(
        "--add-new",
        action="store_true",
        help="record the items the manifest lacks with the split they already have (by hash)",
    )
    q.set_defaults(func=cmd_labels_freeze_splits)
    q = labels_sub.add_parser("agreement", help="Cohen's kappa against a second labelling pass")
    q.add_argument(
        "--first",
        default="labels/agreement/first_pass.jsonl",
        help="JSONL of the first pass (default labels/agreement/first_pass.jsonl)",
    )
    q.add_argument(
        "--second",
        default="labels/agreement/second_pass.jsonl",
        help="JSONL of the second pass (default labels/agreement/second_pass.jsonl)",
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_labels_agreement)
    q = labels_sub.add_parser("import", help="import labels: CSV, JSONL, Label Studio JSON")
    q.add_argument("file")
    q.add_argument("--labels", help="labelled-data folder (default: labels/data)")
    q.add_argument("--by", help="who labelled or imports them (default: your user name)")
    q.add_argument("--source", help="source tag for the items (default: import:FILE)")
    q.add_argument(
        "--encoding",
        default="utf-8",
        help="of a CSV or JSONL file, e.g. gbk, cp1252, utf-16 (default utf-8)",
    )
    q.add_argument(
        "--train-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record the items as train in labels/splits.tsv instead of splitting them by hash "
        "(texts chosen by `labels select` or `review export` would bias dev and test); the "
        "default for an export of such tasks (meta.review_reasons), --no-train-only to split "
        "them by hash",
    )
    q.set_defaults(func=cmd_labels_import)
    q = labels_sub.add_parser(
        "select",
        help="choose texts to label next: the model's least sure, plus a random share",
    )
    q.add_argument("file", help="unlabelled texts: JSONL, CSV, Parquet or XLSX")
    q.add_argument("-o", "--output", required=True, help="Label Studio tasks .json")
    q.add_argument("--n", type=int, default=300, help="how many texts to choose (default 300)")
    q.add_argument(
        "--random-share",
        type=float,
        default=1 / 3,
        help="share drawn at random rather than by uncertainty, keeps figures unbiased "
        "(default 1/3)",
    )
    q.add_argument("--model", help="bundle path or version (default: the current model)")
    q.add_argument("--text-column", default="text", help="(default text)")
    q.add_argument("--id-column", default="id", help="(default id)")
    q.add_argument("--labels", help="labelled-data folder, whose texts are left out")
    q.add_argument("--seed", type=int, default=0, help="seed of the random share (default 0)")
    q.add_argument(
        "--encoding",
        default="utf-8",
        help="of a CSV or JSONL input, e.g. gbk, cp1252, utf-16 (default utf-8)",
    )
    q.set_defaults(func=cmd_labels_select)
    return parser


# oneDNN keeps up to 1,024 compiled matrix-product primitives, each bf16 one with its own
# reordered copy of the weights, and every (batch, length) shape makes new ones: scoring 6,000
# texts in batches of 8 grew a bf16 process by 1.3 GB. 64 kept it 480 MB lower at the same
# speed (bench/RESULTS.md). Read by oneDNN at its first primitive, so set before any model runs;
# an operator's own value wins.
ONEDNN_CACHE_DEFAULT = "64"
# How long PyTorch's OpenMP threads (GNU libgomp) spin-wait for more work after a parallel
# region before they sleep; the default (300,000 spins) is milliseconds. Between operators of
# a forward pass the gaps are microseconds, so 5,000 spins still covers them; but after each
# micro-batch the API's event loop sends the answers and parses the next requests on these
# same 2 cores, and a thread spinning for nothing took one of them. 5,000: +5% texts/s at 32
# clients, 7 of 8 alternating rounds (bench/RESULTS.md). Read when libgomp loads, so set
# before torch is imported; only `serve` sets it (batch scoring has no such gaps); an
# operator's own value wins.
SERVE_GOMP_SPINCOUNT = "5000"


def set_serving_environment() -> None:
    """Environment defaults for `cxthemes serve`, set before torch is imported."""
    os.environ.setdefault("GOMP_SPINCOUNT", SERVE_GOMP_SPINCOUNT)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cxthemes`` console script."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_DEFAULT)
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        set_serving_environment()  # before the imports below load torch
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pydantic import ValidationError

    from service.batch.readers import InputError
    from service.bundle import BundleError

    try:
        return args.func(args, get_settings())
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (training cleans up after it)
        wrote = "; nothing was written" if args.command in ("train", "distill") else ""
        print(f"cxthemes {args.command}: interrupted{wrote}", file=sys.stderr)
        return 130
    except ValidationError as exc:  # a bad setting: named, without its value (it may be a key)
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            print(
                f"cxthemes {args.command}: error: setting {where}: {error['msg']}", file=sys.stderr
            )
        return 2
    except (CLIError, BundleError, InputError, ValueError) as exc:
        print(f"cxthemes {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing file, a read-only or full disk, no permission: one line
        print(f"cxthemes {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Imported here, not above: importing the store loads alembic, whose start-up logging
        # would go out before `serve` configures JSON logs.
        from sqlalchemy.exc import SQLAlchemyError

        from service.store import StoreError

        if isinstance(exc, SQLAlchemyError):  # the store failed mid-command (not at opening)
            print(f"cxthemes {args.command}: error: {_store_failure(exc)}", file=sys.stderr)
            return 2
        if not isinstance(exc, StoreError):
            raise
        print(f"cxthemes {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _store_failure(exc: Exception) -> str:
    """A SQLAlchemy error as one line: its class and the first line of the database's message.
    Not its traceback or its full text, which name the statement and may go on to quote the
    values involved (PostgreSQL's DETAIL lines)."""
    orig = getattr(exc, "orig", None)  # the driver's error, for a DBAPIError
    message = str(orig if orig is not None else exc).strip()
    first = f": {message.splitlines()[0]}" if message else ""
    return f"the metrics store failed: {type(exc).__name__}{first}"


def _one_line(exc: OSError) -> str:
    """An OSError as one line that names its file: ``[Errno 30] Read-only file system:
    'models/base.partial'`` (some libraries' messages run over several lines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
