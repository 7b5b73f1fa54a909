"""Regressions found in review of the metrics store: masking of the language and of metadata
numbers and keys, metadata types JSON cannot hold, SQLite downgrades, in-memory stores used
from other threads, whole calendar periods at both ends of a window, bound values in error
messages, and erased items left in the SQLite files."""

from __future__ import annotations

import threading
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text

from service.store import RecordInput, Store
from service.store.engine import (
    alembic_config,
    current_revision,
    downgrade,
    migrate,
    write_transaction,
)
from service.store.records import rebuild_rollup
from service.store.tables import daily_counts, feedback, feedback_themes
from tests.service.store.test_store import SENTIMENTS, THEMES, count, item, prediction


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def stored_meta(store, item_id: str) -> dict:
    with store.engine.connect() as c:
        return c.execute(select(feedback.c.meta).where(feedback.c.id == item_id)).scalar_one()


def with_meta(item_id: str, meta: dict, lang: str | None = "en") -> RecordInput:
    return RecordInput(
        id=item_id,
        text="some feedback",
        prediction=prediction(["pricing_value"], lang=lang),
        metadata={"created_at": "2026-11-03T10:00:00Z", **meta},
    )


def test_language_is_masked_and_cut_in_every_table(store):
    store.record(
        [with_meta("a", {}, lang="bob@example.com"), with_meta("b", {}, lang="x" * 40)], "1"
    )
    with store.engine.connect() as c:
        item_langs = set(c.execute(select(feedback.c.lang)).scalars())
        theme_langs = set(c.execute(select(feedback_themes.c.lang)).scalars())
        rollup = set(
            c.execute(select(daily_counts.c.value).where(daily_counts.c.dim == "lang")).scalars()
        )
    assert item_langs == theme_langs == rollup == {"[EMAIL]", "x" * 32}

    def weekly_by_lang():
        return store.theme_metrics(
            datetime(2026, 11, 2),
            datetime(2026, 11, 9),
            interval="week",
            theme_ids=THEMES,
            sentiments=SENTIMENTS,
            group_by="lang",
        )

    before = weekly_by_lang()
    rebuild_rollup(store.engine)  # the rollup agrees with the item rows it is rebuilt from
    after = weekly_by_lang()
    assert {p.group: p.feedback_count for p in before} == {"[EMAIL]": 1, "x" * 32: 1}
    assert before == after


def test_numbers_and_keys_with_personal_data_are_masked_in_metadata(store):
    meta = {
        "phone": 13812345678,
        "card": 4111111111111111,
        "phone_float": 13812345678.0,
        "age": 42,
        "ratio": 1.5,
        "vip": True,
        "bob@corp.com": "key",
        "nested": {"13812345678": [4111111111111111, 7]},
    }
    store.record([with_meta("m", meta)], "1")
    stored = stored_meta(store, "m")
    assert {k: v for k, v in stored.items() if k != "created_at"} == {
        "phone": "[PHONE]",
        "card": "[CARD]",
        "phone_float": "[PHONE]",
        "age": 42,
        "ratio": 1.5,
        "vip": True,
        "[EMAIL]": "key",
        "nested": {"[PHONE]": ["[CARD]", 7]},
    }


def test_metadata_values_json_cannot_hold_are_converted(store):
    meta = {
        "plan_start": date(2026, 1, 1),
        "at": time(10, 30),
        "amount": Decimal("1.10"),
        "blob": b"ab",
        "ratios": [float("nan"), float("inf"), float("-inf"), 0.25],
    }
    store.record([with_meta("j", meta)], "1")
    stored = stored_meta(store, "j")
    assert {k: v for k, v in stored.items() if k != "created_at"} == {
        "plan_start": "2026-01-01",
        "at": "10:30:00",
        "amount": "1.10",  # exact: not the float 1.1
        "blob": "YWI=",  # base64
        "ratios": [None, None, None, 0.25],
    }
    with store.engine.connect() as c:  # valid JSON text: no NaN or Infinity tokens
        raw = c.execute(text("SELECT CAST(meta AS TEXT) FROM feedback")).scalar_one()
    assert "NaN" not in raw and "Infinity" not in raw


