"""Engines for the metrics store: an embedded SQLite file (WAL) or PostgreSQL; migrations."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = _sqlite_in_memory(parsed)
        if not in_memory:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
            # The values a statement binds (ids, metadata, stored texts) stay out of its
            # errors' messages, which reach logs and tracebacks; the statement is still shown.
            hide_parameters=True,
            # Each connection to ":memory:" is a database of its own: every thread (the API's
            # threadpool) must share the one connection that was migrated.
            **({"poolclass": StaticPool} if in_memory else {}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    postgresql = parsed.get_backend_name() == "postgresql"
    # pool_pre_ping: a restarted PostgreSQL costs one failed request, not a restart of the API.
    return create_engine(
        url,
        hide_parameters=True,  # bound values stay out of error messages, as for SQLite
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        # connect_args win over the URL's query: the default only where the URL sets none.
        connect_args=(
            {"connect_timeout": 5} if postgresql and "connect_timeout" not in parsed.query else {}
        ),
        # Writers lock an item's id and then read its stored rows (records.replace), which is
        # right under READ COMMITTED only; a database or role defaulting to REPEATABLE READ
        # or SERIALIZABLE would fail them with serialization errors.
        **({"isolation_level": "READ COMMITTED"} if postgresql else {}),
    )


def _sqlite_in_memory(url: URL) -> bool:
    """``sqlite://``, ``sqlite:///:memory:`` or a ``mode=memory`` URI."""
    return not url.database or url.database == ":memory:" or url.query.get("mode") == "memory"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's own is always deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: wait for other processes' locks
    _enable_wal(cursor)  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted rows are overwritten with zeros, not left in free pages: erasure means gone.
    # (Some builds default to it; others do not.)
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _enable_wal(cursor, wait_s: float = 30.0) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock.

    Switching a new database to WAL needs an exclusive lock, and SQLite can answer "database
    is locked" at once, without its busy handler, while replicas starting together race to
    switch it. Once the file is in WAL mode the pragma is a no-op.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def truncate_sqlite_wal(engine: Engine, wait_ms: int = 5000) -> bool:
    """Copy the WAL into the database file and truncate it to zero bytes (SQLite only; a no-op
    elsewhere). True when done; False when readers kept it from finishing within ``wait_ms``.

    After an erasure: the WAL still holds the erased rows' old page images until it is
    overwritten, which may be never; only a checkpoint that truncates it removes them.
    """
    if engine.dialect.name != "sqlite" or _sqlite_in_memory(engine.url):
        return True
    with engine.connect() as connection:
        # The driver's own connection: SQLAlchemy would begin a transaction first, and a
        # checkpoint cannot complete while its own connection holds one.
        driver = connection.connection.driver_connection
        driver.execute(f"PRAGMA busy_timeout={int(wait_ms)}")  # not the writers' 30 s
        try:
            busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError:  # locked: the driver's error, not SQLAlchemy's
            busy = 1
        finally:
            driver.execute("PRAGMA busy_timeout=30000")
    return not busy


def _sqlite_begin(connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then writes
    # can fail with SQLITE_BUSY when another writer committed in between.
    immediate = connection.get_execution_options().get("cx_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for read-modify-write (SQLite: BEGIN IMMEDIATE); commits on success."""
    with engine.connect() as connection:
        connection = connection.execution_options(cx_write=True)
        with connection.begin():
            yield connection


def alembic_config() -> Config:
    """Alembic's configuration, built in code so no alembic.ini is needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``. Safe to call from several replicas at once.

    A database already at a revision this code does not know (a newer replica migrated it
    during a rolling upgrade) is left as it is, with a warning: migrations are additive, so
    this code still runs on the newer schema, and Alembic could not upgrade from there anyway.
    """
    config = alembic_config()
    with engine.connect() as connection, migration_transaction(connection):
        unknown = _unknown_revisions(_database_revisions(connection))
        if unknown:
            log.warning(
                "the metrics store's schema is at revision %s, newer than this code knows "
                "(head %s): not migrating",
                ", ".join(unknown),
                head_revision(),
            )
            return
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back down to ``revision`` (an operator's tool; the service only upgrades)."""
    _run_alembic(engine, command.downgrade, revision)


def _run_alembic(engine: Engine, step, revision: str) -> None:
    config = alembic_config()
    with engine.connect() as connection, migration_transaction(connection):
        config.attributes["connection"] = connection
        step(config, revision)


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[Connection]:
    """The one transaction a migration run takes, begun before Alembic starts.

    It is a write transaction from the start: replicas starting together queue for it (SQLite:
    BEGIN IMMEDIATE; PostgreSQL: an advisory lock) instead of failing with "database is
    locked" or running Alembic's process-global context at once. On SQLite, foreign keys are
    off around it, or rebuilding a table (batch mode) cascades into the rows that reference it.
    """
    with (
        _sqlite_foreign_keys_off(connection),
        connection.execution_options(cx_write=True).begin(),
    ):
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7215093)"))
        yield connection
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """``PRAGMA foreign_keys=OFF`` for the block, then as before. The pragma is a no-op inside a
    transaction, so it goes straight to the driver: SQLAlchemy would begin one first."""
    if connection.dialect.name != "sqlite":
        yield
        return
    if connection.in_transaction():
        raise RuntimeError("foreign keys cannot be turned off inside a transaction")
    driver = connection.connection.driver_connection
    was_on = driver.execute("PRAGMA foreign_keys").fetchone()[0]
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if was_on:
            driver.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    """With foreign keys off nothing checked them: a migration that broke one is rolled back."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")


def schema_problem(engine: Engine) -> str | None:
    """Why the schema does not suit this code, or None when it does: no schema at all, or one
    behind this code's head. A revision newer than this code knows suits it (migrations are
    additive; see :func:`migrate`)."""
    with engine.connect() as connection:
        revisions = _database_revisions(connection)
    if not revisions:
        return "schema missing: no migrations applied"
    if _unknown_revisions(revisions) or revisions == (head_revision(),):
        return None
    return f"schema behind: at revision {', '.join(revisions)}, this code needs {head_revision()}"


def _database_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions in ``alembic_version`` (normally one), sorted; empty for no schema.

    Read directly: Alembic's MigrationContext logs two INFO lines each time, on every probe.
    """
    if not inspect(connection).has_table("alembic_version"):
        return ()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return tuple(sorted(rows.scalars()))


def _unknown_revisions(revisions: tuple[str, ...]) -> list[str]:
    """Those of ``revisions`` that no migration of this code defines."""
    return [r for r in revisions if r not in _known_revisions()]


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    """Every revision id this code's migrations define (read once: /readyz asks often)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(r.revision for r in script.walk_revisions())


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision id (read once: /readyz asks often)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def by_code_point(column: ColumnElement, engine: Engine) -> ColumnElement:
    """``column`` to sort by code point on every backend: PostgreSQL would follow the
    database's collation (linguistic under en_US and ICU), SQLite compares bytes; PostgreSQL's
    "C" collation makes them sort alike, so a limit cuts the same list on both."""
    return column.collate("C") if engine.dialect.name == "postgresql" else column
