"""The review queue: recorded items flagged ``needs_review``, the most uncertain first, until a
person resolves them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, update

from service.store.engine import by_code_point, write_transaction
from service.store.tables import feedback, feedback_themes


@dataclass
class Resolution:
    """What resolving (or reopening) a list of ids did."""

    changed: int  # items whose state changed
    unchanged: list[str]  # recorded, already in the asked state or never flagged
    not_found: list[str]  # never recorded (or erased)
    remaining: int  # flagged items still open afterwards


def _open_flagged(include_resolved: bool = False):
    f = feedback.c
    flagged = f.needs_review.is_(True)
    return flagged if include_resolved else flagged & f.reviewed_at.is_(None)


def review_queue(
    engine: Engine, limit: int, offset: int, include_resolved: bool = False
) -> tuple[int, list[dict]]:
    """``(total, rows)``; each row has the item's fields and its assigned themes. Resolved
    items are left out unless ``include_resolved``."""
    f = feedback.c
    where = _open_flagged(include_resolved)
    # Smallest margin first: a label near a threshold teaches the model most. Items flagged
    # only for their language (no margin near a threshold) follow, newest first.
    # Ties go by id in code-point order, so pages come alike on every backend.
    order = [
        f.review_margin.is_(None),
        f.review_margin,
        f.created_at.desc(),
        by_code_point(f.id, engine),
    ]
    query = select(feedback).where(where).order_by(*order).limit(limit).offset(offset)
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).where(where)).scalar_one()
        rows = [dict(r._mapping) for r in connection.execute(query)]
        ids = [r["id"] for r in rows]
        themes: dict[str, list[str]] = {}
        if ids:
            t = feedback_themes.c
            for item_id, theme in connection.execute(
                select(t.feedback_id, t.theme).where(t.feedback_id.in_(ids))
            ):
                themes.setdefault(item_id, []).append(theme)
    for row in rows:
        row["themes"] = sorted(themes.get(row["id"], []))
    return total, rows


def resolve(engine: Engine, ids: Iterable[str], resolved: bool = True) -> Resolution:
    """Mark the flagged items ``ids`` as resolved (they leave the queue) or, with
    ``resolved=False``, open again; one transaction. Idempotent: an item already in the asked
    state, or never flagged, is reported as unchanged."""
    wanted = sorted(set(ids))
    f = feedback.c
    found: set[str] = set()
    to_change: list[str] = []
    now = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
    with write_transaction(engine) as connection:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = connection.execute(
                select(f.id, f.needs_review, f.reviewed_at).where(f.id.in_(chunk))
            )
            for item_id, flagged, reviewed_at in rows:
                found.add(item_id)
                if flagged and (reviewed_at is None) == resolved:
                    to_change.append(item_id)
        for start in range(0, len(to_change), 500):
            chunk = to_change[start : start + 500]
            connection.execute(
                update(feedback)
                .where(f.id.in_(chunk))
                .values(reviewed_at=now if resolved else None)
            )
        remaining = connection.execute(select(func.count()).where(_open_flagged())).scalar_one()
    changed = set(to_change)
    return Resolution(
        changed=len(changed),
        unchanged=[i for i in wanted if i in found and i not in changed],
        not_found=[i for i in wanted if i not in found],
        remaining=remaining,
    )
