"""The review queue: recorded items flagged ``needs_review``, the most uncertain first."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from service.store.tables import feedback, feedback_themes


def review_queue(engine: Engine, limit: int, offset: int) -> tuple[int, list[dict]]:
    """``(total, rows)``; each row has the item's fields and its assigned themes."""
    f = feedback.c
    flagged = f.needs_review.is_(True)
    # Smallest margin first: a label near a threshold teaches the model most. Items flagged
    # only for their language (no margin near a threshold) follow, newest first.
    # Ties go by id in code-point order: PostgreSQL would follow the database's collation
    # (linguistic under en_US and ICU), SQLite compares bytes; "C" makes them page alike.
    by_id = f.id.collate("C") if engine.dialect.name == "postgresql" else f.id
    order = [f.review_margin.is_(None), f.review_margin, f.created_at.desc(), by_id]
    query = select(feedback).where(flagged).order_by(*order).limit(limit).offset(offset)
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).where(flagged)).scalar_one()
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
