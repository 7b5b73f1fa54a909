"""Fault injection: kill -9 during training, promotion and recording; PostgreSQL going away
and coming back under load; corrupt or missing model bundles.

Kills are real SIGKILLs: of a ``cxthemes`` subprocess at a moment the test chooses, or of a
forked copy of this process that kills itself at an exact point (after a given file write or
SQL statement), so no ``finally``, ``atexit`` or rollback code gets to run. The figures each
test observes are printed (``pytest -s``) for the closing note.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url

from service.bundle import (
    BundleError,
    load_bundle,
    read_meta,
    resolve_model_path,
    save_bundle,
    write_meta,
)
from service.cli import main
from service.core.config import get_settings
from service.predictor import Prediction, Predictor
from service.registry import (
    current_version,
    list_models,
    read_registry,
    rollback,
    set_current_version,
)
from service.store import RecordInput, Store
from service.store.engine import create_store_engine
from service.store.records import rebuild_rollup
from service.store.tables import daily_counts, feedback, feedback_themes
from service.taxonomy import load_taxonomy, taxonomy_text

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = load_taxonomy()
THEMES = TAXONOMY.theme_ids
SENTIMENTS = list(TAXONOMY.sentiments)
WAIT = 120  # seconds: the longest any subprocess or forked child is waited for


# -- helpers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXTHEMES_")}
    return {**env, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


def die() -> None:
    """SIGKILL this process: nothing after this point runs, no cleanup, no rollback."""
    os.kill(os.getpid(), signal.SIGKILL)


def run_forked(child: Callable[[], None], kill_after: Callable[[int], None] | None = None) -> int:
    """Run ``child`` in a forked copy of this process and wait (bounded) for it to end.

    ``child`` is expected to die by SIGKILL (its own, at an injected point, or
    ``kill_after(pid)``'s, from here); if it returns instead, the copy exits with status 0,
    and 3 if it raised. Returns the raw wait status.
    """
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            child()
        except BaseException:  # any failure becomes an exit status
            import traceback

            traceback.print_exc()
            code = 3
        os._exit(code)
    reaped = False
    try:
        if kill_after is not None:
            kill_after(pid)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return status
            time.sleep(0.01)
        raise AssertionError(f"forked child {pid} did not end within {WAIT} s")
    finally:
        if not reaped:  # (once reaped, the pid may belong to someone else)
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def assert_sigkilled(status: int) -> None:
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the child was not killed by SIGKILL (wait status {status}): the kill point was missed"
    )


def copy_bundle(source: Path, models: Path, version: str) -> Path:
    path = models / version
    shutil.copytree(source, path)
    meta = read_meta(path)
    meta["version"] = version
    write_meta(path, meta)
    return path


def assert_current_serves(models: Path, version: str) -> None:
    """The registry, the link and the one loader agree on ``version``, and it predicts."""
    registry = json.loads((models / "registry.json").read_text(encoding="utf-8"))
    assert registry["current"] == version
    path = resolve_model_path(None, models)
    assert path == (models / version).resolve()
    prediction = Predictor(load_bundle(path), max_length=64).predict(["Way too expensive."])[0]
    assert prediction.model_version == version


BUNDLE_FILES = ("bundle.json", "model.safetensors", "encoder/config.json", "tokenizer.json")


def assert_only_complete_models_listed(models: Path) -> list[str]:
    """Everything ``models list`` shows is a whole bundle under its own name (the tests load
    the ones whose loading is in question)."""
    versions = []
    for entry in list_models(models):
        assert entry.path.name == entry.version, f"{entry.path} is listed as {entry.version}"
        assert all((entry.path / name).is_file() for name in BUNDLE_FILES), entry.path
        versions.append(entry.version)
    return versions


@pytest.fixture(scope="module")
def tiny_loaded(tiny_bundle):
    """The tiny bundle, loaded once for the tests that write copies of it."""
    return load_bundle(tiny_bundle)


@pytest.fixture
def models(tiny_bundle, tmp_path) -> Path:
    """A models folder whose current model is ``champion`` (a copy of the tiny bundle)."""
    folder = tmp_path / "models"
    folder.mkdir()
    copy_bundle(tiny_bundle, folder, "champion")
    set_current_version(folder, "champion", "train")
    return folder


@pytest.fixture
def cli_env(models, monkeypatch):
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{models.parent / 'cli.db'}")
    get_settings.cache_clear()
    yield models
    get_settings.cache_clear()


# -- 1. kill -9 during training ---------------------------------------------------------------
@pytest.mark.slow
def test_training_killed_mid_run_keeps_the_current_model(cli_env, tiny_base, small_labels):
    """``cxthemes train --promote`` SIGKILLed when its first checkpoint appears: the current
    model, the registry and the link are untouched; a rerun of the same version succeeds."""
    models = cli_env
    registry_before = (models / "registry.json").read_bytes()
    link_before = os.readlink(models / "current")
    log_path = models.parent / "train.log"
    command = [
        sys.executable, "-m", "service.cli", "train",
        "--base-model", str(tiny_base), "--labels", str(small_labels),
        "--version", "challenger", "--epochs", "30", "--max-length", "64", "--lr", "1e-3",
        "--no-baselines", "--promote",  # it means to replace the current model
    ]  # fmt: skip
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=subprocess_env(CXTHEMES_MODELS_DIR=str(models)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    work = models / ".checkpoints" / "challenger"
    try:
        # Kill it as soon as it writes its first checkpoint: mid-run, possibly mid-write.
        deadline = time.monotonic() + WAIT
        while not list(work.glob("checkpoint-*")):
            assert proc.poll() is None, f"training ended before the kill:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.05)
        killed_at = time.monotonic() - started
        proc.kill()
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    progress = "loss=" in log_path.read_text(errors="replace")
    leftovers = sorted(str(p.relative_to(models)) for p in work.rglob("*"))
    print(
        f"\n[train kill] killed {killed_at:.1f} s after start (progress shown: {progress}); "
        f"left behind: {len(leftovers)} files under .checkpoints/challenger, "
        f"models/challenger exists: {(models / 'challenger').exists()}"
    )

    # Nothing the killed run touched counts as a model; the current one still serves.
    assert (models / "registry.json").read_bytes() == registry_before
    assert os.readlink(models / "current") == link_before
    assert not (models / "challenger").exists()
    assert assert_only_complete_models_listed(models) == ["champion"]
    assert_current_serves(models, "champion")
    with pytest.raises(BundleError):
        load_bundle(work)  # the half-trained checkpoints are not a bundle

    # A rerun of the same version succeeds beside the leftovers and cleans them up.
    rerun = time.monotonic()
    train = ["train", "--base-model", str(tiny_base), "--labels", str(small_labels)]
    train += ["--version", "challenger", "--max-steps", "4", "--max-length", "64"]
    assert main([*train, "--no-baselines"]) == 0
    print(f"[train kill] rerun of the same version took {time.monotonic() - rerun:.1f} s")
    assert not work.exists()
    assert sorted(assert_only_complete_models_listed(models)) == ["challenger", "champion"]
    assert_current_serves(models, "champion")  # a challenger waits to be promoted
    assert load_bundle(models / "challenger").version == "challenger"


def test_training_into_the_current_version_is_refused(cli_env, tiny_base, small_labels, capsys):
    """Replacing a bundle removes the old folder before renaming the new one in: a kill between
    the two would leave the registry naming a model that is gone, so training refuses to
    write over the current model at all."""
    models = cli_env
    before = (models / "champion" / "bundle.json").read_bytes()
    registry = (models / "registry.json").read_bytes()
    args = ["train", "--base-model", str(tiny_base), "--labels", str(small_labels)]
    assert main([*args, "--version", "champion", "--max-steps", "1", "--no-baselines"]) == 2
    assert "is the current model" in capsys.readouterr().err
    assert (models / "champion" / "bundle.json").read_bytes() == before
    assert (models / "registry.json").read_bytes() == registry


@pytest.mark.parametrize("point", ["weights", "tokenizer", "metadata", "rename", "registry"])
def test_a_bundle_write_killed_midway_is_never_taken_for_a_model(models, tiny_loaded, point):
    """SIGKILL at each step of writing a new bundle and making it current (as training does)."""
    bundle = tiny_loaded
    meta = {**bundle.meta, "version": "challenger"}
    out = models / "challenger"

    def child():
        import pathlib

        import service.bundle as bundle_module
        import service.registry as registry_module

        if point == "weights":  # weights written, nothing else
            real = bundle_module.save_file

            def save_file(*args, **kwargs):
                real(*args, **kwargs)
                die()

            bundle_module.save_file = save_file
        elif point == "tokenizer":  # weights, encoder config and tokenizer written
            real_tok = type(bundle.tokenizer).save_pretrained

            def save_pretrained(self, *args, **kwargs):
                real_tok(self, *args, **kwargs)
                die()

            type(bundle.tokenizer).save_pretrained = save_pretrained
        elif point == "metadata":  # bundle.json written into the work folder
            real_write = pathlib.Path.write_text

            def write_text(self, *args, **kwargs):
                result = real_write(self, *args, **kwargs)
                if self.name == "bundle.json":
                    die()
                return result

            pathlib.Path.write_text = write_text
        elif point == "rename":  # everything written, not yet renamed into place
            real_rename = pathlib.Path.rename

            def rename(self, target):
                if self.name.endswith(".partial"):
                    die()
                return real_rename(self, target)

            pathlib.Path.rename = rename
        else:  # the bundle is in place; killed while making it current
            real_write_registry = registry_module._write_registry

            def write_registry(*args, **kwargs):
                real_write_registry(*args, **kwargs)
                die()

            registry_module._write_registry = write_registry
        save_bundle(out, bundle.model, bundle.tokenizer, meta, "card", taxonomy_text())
        set_current_version(models, "challenger", "train")

    assert_sigkilled(run_forked(child))
    left = sorted(p.name for p in models.iterdir())
    print(f"\n[bundle write killed at {point}] models/ holds {left}")
    listed = assert_only_complete_models_listed(models)
    if point == "registry":
        # The registry was written: the new bundle is complete, current, and serves.
        assert sorted(listed) == ["challenger", "champion"]
        assert_current_serves(models, "challenger")
        return
    assert listed == ["champion"] and not out.exists()
    assert_current_serves(models, "champion")
    # Whatever was left is refused by the registry too, under either name.
    for name in ("challenger", "challenger.partial"):
        with pytest.raises(BundleError):
            set_current_version(models, name, "promote")
    assert current_version(models) == "champion"
    # Writing it again succeeds and leaves no work folder behind.
    save_bundle(out, bundle.model, bundle.tokenizer, meta)
    assert not (models / "challenger.partial").exists()
    assert sorted(assert_only_complete_models_listed(models)) == ["challenger", "champion"]


# -- 2. kill -9 during promotion --------------------------------------------------------------
@pytest.fixture
def abc_models(models, tiny_bundle) -> Path:
    for version in ("a", "b", "c"):
        copy_bundle(tiny_bundle, models, version)
    set_current_version(models, "a", "promote")
    return models


# (the call to die right after, which call of it, the current model expected afterwards)
PROMOTION_POINTS = {
    "registry-tmp-written": ("fsync", 1, "a"),
    "registry-renamed": ("replace", 1, "b"),
    "link-tmp-created": ("symlink", 1, "b"),
    "link-swapped": ("replace", 2, "b"),
}


@pytest.mark.parametrize("point", list(PROMOTION_POINTS))
def test_a_promotion_killed_at_each_step(abc_models, point):
    """tests/service/test_registry.py simulates one interruption in-process; this kills a
    real process (no finally, no flush) at each step of a promotion."""
    models = abc_models
    name, nth, expected = PROMOTION_POINTS[point]

    def child():
        calls = []

        def wrap(real):
            def wrapped(*args, **kwargs):
                result = real(*args, **kwargs)
                calls.append(1)
                if len(calls) == nth:
                    die()
                return result

            return wrapped

        if name == "symlink":
            import pathlib

            pathlib.Path.symlink_to = wrap(pathlib.Path.symlink_to)
        else:
            setattr(os, name, wrap(getattr(os, name)))
        set_current_version(models, "b", "promote")

    assert_sigkilled(run_forked(child))
    link = (models / "current").resolve().name
    print(f"\n[promotion killed at {point}] registry says {current_version(models)}, link {link}")
    assert read_registry(models)["current"] == expected  # parses: never half-written
    assert_current_serves(models, expected)  # the registry wins over a stale link
    assert sorted(assert_only_complete_models_listed(models)) == ["a", "b", "c", "champion"]
    # The next promotion works and repairs the link.
    set_current_version(models, "c", "promote")
    assert (models / "current").resolve() == (models / "c").resolve()
    assert not (models / ".current.tmp").exists()
    assert not (models / "registry.json.tmp").exists()
    assert resolve_model_path(None, models) == (models / "c").resolve()


def test_promotions_killed_at_random_moments(abc_models):
    models = abc_models
    rng = random.Random(9)
    stale_links = 0
    seen: Counter = Counter()
    for _ in range(12):

        def child():
            for k in range(10**6):
                set_current_version(models, "abc"[k % 3], "promote")
                if k % 4 == 3:
                    rollback(models)

        delay = rng.uniform(0.01, 0.25)
        assert_sigkilled(run_forked(child, kill_after=lambda pid, d=delay: _kill_later(pid, d)))
        data = read_registry(models)  # parses every time
        current = data["current"]
        assert current in {"a", "b", "c"}
        seen[current] += 1
        path = resolve_model_path(None, models)
        assert path == (models / current).resolve() and read_meta(path)["version"] == current
        link = models / "current"
        assert link.exists() and read_meta(link.resolve())  # stale at worst, never dangling
        stale_links += link.resolve() != path
    events = len(read_registry(models)["history"])
    print(
        f"\n[promotions killed at random] 12 kills, {events} promotions recorded, current "
        f"{dict(seen)}, link behind the registry after {stale_links} kills"
    )
    assert_current_serves(models, current_version(models))


def _kill_later(pid: int, delay: float) -> None:
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)


# -- 3. kill -9 during recording --------------------------------------------------------------
def _pg_url(base: str, schema: str, **options: str) -> str:
    opts = " ".join(
        f"-c{k}={v}" for k, v in {"search_path": schema, "lock_timeout": "20s", **options}.items()
    )
    return make_url(base).update_query_dict({"options": opts}).render_as_string(False)


@contextlib.contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards: the URL that uses it."""
    name = f"faults_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield _pg_url(base_url, name)
    finally:
        with admin.begin() as connection:
            connection.execute(text("SET lock_timeout = '20s'"))
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_store_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'faults.db'}"
        return
    with pg_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


