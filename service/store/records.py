"""Recording predictions in the store (an idempotent upsert by item id) and erasing them."""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, insert, literal, select, text

from service.predictor import Prediction
from service.privacy import mask_parts, mask_pii, mask_value
from service.store.engine import write_transaction
from service.store.tables import (
    DIMENSIONS,
    GROUP_KEY_LENGTH,
    ID_LENGTH,
    LANG_LENGTH,
    NONE,
    daily_counts,
    feedback,
    feedback_themes,
)


@dataclass
class RecordInput:
    """One item to record: the caller's id and metadata, the text, and the model's answer."""

    id: str | int
    text: str
    prediction: Prediction
    metadata: Mapping[str, Any] = field(default_factory=dict)


def to_utc_naive(value: datetime) -> datetime:
    """UTC without tzinfo: what the store keeps (naive input is taken to be UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _created_at(metadata: Mapping[str, Any]) -> datetime | None:
    """The metadata's ``created_at`` in UTC, or None when it gives none."""
    value = metadata.get("created_at")
    if isinstance(value, datetime):
        return to_utc_naive(value)
    if isinstance(value, str) and value.strip():
        return to_utc_naive(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    return None


def _no_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL characters: they are dropped (on SQLite too, alike)."""
    return value.replace("\x00", "") if value else value


def _group_key(value: Any, length: int = GROUP_KEY_LENGTH) -> str | None:
    """A group column's value: masked, then cut to the column (PostgreSQL would refuse a
    longer one, and with it the whole chunk)."""
    value = _no_nul(None if value is None else str(value))
    if value is None or not value.strip():
        return None
    return mask_pii(value.strip())[:length]


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: values from Parquet or Excel columns (dates, times,
    decimals, bytes) become strings, and NaN or infinities, which JSON (and PostgreSQL's json
    type) does not allow, become None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, date | time):  # datetime included
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact, where a float would round
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    return str(value)  # anything else (UUID, numpy scalars...): never fail the whole write


def review_margin(scores: Mapping[str, float], thresholds: Mapping[str, float] | None):
    """How close the nearest theme score is to its threshold (low: a label teaches more)."""
    if not thresholds:
        return None
    gaps = [abs(scores[t] - thresholds[t]) for t in thresholds if t in scores]
    return round(min(gaps), 6) if gaps else None


def build_rows(
    items: Iterable[RecordInput],
    taxonomy_version: str,
    store_text: bool,
    thresholds: Mapping[str, float] | None = None,
) -> tuple[list[dict], list[dict]]:
    """The ``feedback`` and ``feedback_themes`` rows for ``items`` (the last of a repeated id wins).

    Personal data in the metadata is masked; text and evidence are kept only with
    ``store_text``, and masked then too. An item whose metadata gives no ``created_at`` gets
    ``created_at`` None: :func:`replace` dates it (its stored date if the id is already
    recorded, else its receipt time).
    """
    received_at = to_utc_naive(datetime.now(UTC))
    by_id: dict[str, RecordInput] = {}
    for item in items:
        by_id[str(item.id)] = item
    item_rows, theme_rows = [], []
    for item_id, item in by_id.items():
        if len(item_id) > ID_LENGTH:
            raise ValueError(f"id is longer than {ID_LENGTH} characters")
        if "\x00" in item_id:
            raise ValueError("id contains a NUL character")
        meta = dict(item.metadata or {})
        p = item.prediction
        common = {
            "created_at": _created_at(meta),
            "channel": _group_key(meta.get("channel")),
            "segment": _group_key(meta.get("segment")),
            "lang": _group_key(p.lang, LANG_LENGTH),
            "sentiment": p.sentiment,
        }
        item_rows.append(
            {
                "id": item_id,
                "received_at": received_at,
                "sentiment_scores": p.sentiment_scores,
                "scores": p.scores,
                "needs_review": p.needs_review,
                "review_reasons": list(p.review_reasons),
                "review_margin": review_margin(p.scores, thresholds),
                "model_version": p.model_version,
                "taxonomy_version": taxonomy_version,
                "meta": mask_value(_jsonable(meta)),
                "text": mask_pii(_no_nul(item.text)) if store_text else None,
                **common,
            }
        )
        evidence = [p.evidence.get(theme) for theme in p.themes]
        if store_text:  # masked in the text's context (a keyword in the sentence before)
            evidence = mask_parts(_no_nul(item.text) or "", [_no_nul(e) for e in evidence])
        for theme, sentence in zip(p.themes, evidence, strict=True):
            theme_rows.append(
                {
                    "feedback_id": item_id,
                    "theme": theme,
                    "score": p.scores[theme],
                    "evidence": sentence if store_text and sentence else None,
                    **common,
                }
            )
    return item_rows, theme_rows


def _lock_ids(connection: Connection, ids: list[str]) -> None:
    """Serialise writers of the same ids across connections and replicas (PostgreSQL); on
    SQLite the write transaction (BEGIN IMMEDIATE) already holds the database's write lock."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(x, 0)) "
                "FROM (SELECT x FROM unnest(CAST(:ids AS text[])) AS x ORDER BY x) AS s"
            ),
            {"ids": sorted(ids)},
        )


