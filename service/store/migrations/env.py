"""Alembic environment: runs on the connection that ``service.store.engine.migrate`` passes in,
or on ``CXTHEMES_DATABASE_URL`` when run by the ``alembic`` command itself."""

from __future__ import annotations

from alembic import context

from service.store.tables import metadata

config = context.config


def _run(connection) -> None:
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
    from service.store.engine import create_store_engine

    engine = create_store_engine(get_settings().database_url)
    with engine.begin() as conn:
        _run(conn)