def themes_for(i: int, rnd: int) -> list[str]:
    if (i + rnd) % 5 == 0:
        return []
    first = THEMES[(i + rnd) % len(THEMES)]
    return sorted({first, THEMES[(3 * i + 2 * rnd) % len(THEMES)]}) if i % 2 else [first]


def items_for(ids: list[int], rnd: int) -> list[RecordInput]:
    """Round ``rnd`` of predictions for ``ids``: themes, day, channel and sentiment all move
    from round to round, so a replacement shifts counts between rollup rows."""
    out = []
    for i in ids:
        themes = themes_for(i, rnd)
        sentiment = SENTIMENTS[(i + rnd) % 3]
        prediction = Prediction(
            themes=themes,
            scores={t: (0.9 if t in themes else 0.1) for t in THEMES},
            sentiment=sentiment,
            sentiment_scores={s: (0.8 if s == sentiment else 0.1) for s in SENTIMENTS},
            needs_review=(i + rnd) % 4 == 0,
            evidence={},
            model_version=f"r{rnd}",
            lang="zh" if i % 3 == 0 else "en",
        )
        metadata = {
            "channel": ("app", "email", "chat")[(i + rnd) % 3],
            "segment": ("consumer", "business")[i % 2],
            "created_at": f"2026-11-{1 + (i + 2 * rnd) % 20:02d}T10:00:00Z",
        }
        out.append(RecordInput(id=f"f{i}", text="t", prediction=prediction, metadata=metadata))
    return out