def test_sqlite_downgrade_and_upgrade_keep_every_row(tmp_path):
    """Rebuilding ``feedback`` on SQLite (batch mode) must not cascade into its themes."""
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.record(
        [item("a", ["pricing_value", "human_support"], "2026-11-02"), item("b", [], "2026-11-03")],
        "1",
    )
    downgrade(store.engine, "0001")
    assert current_revision(store.engine) == "0001"
    assert (count(store, feedback), count(store, feedback_themes)) == (2, 2)
    migrate(store.engine)
    assert current_revision(store.engine) == "0003"
    assert (count(store, feedback), count(store, feedback_themes)) == (2, 2)
    with store.engine.connect() as c:  # foreign keys are enforced again afterwards
        assert c.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    # A connection already in a transaction cannot have them turned off: env.py refuses it.
    config = alembic_config()
    with write_transaction(store.engine) as connection:
        config.attributes["connection"] = connection
        with pytest.raises(RuntimeError, match="foreign keys are on"):
            command.downgrade(config, "0001")
    assert current_revision(store.engine) == "0003"
    assert (count(store, feedback), count(store, feedback_themes)) == (2, 2)
    store.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_store_is_shared_with_other_threads(url):
    store = Store.open(url)
    errors: list[Exception] = []

    def write() -> None:
        try:
            store.record([item("t", ["pricing_value"], "2026-11-02")], "1")
        except Exception as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert not errors
    with store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(feedback)).scalar_one() == 1
    store.close()


def test_monthly_periods_are_whole_at_both_ends_of_the_window(store):
    store.record(
        [
            item("a", ["pricing_value"], "2026-10-02T10:00:00Z"),
            item("b", ["pricing_value"], "2026-10-29T10:00:00Z"),
            item("c", ["pricing_value"], "2026-11-05T10:00:00Z"),
            item("d", ["pricing_value"], "2026-11-20T10:00:00Z"),
        ],
        "1",
    )
    start, end = datetime(2026, 10, 28), datetime(2026, 11, 10)
    months = store.theme_metrics(
        start, end, interval="month", theme_ids=THEMES, sentiments=SENTIMENTS
    )
    assert [(p.period, p.feedback_count) for p in months] == [
        (date(2026, 10, 1), 2),
        (date(2026, 11, 1), 2),
    ]
    assert {t.theme: t.count for t in months[1].themes}["pricing_value"] == 2
    weeks = store.theme_metrics(
        start, end, interval="week", theme_ids=THEMES, sentiments=SENTIMENTS
    )
    assert [(p.period, p.feedback_count) for p in weeks] == [
        (date(2026, 10, 26), 1),
        (date(2026, 11, 2), 1),
        (date(2026, 11, 9), 0),  # its Monday, the 9th, is in the window
    ]
    # The window's own total is the summary's: only b and c fall inside it.
    summary = store.summary(start, end, theme_ids=THEMES, sentiments=SENTIMENTS)
    assert summary.feedback_count == 2


def test_periods_reaching_the_end_of_the_calendar_do_not_overflow(store):
    store.record([item("z", ["pricing_value"], "9999-12-20T10:00:00Z")], "1")
    for interval in ("day", "week", "month"):
        periods = store.theme_metrics(
            datetime(9999, 12, 1),
            datetime(9999, 12, 30, 12),
            interval=interval,
            theme_ids=THEMES,
            sentiments=SENTIMENTS,
        )
        assert sum(p.feedback_count for p in periods) == 1, interval


def test_examples_are_not_shown_once_store_text_is_off(store_url):
    """Texts kept while store_text was on are not shown after it is turned off."""
    keeping = Store.open(store_url, store_text=True)
    keeping.record([with_meta("kept", {})], "1")
    window = (datetime(2026, 11, 1), datetime(2026, 11, 30))
    assert [r["id"] for r in keeping.examples("pricing_value", *window)] == ["kept"]
    keeping.close()
    off = Store.open(store_url, store_text=False)
    assert off.examples("pricing_value", *window) == []
    off.close()


def test_trend_periods_without_feedback_are_listed_per_group(store):
    store.record(
        [
            item("a", ["pricing_value"], "2026-10-20T10:00:00Z", channel="email"),  # before
            item("b", ["pricing_value"], "2026-11-03T10:00:00Z", channel="app"),
            item("c", ["pricing_value"], "2026-11-17T10:00:00Z", channel="app"),
        ],
        "1",
    )
    weeks = store.theme_metrics(
        datetime(2026, 11, 2),
        datetime(2026, 11, 23),
        interval="week",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
        group_by="channel",
    )
    # 'email' has no feedback in the window: not listed; 'app' in every week.
    assert [(p.period, p.group, p.feedback_count) for p in weeks] == [
        (date(2026, 11, 2), "app", 1),
        (date(2026, 11, 9), "app", 0),
        (date(2026, 11, 16), "app", 1),
    ]
    empty = weeks[1]
    assert all(t.count == 0 and t.count_change is None for t in empty.themes)


def test_period_count_counts_without_listing():
    from service.store.metrics import period_count

    window = (datetime(2026, 11, 2), datetime(2026, 11, 23))
    assert period_count(*window, "week") == 3
    assert period_count(*window, "day") == 21
    assert period_count(datetime(2026, 10, 31), datetime(2026, 11, 1, 1), "month") == 2
    assert period_count(datetime(1, 1, 1), datetime(9999, 12, 31), "day") == 3652058


