"""Recording an id again without ``metadata.created_at`` (a client's retry, a re-scoring) keeps
the item on the day it was first dated: it used to take the new receipt time, which moved its
counts from its day to the day it was sent again (a false spike in the trends). An explicit
``created_at`` still moves it (a correction)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

import service.store.records as records
from service.store import RecordInput, Store
from service.store.records import rebuild_rollup
from service.store.tables import daily_counts, feedback, feedback_themes
from tests.service.store.test_store import SENTIMENTS, THEMES, item

FIRST_SEND = datetime(2026, 11, 2, 23, 59, tzinfo=UTC)
RETRY = datetime(2026, 11, 3, 0, 1, tzinfo=UTC)  # two minutes later, the next UTC day


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def clock(monkeypatch):
    """Sets the receipt time the store stamps on what it records."""

    class Clock(datetime):
        value = FIRST_SEND

        @classmethod
        def now(cls, tz=None):
            return cls.value

    monkeypatch.setattr(records, "datetime", Clock)
    return Clock


def undated(item_id: str, themes: list[str], **kw) -> RecordInput:
    """An item whose metadata gives no created_at (as the API records one sent without it)."""
    r = item(item_id, themes, None, **kw)
    r.metadata.pop("created_at")
    return r


def dates(store: Store) -> dict[str, tuple]:
    """Per id: (created_at, received_at, the created_at of each of its theme rows)."""
    with store.engine.connect() as c:
        items = {r.id: (r.created_at, r.received_at) for r in c.execute(select(feedback))}
        themes: dict[str, list] = {}
        for r in c.execute(select(feedback_themes.c.feedback_id, feedback_themes.c.created_at)):
            themes.setdefault(r.feedback_id, []).append(r.created_at)
    return {k: (*v, sorted(themes.get(k, []))) for k, v in items.items()}


def day_counts(store: Store) -> dict[tuple[date, str], int]:
    """Items per (day, theme) in the rollup (the "all" dimension; theme "" is every item)."""
    with store.engine.connect() as c:
        rows = c.execute(
            select(daily_counts.c.day, daily_counts.c.theme, daily_counts.c.n).where(
                daily_counts.c.dim == "all"
            )
        )
        out: dict[tuple[date, str], int] = {}
        for day, theme, n in rows:
            day = day if isinstance(day, date) else date.fromisoformat(str(day))
            out[(day, theme)] = out.get((day, theme), 0) + n
    return out


def rollup(store: Store) -> list[tuple]:
    with store.engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(select(daily_counts)))


def assert_rollup_matches_rebuild(store: Store) -> None:
    incremental = rollup(store)
    rebuild_rollup(store.engine)
    assert rollup(store) == incremental


NOV2, NOV3 = date(2026, 11, 2), date(2026, 11, 3)
AT_FIRST_SEND = FIRST_SEND.replace(tzinfo=None)
AT_RETRY = RETRY.replace(tzinfo=None)


def test_a_retry_without_created_at_keeps_the_item_on_its_day(store, clock):
    store.record([undated("t-1", ["pricing_value"])], "1")
    clock.value = RETRY
    store.record([undated("t-1", ["human_support"])], "1")  # re-scored: another theme

    assert dates(store) == {"t-1": (AT_FIRST_SEND, AT_FIRST_SEND, [AT_FIRST_SEND])}
    counts = day_counts(store)
    assert {k: v for k, v in counts.items() if v} == {(NOV2, ""): 1, (NOV2, "human_support"): 1}
    trend = store.theme_metrics(
        datetime(2026, 11, 2),
        datetime(2026, 11, 4),
        interval="day",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
    )
    assert [(str(p.period), p.feedback_count) for p in trend] == [
        ("2026-11-02", 1),
        ("2026-11-03", 0),
    ]
    assert_rollup_matches_rebuild(store)


def test_an_explicit_created_at_still_moves_the_item(store, clock):
    store.record([undated("t-1", ["pricing_value"])], "1")
    clock.value = RETRY
    store.record([item("t-1", ["pricing_value"], "2026-11-05T08:00:00Z")], "1")  # a correction
    corrected = datetime(2026, 11, 5, 8, 0)
    assert dates(store) == {"t-1": (corrected, AT_RETRY, [corrected])}
    # ...and a later retry without one keeps the corrected date.
    clock.value = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
    store.record([undated("t-1", ["pricing_value"])], "1")
    assert dates(store) == {"t-1": (corrected, AT_RETRY, [corrected])}
    counts = {k: v for k, v in day_counts(store).items() if v}
    assert counts == {(date(2026, 11, 5), ""): 1, (date(2026, 11, 5), "pricing_value"): 1}
    assert_rollup_matches_rebuild(store)


def test_a_batch_of_new_and_stored_items_dates_each_alike(store, clock):
    store.record(
        [
            undated("old-undated", ["pricing_value"]),
            item("old-dated", ["privacy_data"], "2026-10-20T10:00:00Z"),
            undated("old-corrected", ["pricing_value"]),
            undated("old-twice", ["human_support"]),
        ],
        "1",
    )
    clock.value = RETRY
    n = store.record(
        [
            undated("old-undated", ["pricing_value", "human_support"]),
            undated("old-dated", ["privacy_data"]),
            item("old-corrected", ["pricing_value"], "2026-11-01T09:00:00Z"),
            # the same id twice in one batch: the last wins, and it gives no date
            item("old-twice", ["human_support"], "2026-11-01T09:00:00Z"),
            undated("old-twice", ["pricing_value"]),
            undated("new", ["privacy_data"]),
            undated("new-twice", ["pricing_value"]),
            undated("new-twice", ["human_support"]),
        ],
        "1",
    )
    assert n == 6
    oct20, nov1 = datetime(2026, 10, 20, 10, 0), datetime(2026, 11, 1, 9, 0)
    assert dates(store) == {
        "old-undated": (AT_FIRST_SEND, AT_FIRST_SEND, [AT_FIRST_SEND] * 2),
        "old-dated": (oct20, AT_FIRST_SEND, [oct20]),
        "old-corrected": (nov1, AT_RETRY, [nov1]),
        "old-twice": (AT_FIRST_SEND, AT_FIRST_SEND, [AT_FIRST_SEND]),
        "new": (AT_RETRY, AT_RETRY, [AT_RETRY]),
        "new-twice": (AT_RETRY, AT_RETRY, [AT_RETRY]),
    }
    counts = {k: v for k, v in day_counts(store).items() if v}
    assert counts == {
        (date(2026, 10, 20), ""): 1,
        (date(2026, 10, 20), "privacy_data"): 1,
        (date(2026, 11, 1), ""): 1,
        (date(2026, 11, 1), "pricing_value"): 1,
        (NOV2, ""): 2,
        (NOV2, "pricing_value"): 2,
        (NOV2, "human_support"): 1,
        (NOV3, ""): 2,
        (NOV3, "privacy_data"): 1,
        (NOV3, "human_support"): 1,
    }
    assert_rollup_matches_rebuild(store)


def test_an_undated_item_recorded_after_its_erasure_takes_the_new_receipt_time(store, clock):
    store.record([undated("t-1", ["pricing_value"])], "1")
    assert store.erase("t-1") is True
    clock.value = RETRY
    store.record([undated("t-1", ["pricing_value"])], "1")
    assert dates(store) == {"t-1": (AT_RETRY, AT_RETRY, [AT_RETRY])}
    assert {k: v for k, v in day_counts(store).items() if v} == {
        (NOV3, ""): 1,
        (NOV3, "pricing_value"): 1,
    }