def rollup_rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        rows = connection.execute(select(daily_counts)).all()
    return sorted((str(r.day), r.dim, r.value, r.theme, r.sentiment, r.n, r.n_review) for r in rows)


def assert_store_consistent(
    engine, expected_themes: Callable[[dict], list[str]] | None = None
) -> Counter:
    """No partial item: every item has exactly the theme rows of the prediction it was
    recorded with, no theme row lacks its item, and the rollup equals a rebuild from the
    rows. Returns the recorded items per model_version."""
    if expected_themes is None:

        def expected_themes(row):
            return themes_for(int(row["id"][1:]), int(row["model_version"][1:]))

    with engine.connect() as connection:
        items = [dict(r._mapping) for r in connection.execute(select(feedback))]
        themes: dict[str, set] = defaultdict(set)
        for fid, theme in connection.execute(
            select(feedback_themes.c.feedback_id, feedback_themes.c.theme)
        ):
            themes[fid].add(theme)
    ids = {row["id"] for row in items}
    assert set(themes) <= ids, f"theme rows without their item: {sorted(set(themes) - ids)[:5]}"
    for row in items:
        assert themes.get(row["id"], set()) == set(expected_themes(row)), row["id"]
    incremental = rollup_rows(engine)
    rebuild_rollup(engine)
    assert incremental == rollup_rows(engine), "daily_counts differs from a rebuild"
    return Counter(row["model_version"] for row in items)