def test_group_summary_covers_the_window_days_only(store):
    store.record(
        [
            item("in", ["pricing_value"], "2026-11-26T10:00:00Z", channel="app", review=True),
            item("in2", [], "2026-11-27T10:00:00Z", channel=None),
            item("out", ["product_quality"], "2026-11-23T10:00:00Z", channel="app"),
        ],
        "1",
    )
    groups = store.group_summary(
        datetime(2026, 11, 25),
        datetime(2026, 11, 27, 12),  # mid-day: the whole 27th counts, as in summary
        group_by="channel",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
    )
    assert [(g.group, g.feedback_count, g.review_count) for g in groups] == [
        (None, 1, 0),
        ("app", 1, 1),
    ]
    app = {t.theme: t for t in groups[1].themes}
    assert app["pricing_value"].count == 1 and app["pricing_value"].share == 1.0
    assert app["product_quality"].count == 0 and list(app)[: len(THEMES)] == THEMES


def test_has_theme_knows_themes_of_older_taxonomies(store):
    old = item("o", ["billing_legacy"], "2026-11-03T10:00:00Z")
    old.prediction.scores["billing_legacy"] = 0.9
    store.record([old], "0")
    assert store.has_theme("billing_legacy")
    assert not store.has_theme("pricing_value")  # in the taxonomy, but never recorded
    assert not store.has_theme("")  # the rollup's item rows


def test_examples_cover_whole_days_like_the_figures(store_url):
    s = Store.open(store_url, store_text=True)
    s.record([with_meta("a", {})], "1")  # 2026-11-03T10:00Z
    assert [
        r["id"]
        for r in s.examples("pricing_value", datetime(2026, 11, 3, 12), datetime(2026, 11, 4))
    ] == ["a"]
    assert s.examples("pricing_value", datetime(2026, 11, 4), datetime(2026, 11, 5)) == []
    s.close()


def test_store_errors_do_not_show_the_values_bound_to_their_statement(store):
    """Error messages reach logs and tracebacks (``[parameters: ...]``): ids, metadata and
    stored texts must not ride along."""
    from sqlalchemy.exc import SQLAlchemyError

    secret = "bound.value.secret@example.org"
    with pytest.raises(SQLAlchemyError) as failure, store.engine.connect() as c:
        c.execute(text("SELECT id FROM no_such_table WHERE id = :id"), {"id": secret})
    assert "no_such_table" in str(failure.value)  # the statement is still named
    assert secret not in str(failure.value) and secret not in repr(failure.value)


# Distinctive, and untouched by masking: the bytes of the files are searched for them.
ERASED_TEXT = "Quokkaxylophone refund saga, never again."
ERASED_META = "Wombatzither-enterprise"
ERASED_ID = "okapi-harmonium-id"


def _sqlite_files_holding(db: Path, *needles: str) -> list[str]:
    found = []
    for path in (db, db.with_name(db.name + "-wal")):
        data = path.read_bytes() if path.exists() else b""
        found += [f"{path.name}: {n}" for n in needles if n.encode() in data]
    return found


def test_an_erased_item_leaves_no_bytes_in_the_sqlite_files(tmp_path):
    """The WAL holds the pages as they were before the erasure until it is truncated, and a
    database file's free pages keep deleted rows unless ``secure_delete`` zeroes them."""
    db = tmp_path / "store.db"
    erased_values = (ERASED_ID, ERASED_TEXT, ERASED_META)
    store = Store.open(f"sqlite:///{db}", store_text=True)
    try:
        with store.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        keep = item("keep", ["pricing_value"], "2026-11-03T10:00:00Z")
        erased = RecordInput(
            id=ERASED_ID,
            text=ERASED_TEXT,
            prediction=prediction(["pricing_value"], evidence={"pricing_value": ERASED_TEXT}),
            metadata={"segment": ERASED_META, "note": ERASED_META, "created_at": "2026-11-03"},
        )
        store.record([keep, erased], "1")
        with store.engine.connect() as c:  # into the database file's pages
            c.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert _sqlite_files_holding(db, *erased_values) == [
            f"store.db: {v}" for v in erased_values
        ]  # the check can see them
        # Rewrites the erased item's pages: into the WAL, with the item in them.
        store.record([item("later", ["pricing_value"], "2026-11-03T11:00:00Z")], "1")
        assert store.erase(ERASED_ID)
        # While the store is still open (an API's lifetime), not only once it is closed.
        assert _sqlite_files_holding(db, *erased_values) == []
        assert count(store, feedback) == 2
    finally:
        store.close()
    assert _sqlite_files_holding(db, *erased_values) == []
