"""Alembic environment: runs on the connection that ``service.store.engine.migrate`` passes in,
or on ``CXTHEMES_DATABASE_URL`` when run by the ``alembic`` command itself. Either way the
migrations run inside ``migration_transaction`` (one write transaction; on SQLite with foreign
keys off)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.store.tables import metadata

config = context.config


def _refuse_cascading_rebuilds(connection: Connection) -> None:
    """On SQLite a migration that rebuilds a table (batch mode: copy, DROP, rename) with foreign
    keys on deletes every row that references it (ON DELETE CASCADE); they can only be turned
    off outside a transaction, so a connection that arrives in one with them on is refused."""
    if connection.dialect.name != "sqlite":
        return
    if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "SQLite foreign keys are on: run migrations through "
            "service.store.engine.migrate/downgrade (or migration_transaction)"
        )


def _run(connection: Connection) -> None:
    _refuse_cascading_rebuilds(connection)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from service.core.config import get_settings
    from service.store.engine import create_store_engine, migration_transaction

    engine = create_store_engine(get_settings().database_url)
    with engine.connect() as conn, migration_transaction(conn):
        _run(conn)