def implied_themes(bundle: Path) -> Callable[[dict], list[str]]:
    """The themes a stored item must have: those whose stored score reaches the bundle's
    threshold (the predictor's rule, on the same 4-decimal rounding)."""
    thresholds = {t: round(float(v), 4) for t, v in read_meta(bundle)["thresholds"].items()}
    return lambda row: [t for t, s in row["scores"].items() if s >= thresholds[t]]


RECORD_POINTS = {  # the statement (or event) after which the recorder dies
    "items-upserted": "INSERT INTO feedback ",
    "themes-inserted": "INSERT INTO feedback_themes",
    "rollup-applied": "DELETE FROM daily_counts",
    "before-commit": "commit",
}


def test_recording_killed_inside_its_transaction_leaves_no_partial_rows(fresh_store_url):
    """SIGKILL at each step of one recording transaction (replacing 200 items and adding
    100): afterwards the store holds exactly the earlier round, consistent; then the same
    batch records normally (no lock left behind)."""
    url = fresh_store_url
    store = Store.open(url)
    store.record(items_for(list(range(200)), 0), "1")
    assert assert_store_consistent(store.engine) == {"r0": 200}
    store.close()  # nothing of the parent's pool crosses the fork
    timings = {}
    for point, marker in RECORD_POINTS.items():

        def child(marker=marker):
            engine = create_store_engine(url)
            if marker == "commit":
                event.listen(engine, "commit", lambda _conn: die())
            else:

                def after(_conn, _cursor, statement, *_args):
                    if statement.lstrip().startswith(marker):
                        die()

                event.listen(engine, "after_cursor_execute", after)
            Store(engine).record(items_for(list(range(300)), 1), "1")

        assert_sigkilled(run_forked(child))
        check = Store.open(url, auto_migrate=False)
        started = time.monotonic()
        assert assert_store_consistent(check.engine) == {"r0": 200}, point
        timings[point] = time.monotonic() - started
        check.close()
    store = Store.open(url, auto_migrate=False)
    started = time.monotonic()
    assert store.record(items_for(list(range(300)), 1), "1") == 300
    after_kills = time.monotonic() - started
    assert assert_store_consistent(store.engine) == {"r1": 300}
    store.close()
    print(
        f"\n[recording killed in-transaction, {make_url(url).get_backend_name()}] 4 kill points,"
        f" store unchanged after each; recording the same 300 ids afterwards took "
        f"{after_kills:.2f} s"
    )