def _stored(connection: Connection, ids: list[str]) -> tuple[list[dict], list[dict]]:
    """What is stored now for ``ids``: item rows and theme rows, with the rollup's fields."""
    items, themes = [], []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        cols = [feedback.c[c] for c in ("id", *_ROLLUP_FIELDS, "needs_review", "received_at")]
        items += [
            dict(r._mapping)
            for r in connection.execute(select(*cols).where(feedback.c.id.in_(chunk)))
        ]
        t = feedback_themes.c
        themes += [
            dict(r._mapping)
            for r in connection.execute(
                select(t.feedback_id, t.theme).where(t.feedback_id.in_(chunk))
            )
        ]
    return items, themes


_ROLLUP_FIELDS = ("created_at", "channel", "segment", "lang", "sentiment")
_KEPT_ON_REPLACE = ("id", "reviewed_at")


def _contributions(item_rows: list[dict], theme_rows: list[dict]) -> Counter:
    """Each item's counts in ``daily_counts``: keys (day, dim, value, theme, sentiment), values
    (items, of which flagged). An item counts once per dimension, and once per theme."""
    themes_of: dict[str, list[str]] = {}
    for row in theme_rows:
        themes_of.setdefault(row["feedback_id"], []).append(row["theme"])
    counts: Counter = Counter()
    for row in item_rows:
        day = row["created_at"].date()
        review = 1 if row["needs_review"] else 0
        for dim in DIMENSIONS:
            value = NONE if dim == "all" else (row[dim] or NONE)
            for theme in (NONE, *themes_of.get(row["id"], [])):
                key = (day, dim, value, theme, row["sentiment"])
                counts[key + ("n",)] += 1
                counts[key + ("review",)] += review
    return counts


def _apply_rollup(connection: Connection, delta: Counter) -> None:
    """Add ``delta`` (new contributions minus old) to ``daily_counts``; drop emptied rows."""
    changes: dict[tuple, list[int]] = {}
    for (*key, kind), value in delta.items():
        changes.setdefault(tuple(key), [0, 0])[0 if kind == "n" else 1] += value
    rows = [
        dict(zip(("day", "dim", "value", "theme", "sentiment"), key, strict=True), n=n, n_review=r)
        for key, (n, r) in sorted(changes.items())
        if n or r
    ]
    if not rows:
        return
    statement = _dialect_insert(connection)(daily_counts)
    statement = statement.on_conflict_do_update(
        index_elements=[daily_counts.c[c] for c in ("day", "dim", "value", "theme", "sentiment")],
        set_={
            "n": daily_counts.c.n + statement.excluded.n,
            "n_review": daily_counts.c.n_review + statement.excluded.n_review,
        },
    )
    connection.execute(statement, rows)
    days = sorted({r["day"] for r in rows})
    connection.execute(
        delete(daily_counts).where(daily_counts.c.n <= 0, daily_counts.c.day.in_(days))
    )


def _dialect_insert(connection: Connection):
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        raise NotImplementedError(f"the metrics store does not support {dialect}")
    return dialect_insert


def _date_undated(
    item_rows: list[dict], theme_rows: list[dict], old_items: list[dict]
) -> tuple[list[dict], list[dict]]:
    """The rows with ``created_at`` filled in where it is None (the metadata gave none): an
    item already recorded keeps its stored ``created_at`` and ``received_at`` (a retry or a
    re-scoring must not move it to the day it was sent again), a new one takes its receipt
    time; its theme rows take the item's date. The rows given are left as they are."""
    stored = {r["id"]: (r["created_at"], r["received_at"]) for r in old_items}
    dated_items, dates = [], {}
    for row in item_rows:
        if row["created_at"] is None:
            created_at, received_at = stored.get(row["id"], (row["received_at"],) * 2)
            row = {**row, "created_at": created_at, "received_at": received_at}
        dated_items.append(row)
        dates[row["id"]] = row["created_at"]
    dated_themes = [
        row if row["created_at"] is not None else {**row, "created_at": dates[row["feedback_id"]]}
        for row in theme_rows
    ]
    return dated_items, dated_themes


