"""The metrics store: recorded predictions and their aggregates, on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from alembic.util import CommandError
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, SQLAlchemyError

from service.store import metrics, records, review
from service.store.engine import (
    create_store_engine,
    migrate,
    schema_problem,
    truncate_sqlite_wal,
)
from service.store.records import RecordInput

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The store cannot be opened (at start-up; later failures are SQLAlchemy's own)."""


class StoreValueError(ValueError):
    """The store refused a value it was given (PostgreSQL: too long for its column, out of
    range). Unlike SQLAlchemy's errors, which callers take to mean "unavailable, retry", the
    same write fails again: callers must not retry it."""


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparseable CXTHEMES_DATABASE_URL)"  # it may hold a password: not shown


@dataclass
class Store:
    """The one handle the API and the batch scorer use; wraps an engine."""

    engine: Engine
    store_text: bool = False

    @classmethod
    def open(cls, url: str, store_text: bool = False, auto_migrate: bool = True) -> Store:
        """Connect to ``url`` and, unless told not to, apply pending migrations; raises
        :class:`StoreError` (naming the URL without its password) when that fails."""
        try:
            engine = create_store_engine(url)
            if auto_migrate:
                migrate(engine)
        # A bad URL, no server, no driver; CommandError: Alembic cannot migrate the schema.
        except (SQLAlchemyError, ImportError, CommandError) as exc:
            raise StoreError(
                f"the metrics store {_safe_url(url)} cannot be opened: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        return cls(engine, store_text)

    def schema_problem(self) -> str | None:
        """Why the schema does not suit this code (missing, or behind its migrations), or None;
        raises if the database cannot be reached."""
        return schema_problem(self.engine)

    def record(
        self, items: list[RecordInput], taxonomy_version: str, thresholds: dict | None = None
    ) -> int:
        """Store predictions, idempotently by id (``thresholds`` rank the review queue);
        raises :class:`StoreValueError` when the database refuses one of their values."""
        try:
            return records.record(self.engine, items, taxonomy_version, self.store_text, thresholds)
        except DataError as exc:
            # The database's first line names the limit ("value too long for type character
            # varying(32)"); its DETAIL lines, which may quote the value, are left out.
            reason = (str(exc.orig).splitlines() or [type(exc.orig).__name__])[0]
            raise StoreValueError(f"the metrics store refused a value: {reason}") from exc

    def review_queue(
        self, limit: int = 50, offset: int = 0, include_resolved: bool = False
    ) -> tuple[int, list[dict]]:
        """Items flagged for review and not yet resolved (all flagged items with
        ``include_resolved``), most uncertain first: (total, rows)."""
        return review.review_queue(self.engine, limit, offset, include_resolved)

    def resolve_reviews(self, ids: list[str], resolved: bool = True) -> review.Resolution:
        """Take flagged items out of the review queue (``resolved=False``: put them back)."""
        return review.resolve(self.engine, ids, resolved)

    def erase(self, item_id: str) -> bool:
        """Delete one recorded item (see :func:`records.erase`); False if unknown.

        SQLite: the deleted rows are zeroed in the database file (``secure_delete``), but
        their old page images stay in the WAL until it is truncated, so it is truncated here.
        PostgreSQL keeps deleted tuples until VACUUM (docs/OPERATIONS.md).
        """
        erased = records.erase(self.engine, item_id)
        if erased and not truncate_sqlite_wal(self.engine):
            log.warning(
                "the erased item stays in the SQLite WAL file until its next complete "
                "checkpoint: readers kept this one from finishing"
            )
        return erased

    def theme_metrics(self, start: datetime, end: datetime, **kwargs) -> list[metrics.PeriodStat]:
        return metrics.theme_metrics(self.engine, start, end, **kwargs)

    def summary(self, start: datetime, end: datetime, **kwargs) -> metrics.Summary:
        return metrics.summary(self.engine, start, end, **kwargs)

    def group_summary(self, start: datetime, end: datetime, **kwargs) -> list[metrics.GroupStat]:
        """Per group, the window's own figures (see :func:`metrics.group_summary`)."""
        return metrics.group_summary(self.engine, start, end, **kwargs)

    def has_theme(self, theme: str) -> bool:
        """Whether recorded feedback mentions ``theme`` (e.g. one of an older taxonomy)."""
        return metrics.has_theme(self.engine, theme)

    def examples(self, theme: str, start: datetime, end: datetime, limit: int = 3) -> list[dict]:
        """Stored (masked) texts for ``theme`` with their evidence; none unless ``store_text``
        (texts kept before it was turned off are not shown either)."""
        if not self.store_text:
            return []
        return metrics.examples(self.engine, theme, start, end, limit)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["RecordInput", "Store", "StoreError", "StoreValueError"]