def test_recording_killed_at_random_moments(fresh_store_url):
    """A process replacing batches of 400 items in a loop, SIGKILLed at random moments."""
    url = fresh_store_url
    backend = make_url(url).get_backend_name()
    app_name = f"cxfault-{uuid.uuid4().hex[:8]}"
    child_url = url
    if backend == "postgresql":
        child_url = make_url(url).update_query_dict({"application_name": app_name})
        child_url = child_url.render_as_string(False)
    Store.open(url).close()  # migrated once, here
    rng = random.Random(3)
    open_transactions = 0
    kills = 6

    def kill_later(pid: int, delay: float) -> None:
        nonlocal open_transactions
        time.sleep(delay)
        if backend == "postgresql":  # wait (briefly) until it is inside a transaction
            watcher = create_engine(url)
            with watcher.connect() as connection:
                for _ in range(200):
                    busy = connection.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a "
                            "AND xact_start IS NOT NULL"
                        ),
                        {"a": app_name},
                    ).scalar_one()
                    if busy:
                        os.kill(pid, signal.SIGKILL)
                        open_transactions += 1
                        break
                    connection.rollback()
            watcher.dispose()
        os.kill(pid, signal.SIGKILL)

    for k in range(kills):

        def child(k=k):
            store = Store.open(child_url, auto_migrate=False)
            for rnd in range(1 + 100 * k, 10**6):
                start = (rnd * 37) % 300
                store.record(items_for(list(range(start, start + 400)), rnd), "1")

        status = run_forked(child, kill_after=lambda pid: kill_later(pid, rng.uniform(0.3, 1.5)))
        assert_sigkilled(status)
    check = Store.open(url, auto_migrate=False)
    rounds = assert_store_consistent(check.engine)
    check.close()
    where = f", {open_transactions} of them with a transaction open" if open_transactions else ""
    print(
        f"\n[recording killed at random, {backend}] {kills} kills{where}; store consistent with "
        f"{sum(rounds.values())} items from {len(rounds)} recorded batches"
    )