def replace(connection: Connection, item_rows: list[dict], theme_rows: list[dict]) -> None:
    """Replace the items with these ids, their themes and their share of the rollup, inside
    the caller's write transaction. Rows with ``created_at`` None keep the stored item's
    date (see :func:`_date_undated`)."""
    if not item_rows:
        return
    ids = sorted(r["id"] for r in item_rows)
    _lock_ids(connection, ids)
    old_items, old_themes = _stored(connection, ids)
    item_rows, theme_rows = _date_undated(item_rows, theme_rows, old_items)
    delta = _contributions(item_rows, theme_rows)
    delta.subtract(_contributions(old_items, old_themes))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        connection.execute(delete(feedback_themes).where(feedback_themes.c.feedback_id.in_(chunk)))
    statement = _dialect_insert(connection)(feedback)
    statement = statement.on_conflict_do_update(
        index_elements=[feedback.c.id],
        # A person's resolution of the item's review stays: a client's retry or a re-scoring
        # must not bring back to the queue an item that has been looked at.
        set_={
            c.name: statement.excluded[c.name]
            for c in feedback.columns
            if c.name not in _KEPT_ON_REPLACE
        },
    )
    connection.execute(statement, sorted(item_rows, key=lambda r: r["id"]))
    if theme_rows:
        connection.execute(insert(feedback_themes), theme_rows)
    _apply_rollup(connection, delta)


def record(
    engine: Engine,
    items: Iterable[RecordInput],
    taxonomy_version: str,
    store_text: bool = False,
    thresholds: Mapping[str, float] | None = None,
) -> int:
    """Store ``items`` in one transaction; returns how many distinct ids were written."""
    item_rows, theme_rows = build_rows(items, taxonomy_version, store_text, thresholds)
    with write_transaction(engine) as connection:
        replace(connection, item_rows, theme_rows)
    return len(item_rows)


def erase(engine: Engine, item_id: str) -> bool:
    """Delete one recorded item, its themes and its share of the rollup; False if unknown."""
    if "\x00" in item_id:
        return False  # never recorded: ids with NUL are refused
    with write_transaction(engine) as connection:
        _lock_ids(connection, [item_id])
        old_items, old_themes = _stored(connection, [item_id])
        if not old_items:
            return False
        delta = Counter()
        delta.subtract(_contributions(old_items, old_themes))
        connection.execute(delete(feedback_themes).where(feedback_themes.c.feedback_id == item_id))
        connection.execute(delete(feedback).where(feedback.c.id == item_id))
        _apply_rollup(connection, delta)
    return True


def rebuild_rollup(engine: Engine) -> None:
    """Recompute ``daily_counts`` from the item and theme tables (a repair tool; normally the
    rollup is kept in step by every write). Writers wait while it runs."""
    day_f = func.date(feedback.c.created_at)
    day_t = func.date(feedback_themes.c.created_at)
    review = case((feedback.c.needs_review, 1), else_=0)
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            # Writers wait until the rebuild commits (readers do not): otherwise its DELETE and
            # their rollup upserts lock the same rows in opposite orders and deadlock, and a
            # writer's change could be counted twice or not at all. Taken in the order every
            # writer takes these tables (records.replace, erase: themes, items, rollup), so a
            # writer already holding one can finish. SQLite: the write transaction (BEGIN
            # IMMEDIATE) already holds the whole database.
            connection.execute(
                text("LOCK TABLE feedback_themes, feedback, daily_counts IN EXCLUSIVE MODE")
            )
        connection.execute(delete(daily_counts))
        for dim in DIMENSIONS:
            value_f = literal(NONE) if dim == "all" else func.coalesce(feedback.c[dim], NONE)
            value_t = literal(NONE) if dim == "all" else func.coalesce(feedback_themes.c[dim], NONE)
            items = select(
                day_f,
                literal(dim),
                value_f,
                literal(NONE),
                feedback.c.sentiment,
                func.count(),
                func.sum(review),
            ).group_by(day_f, value_f, feedback.c.sentiment)
            joined = feedback_themes.join(feedback, feedback.c.id == feedback_themes.c.feedback_id)
            themes = (
                select(
                    day_t,
                    literal(dim),
                    value_t,
                    feedback_themes.c.theme,
                    feedback_themes.c.sentiment,
                    func.count(),
                    func.sum(review),
                )
                .select_from(joined)
                .group_by(day_t, value_t, feedback_themes.c.theme, feedback_themes.c.sentiment)
            )
            columns = ["day", "dim", "value", "theme", "sentiment", "n", "n_review"]
            connection.execute(daily_counts.insert().from_select(columns, items))
            connection.execute(daily_counts.insert().from_select(columns, themes))