@pytest.mark.slow
def test_batch_record_killed_then_rerun(tiny_bundle, tmp_path, monkeypatch, capsys):
    """``cxthemes score --record`` SIGKILLed mid-run, then run again: every item once, each
    with the themes its scores imply, and the rollup equal to a rebuild."""
    url = f"sqlite:///{tmp_path / 'batch.db'}"
    texts = [
        "The price doubled overnight.",
        "I just wanted to talk to a human.",
        "Delivery was quick and the app is great.",
        "Why does the bot need my location?",
        "The AI decided without telling me why.",
        "Support never answered my emails.",
        "Recommendations are spot on for me.",
        "The app crashes every time I log in.",
    ]
    n = 8000
    source = tmp_path / "in.jsonl"
    with source.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = {
                "id": f"b{i}",
                "text": f"{texts[i % len(texts)]} ({i % 50})",
                "created_at": f"2026-11-{1 + i % 28:02d}T08:00:00Z",
                "channel": ("app", "email")[i % 2],
            }
            fh.write(json.dumps(row) + "\n")
    output = tmp_path / "out.jsonl"
    args = ["score", str(source), "-o", str(output), "--model", str(tiny_bundle), "--record"]
    args += ["--metadata-columns", "channel", "-q"]
    log_path = tmp_path / "score.log"
    engine = create_store_engine(url)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env=subprocess_env(CXTHEMES_DATABASE_URL=url, CXTHEMES_MODELS_DIR=str(tmp_path)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WAIT
        recorded = 0
        while recorded == 0:
            assert proc.poll() is None, f"scoring ended before the kill:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, "nothing recorded within the time limit"
            time.sleep(0.05)
            # (the table may not exist yet)
            with contextlib.suppress(Exception), engine.connect() as connection:
                recorded = connection.execute(
                    select(text("count(*)")).select_from(feedback)
                ).scalar_one()
        time.sleep(random.Random(5).uniform(0.2, 0.8))
        proc.kill()
        assert proc.wait(30) == -signal.SIGKILL, f"not killed mid-run:\n{log_path.read_text()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    implied = implied_themes(tiny_bundle)
    at_kill = sum(assert_store_consistent(engine, implied).values())
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        assert main(args) == 0
        rerun = time.monotonic() - started
    finally:
        get_settings.cache_clear()
    rounds = assert_store_consistent(engine, implied)
    engine.dispose()
    assert sum(rounds.values()) == n  # every item exactly once: no double counting
    assert len(output.read_text(encoding="utf-8").splitlines()) == n
    print(
        f"\n[score --record killed] {at_kill} of {n} items recorded at the kill, consistent; "
        f"the rerun resumed and finished in {rerun:.1f} s with all {n} recorded once"
    )


# -- 4. PostgreSQL stopped and restarted under load -------------------------------------------
class TcpProxy:
    """A TCP forwarder in front of the real PostgreSQL. ``stop`` is what clients see when the
    database restarts: open connections cut, new ones refused; ``start`` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._accepting is not None:
            self._accepting.join(5)
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.mark.slow
def test_postgres_restart_under_load(tiny_bundle, postgres_url, tmp_path):
    pg = make_url(postgres_url)
    proxy = TcpProxy((pg.host or "127.0.0.1", pg.port or 5432))
    proxy.start()
    with pg_schema(postgres_url) as schema_url:
        through_proxy = make_url(schema_url).set(host="127.0.0.1", port=proxy.port)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = tmp_path / "server.log"
        env = subprocess_env(
            CXTHEMES_DATABASE_URL=through_proxy.render_as_string(False),
            CXTHEMES_MODELS_DIR=str(tmp_path),
        )
        command = [sys.executable, "-m", "service.cli", "serve", "--model", str(tiny_bundle)]
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [*command, "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        results: list[dict] = []
        stop_clients = threading.Event()
        try:
            deadline = time.monotonic() + WAIT
            while True:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not become ready"
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                time.sleep(0.25)

            def client(name: str, record: bool) -> None:
                with httpx.Client(base_url=base, timeout=30) as http:
                    for n in range(10**6):
                        if stop_clients.is_set():
                            return
                        body = {
                            "record": record,
                            "items": [
                                {"id": f"{name}-{n}-{k}", "text": "The refund took weeks."}
                                for k in range(3)
                            ],
                        }
                        started = time.monotonic()
                        try:
                            r = http.post("/v1/classify", json=body)
                            status, payload = r.status_code, r.json()
                            retry_after = r.headers.get("retry-after")
                        except httpx.HTTPError as exc:  # a hang or a dropped connection
                            status, payload, retry_after = type(exc).__name__, None, None
                        results.append(
                            {
                                "record": record,
                                "ids": [i["id"] for i in body["items"]],
                                "start": started,
                                "end": time.monotonic(),
                                "status": status,
                                "payload": payload,
                                "retry_after": retry_after,
                            }
                        )

            clients = [
                threading.Thread(target=client, args=(f"c{k}", k == 0), daemon=True)
                for k in range(3)
            ] + [threading.Thread(target=client, args=("r1", True), daemon=True)]
            for thread in clients:
                thread.start()

            def count(record, since, status=None):
                return sum(
                    1
                    for r in list(results)
                    if r["record"] is record
                    and r["start"] >= since
                    and (status is None or r["status"] == status)
                )

            def wait_for(condition, limit, what):
                deadline = time.monotonic() + limit
                while not condition():
                    assert time.monotonic() < deadline, f"timed out waiting for {what}"
                    time.sleep(0.05)

            began = time.monotonic()
            wait_for(
                lambda: count(True, began, 200) >= 4 and count(False, began, 200) >= 4,
                60,
                "answers before the outage",
            )

            # "Stop PostgreSQL": connections cut, new ones refused.
            down_at = time.monotonic()
            proxy.stop()
            readyz_down = None
            while readyz_down is None:
                assert time.monotonic() - down_at < 20, "/readyz kept answering 200"
                r = httpx.get(f"{base}/readyz", timeout=10)
                if r.status_code != 200:
                    readyz_down = (time.monotonic() - down_at, r.status_code, r.json())
                time.sleep(0.1)
            wait_for(
                lambda: count(True, down_at) >= 6 and time.monotonic() - down_at > 4,
                60,
                "recording attempts during the outage",
            )

            # "Start it again".
            up_at = time.monotonic()
            proxy.start()
            readyz_up = None
            while readyz_up is None:
                assert time.monotonic() - up_at < 30, "/readyz did not recover"
                r = httpx.get(f"{base}/readyz", timeout=10)
                if r.status_code == 200:
                    readyz_up = time.monotonic() - up_at
                time.sleep(0.1)
            wait_for(
                lambda: count(True, up_at, 200) >= 4 and count(False, up_at, 200) >= 4,
                60,
                "recording after the restart",
            )
            stop_clients.set()
            for thread in clients:
                thread.join(40)
                assert not thread.is_alive(), "a client hung"
            assert server.poll() is None, "the service restarted or died"
        finally:
            stop_clients.set()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(30)
            proxy.stop()

        # What the clients saw.
        unanswered = [r for r in results if not isinstance(r["status"], int)]
        assert not unanswered, f"requests without an HTTP answer: {unanswered[:3]}"
        assert all(r["status"] in (200, 503) for r in results), Counter(
            r["status"] for r in results
        )
        plain = [r for r in results if not r["record"]]
        assert all(r["status"] == 200 for r in plain), "classify without recording failed"
        # Wholly inside the outage (after /readyz saw it): recording never claims success.
        during = [
            r
            for r in results
            if r["record"] and r["start"] >= down_at + readyz_down[0] and r["end"] <= up_at
        ]
        assert during and all(r["status"] == 503 for r in during)
        for r in during:
            assert r["payload"]["detail"]["field"] == "record"
            assert "unavailable" in r["payload"]["detail"]["message"]
            assert r["retry_after"]
        assert readyz_down[1] == 503 and readyz_down[2]["store"].startswith("unreachable")
        # A 200 was stored, a 503 was not (except answers in flight at the cut, in doubt).
        in_doubt = {i for r in results if r["start"] <= down_at <= r["end"] for i in r["ids"]}
        check = create_engine(schema_url)
        with check.connect() as connection:
            stored = set(connection.execute(select(feedback.c.id)).scalars())
        recorded_ok = {i for r in results if r["record"] and r["status"] == 200 for i in r["ids"]}
        refused = {i for r in results if r["record"] and r["status"] == 503 for i in r["ids"]}
        assert recorded_ok <= stored
        assert not (refused - in_doubt) & stored, "a 503 answer stored its items"
        assert_store_consistent(check.engine, implied_themes(tiny_bundle))
        check.dispose()

        outage = [r for r in results if down_at <= r["start"] <= up_at]
        latencies = sorted(r["end"] - r["start"] for r in during)
        print(
            f"\n[PostgreSQL restart under load] {len(results)} requests in all; during the "
            f"{up_at - down_at:.1f} s outage: "
            f"{sum(1 for r in outage if not r['record'] and r['status'] == 200)} "
            f"classify (record=false) answered 200 of "
            f"{sum(1 for r in outage if not r['record'])}, record=true answered "
            f"{dict(Counter(r['status'] for r in outage if r['record']))} "
            f"(503 in {latencies[0]:.3f}-{latencies[-1]:.3f} s); /readyz "
            f"{readyz_down[1]} after {readyz_down[0]:.2f} s ({readyz_down[2]['store']}); "
            f"ready again {readyz_up:.2f} s after the restart, no service restart; "
            f"{len(recorded_ok)} items recorded with 200, {len(in_doubt & stored)} in doubt"
        )


# -- 5. corrupt or missing model bundles ------------------------------------------------------
def _drop(path: Path) -> None:
    shutil.rmtree(path)


def _garble_meta(path: Path) -> None:
    (path / "bundle.json").write_text('{"version": "x", "theme_ids": [')


def _meta_not_object(path: Path) -> None:
    (path / "bundle.json").write_text("[1, 2, 3]")


def _truncate_weights(path: Path) -> None:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _wrong_taxonomy(path: Path) -> None:
    meta = read_meta(path)
    meta["taxonomy_version"] = "99"
    write_meta(path, meta)


def _no_tokenizer(path: Path) -> None:
    (path / "tokenizer.json").unlink()


# name -> (how to damage a bundle, what the error must say besides the path)
CORRUPTIONS = {
    "missing-encoder-config": (lambda p: shutil.rmtree(p / "encoder"), ("encoder/config.json",)),
    "missing-folder": (_drop, ("does not exist", "no bundle.json", "missing")),
    "missing-bundle-json": (lambda p: (p / "bundle.json").unlink(), ("bundle.json",)),
    "garbled-bundle-json": (_garble_meta, ("bundle.json is not valid JSON",)),
    "bundle-json-not-an-object": (_meta_not_object, ("bundle.json is not a JSON object",)),
    "truncated-weights": (_truncate_weights, ("model.safetensors",)),
    "wrong-taxonomy-version": (_wrong_taxonomy, ("taxonomy version 99",)),
    "missing-tokenizer": (_no_tokenizer, ("tokenizer.json",)),
}


def _says(message: str, path: Path, problems: tuple[str, ...]) -> bool:
    return (str(path) in message or path.name in message) and any(p in message for p in problems)


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_bundle_is_refused_with_a_clear_error(
    case, tiny_bundle, tmp_path, monkeypatch, capsys
):
    damage, problems = CORRUPTIONS[case]
    path = tmp_path / case
    shutil.copytree(tiny_bundle, path)
    damage(path)
    # The one loader.
    with pytest.raises(BundleError) as raised:
        load_bundle(path)
    assert _says(str(raised.value), path, problems), str(raised.value)
    # cxthemes score and cxthemes serve: one line naming the bundle and the problem, exit 2.
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    get_settings.cache_clear()
    import uvicorn

    import service.core.logging as logging_module

    def never(*_args, **_kwargs):
        raise AssertionError("serve started a server with a corrupt bundle")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.setattr(logging_module, "configure_logging", lambda *_a, **_k: None)
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "1", "text": "too expensive"}\n')
    try:
        for command in (
            ["score", str(source), "-o", str(tmp_path / "out.jsonl"), "--model", str(path)],
            ["serve", "--model", str(path), "--port", str(free_port())],
        ):
            capsys.readouterr()
            assert main(command) == 2, command[0]
            err = capsys.readouterr().err
            assert err.startswith(f"cxthemes {command[0]}: error: "), err
            assert _says(err, path, problems) and "Traceback" not in err, err
    finally:
        get_settings.cache_clear()
    assert not (tmp_path / "out.jsonl").exists()


def test_serve_process_refuses_a_corrupt_bundle(tiny_bundle, tmp_path):
    path = tmp_path / "truncated"
    shutil.copytree(tiny_bundle, path)
    _truncate_weights(path)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--model", str(path), "--port", "1"],
        cwd=ROOT,
        env=subprocess_env(CXTHEMES_DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}"),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert any(
        line.startswith("cxthemes serve: error: ") and _says(line, path, ("model.safetensors",))
        for line in errors
    ), done.stderr
    assert "Traceback" not in done.stderr
    print(f"\n[serve on a truncated bundle] exit 2 after {took:.1f} s: {errors[-1]}")


def test_reload_to_a_corrupt_bundle_keeps_serving_the_old_model(cli_env, tiny_bundle):
    from fastapi.testclient import TestClient

    from service.api.main import create_app
    from service.core.config import Settings

    models = cli_env
    settings = Settings(models_dir=models, database_url=f"sqlite:///{models.parent / 'api.db'}")
    body = {"items": [{"id": "1", "text": "Too expensive"}]}
    refusals = {}
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        for case, (damage, problems) in CORRUPTIONS.items():
            path = copy_bundle(tiny_bundle, models, f"bad-{case}")
            set_current_version(models, path.name, "promote", forced=True)
            damage(path)  # damaged after it was promoted (a bad disk, a bad copy)
            r = client.post("/v1/admin/reload")
            assert r.status_code == 409, (case, r.text)
            message = r.json()["detail"]["message"]
            assert _says(message, path, problems) and "still serving champion" in message, message
            refusals[case] = message
            answer = client.post("/v1/classify", json=body)
            assert answer.status_code == 200 and answer.json()["model_version"] == "champion"
            assert client.get("/readyz").status_code == 200
        set_current_version(models, "champion", "rollback")
        r = client.post("/v1/admin/reload")
        assert r.status_code == 200 and r.json()["model_version"] == "champion"
    print("\n[reload to corrupt bundles] " + "; ".join(f"{k}: 409" for k in refusals))
    print("  e.g. " + refusals["truncated-weights"])
