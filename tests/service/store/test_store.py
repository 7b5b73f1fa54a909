"""The metrics store on a real SQLite file and a real PostgreSQL: migrations, idempotent
recording, erasure, privacy, and the SQL aggregations."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import func, inspect, select

from service.predictor import Prediction
from service.store import RecordInput, Store
from service.store.engine import current_revision, head_revision, migrate
from service.store.tables import feedback, feedback_themes
from service.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
THEMES = TAXONOMY.theme_ids
SENTIMENTS = list(TAXONOMY.sentiments)


def prediction(themes, sentiment="negative", review=False, lang="en", evidence=None) -> Prediction:
    scores = {t: (0.9 if t in themes else 0.05) for t in THEMES}
    return Prediction(
        themes=list(themes),
        scores=scores,
        sentiment=sentiment,
        sentiment_scores={s: (0.8 if s == sentiment else 0.1) for s in SENTIMENTS},
        needs_review=review,
        evidence=evidence or {t: "the sentence" for t in themes},
        model_version="m-1",
        lang=lang,
        review_reasons=["score_near_threshold"] if review else [],
    )


def item(item_id, themes, when, channel="app", sentiment="negative", review=False, **kw):
    return RecordInput(
        id=item_id,
        text=kw.pop("text", "some feedback"),
        prediction=prediction(themes, sentiment, review, **kw),
        metadata={"channel": channel, "created_at": when},
    )


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def count(store, table) -> int:
    with store.engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar_one()


def test_migrations_create_the_schema_and_are_idempotent(store):
    assert current_revision(store.engine) == head_revision() == "0003"
    migrate(store.engine)  # again: nothing to do, no error
    names = set(inspect(store.engine).get_table_names())
    assert {"feedback", "feedback_themes", "alembic_version"} <= names
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("feedback_themes")}
    assert "ix_feedback_themes_created_at_theme" in indexes


def test_recording_the_same_id_replaces_never_double_counts(store):
    store.record([item("a", ["pricing_value", "speed_availability"], "2026-11-02T10:00:00Z")], "1")
    store.record([item("a", ["human_support"], "2026-11-02T10:00:00Z")], "1")
    assert count(store, feedback) == 1
    with store.engine.connect() as c:
        themes = c.execute(select(feedback_themes.c.theme)).scalars().all()
    assert themes == ["human_support"]
    # Within one batch the last occurrence of an id wins.
    n = store.record(
        [item("b", ["pricing_value"], "2026-11-02"), item("b", ["privacy_data"], "2026-11-02")],
        "1",
    )
    assert n == 1 and count(store, feedback) == 2


def test_concurrent_writers_of_one_id_leave_one_row(store):
    def write(k):
        for _ in range(5):
            store.record(
                [item("same", ["pricing_value"] if k % 2 else ["privacy_data"], "2026-11-02")],
                "1",
            )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))  # a writer's exception is raised here
    assert count(store, feedback) == 1 and count(store, feedback_themes) == 1


def test_erase_removes_the_item_and_its_themes(store):
    store.record(
        [item("gone", ["pricing_value"], "2026-11-02"), item("kept", [], "2026-11-02")], "1"
    )
    assert store.erase("gone") is True
    assert store.erase("gone") is False
    assert count(store, feedback) == 1 and count(store, feedback_themes) == 0


def test_text_is_not_stored_unless_asked_and_then_masked(store_url):
    text = "Email me at jane.doe@example.com, card 4111 1111 1111 1111. Too expensive!"
    rec = RecordInput(
        id="p",
        text=text,
        prediction=prediction(["pricing_value"], evidence={"pricing_value": text}),
        metadata={"created_at": "2026-11-02", "customer": "jane.doe@example.com"},
    )
    for store_text in (False, True):
        store = Store.open(store_url, store_text=store_text)
        store.record([rec], "1")
        with store.engine.connect() as c:
            row = c.execute(select(feedback)).one()
            evidence = c.execute(select(feedback_themes.c.evidence)).scalar_one()
        store.close()
        assert "jane.doe@example.com" not in str(row.meta)
        if store_text:
            assert "Too expensive!" in row.text and "[EMAIL]" in row.text
            assert "jane.doe" not in row.text and "4111" not in row.text
            assert "jane.doe" not in evidence
        else:
            assert row.text is None and evidence is None


def test_evidence_is_masked_in_the_context_of_its_text(store_url):
    """A sentence masked on its own loses its context: the SSN keyword ends the sentence
    before, a phone number is split by a sentence break. The stored evidence is masked as the
    stored text is."""
    text = (
        "Great app overall.\nMy SSN!\n123456789 was leaked by your app.\n"
        "Call me back at 415. 555. 2671 because support is slow."
    )
    evidence = {
        "privacy_data": "123456789 was leaked by your app.",
        "human_support": "Call me back at 415.",
        "speed_availability": "555. 2671 because support is slow.",
    }
    rec = RecordInput(
        id="ctx",
        text=text,
        prediction=prediction(list(evidence), evidence=evidence),
        metadata={"created_at": "2026-11-02"},
    )
    store = Store.open(store_url, store_text=True)
    try:
        store.record([rec], "1")
        with store.engine.connect() as c:
            stored = c.execute(select(feedback.c.text)).scalar_one()
            rows = dict(
                c.execute(select(feedback_themes.c.theme, feedback_themes.c.evidence)).all()
            )
    finally:
        store.close()
    assert "123456789" not in stored and "2671" not in stored
    assert rows == {
        "privacy_data": "[ID] was leaked by your app.",
        "human_support": "Call me back at [PHONE]",
        "speed_availability": "[PHONE] because support is slow.",
    }


def seed(store) -> None:
    """Two ISO weeks (2 Nov and 9 Nov 2026, Mondays), two channels."""
    items = [
        # week of 2 Nov: 4 items, pricing in 2 (app), speed in 1
        item(1, ["pricing_value"], "2026-11-02T08:00:00Z", "app"),
        item(
            2,
            ["pricing_value", "speed_availability"],
            "2026-11-03T12:00:00+08:00",
            "app",
            sentiment="neutral",
        ),
        item(3, [], "2026-11-05T09:00:00Z", "email", review=True),
        item(4, ["human_support"], "2026-11-08T23:59:00Z", "email", sentiment="positive"),
        # week of 9 Nov: 5 items, pricing in 1, speed in 3
        item(5, ["speed_availability"], "2026-11-09T00:00:00Z", "app"),
        item(6, ["speed_availability", "pricing_value"], "2026-11-10T10:00:00Z", "app"),
        item(7, ["speed_availability"], "2026-11-11T10:00:00Z", "email", review=True),
        item(8, [], "2026-11-12T10:00:00Z", "email"),
        item(9, ["human_support"], "2026-11-15T10:00:00Z", "email"),
    ]
    store.record(items, "1")


def by_theme(period):
    return {t.theme: t for t in period.themes}


def test_weekly_theme_metrics_with_shares_sentiment_and_change(store):
    seed(store)
    periods = store.theme_metrics(
        datetime(2026, 11, 2),
        datetime(2026, 11, 16),
        interval="week",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
    )
    assert [(p.period.isoformat(), p.feedback_count) for p in periods] == [
        ("2026-11-02", 4),
        ("2026-11-09", 5),
    ]
    w1, w2 = by_theme(periods[0]), by_theme(periods[1])
    assert w1["pricing_value"].count == 2 and w1["pricing_value"].share == pytest.approx(0.5)
    assert w1["pricing_value"].sentiment == {"negative": 1, "neutral": 1, "positive": 0}
    assert w1["pricing_value"].count_change is None  # no data in the week before
    assert w2["speed_availability"].count == 3
    assert w2["speed_availability"].share == pytest.approx(0.6)
    assert w2["speed_availability"].count_change == 2
    assert w2["speed_availability"].share_change == pytest.approx(0.6 - 0.25)
    assert w2["pricing_value"].share_change == pytest.approx(0.2 - 0.5)
    assert periods[0].review_count == 1 and periods[1].review_count == 1
    assert set(w1) == set(THEMES)  # every theme is listed, zeros included


def test_day_and_month_buckets_and_utc_conversion(store):
    seed(store)
    days = store.theme_metrics(
        datetime(2026, 11, 1),
        datetime(2026, 11, 4),
        interval="day",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
    )
    # 2026-11-03T12:00+08:00 is 04:00 UTC on the 3rd; the 1st is listed, empty.
    assert [(p.period.isoformat(), p.feedback_count) for p in days] == [
        ("2026-11-01", 0),
        ("2026-11-02", 1),
        ("2026-11-03", 1),
    ]
    months = store.theme_metrics(
        datetime(2026, 11, 1),
        datetime(2026, 12, 1),
        interval="month",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
    )
    assert len(months) == 1 and months[0].feedback_count == 9
    assert by_theme(months[0])["speed_availability"].count == 4


def test_group_by_channel_and_theme_filter(store):
    seed(store)
    periods = store.theme_metrics(
        datetime(2026, 11, 9),
        datetime(2026, 11, 16),
        interval="week",
        theme_ids=THEMES,
        sentiments=SENTIMENTS,
        group_by="channel",
        theme="speed_availability",
    )
    got = {p.group: (p.feedback_count, [(t.theme, t.count) for t in p.themes]) for p in periods}
    assert got == {
        "app": (2, [("speed_availability", 2)]),
        "email": (3, [("speed_availability", 1)]),
    }
    app = next(p for p in periods if p.group == "app")
    assert app.themes[0].count_change == 1  # app had one speed mention the week before


def test_summary_ranks_top_and_rising_themes(store):
    seed(store)
    s = store.summary(
        datetime(2026, 11, 9), datetime(2026, 11, 16), theme_ids=THEMES, sentiments=SENTIMENTS
    )
    assert (s.feedback_count, s.previous_feedback_count, s.review_count) == (5, 4, 1)
    stats = {t.theme: t for t in s.themes}
    assert stats["speed_availability"].count == 3
    assert stats["speed_availability"].share_change == pytest.approx(0.6 - 0.25)
    assert stats["pricing_value"].share_change == pytest.approx(0.2 - 0.5)


def test_empty_window_lists_its_periods_with_zero_counts(store):
    window = (datetime(2020, 1, 1), datetime(2020, 2, 1))
    periods = store.theme_metrics(*window, interval="week", theme_ids=THEMES, sentiments=SENTIMENTS)
    assert [p.period.isoformat() for p in periods] == [
        "2019-12-30",
        "2020-01-06",
        "2020-01-13",
        "2020-01-20",
        "2020-01-27",
    ]
    assert {p.feedback_count for p in periods} == {0}
    assert {t.count for p in periods for t in p.themes} == {0}
    grouped = store.theme_metrics(
        *window, interval="week", theme_ids=THEMES, sentiments=SENTIMENTS, group_by="channel"
    )
    assert grouped == []  # no group has feedback in the window


def rollup_rows(store) -> list[tuple]:
    from service.store.tables import daily_counts

    with store.engine.connect() as c:
        rows = c.execute(select(daily_counts)).all()
    return sorted((str(r.day), r.dim, r.value, r.theme, r.sentiment, r.n, r.n_review) for r in rows)


def test_rollup_stays_equal_to_a_recount_after_replacements_and_erasures(store):
    import random

    from service.store.records import rebuild_rollup

    rng = random.Random(7)
    for _ in range(12):
        batch = []
        for _ in range(rng.randint(1, 8)):
            k = rng.randint(0, 15)  # ids repeat across batches: replacements
            themes = rng.sample(THEMES, rng.randint(0, 3))
            day = f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
            batch.append(
                item(
                    f"id-{k}",
                    themes,
                    day,
                    channel=rng.choice(["app", "email", None]),
                    sentiment=rng.choice(SENTIMENTS),
                    review=rng.random() < 0.3,
                    lang=rng.choice(["en", "zh", None]),
                )
            )
        store.record(batch, "1")
        if rng.random() < 0.4:
            store.erase(f"id-{rng.randint(0, 15)}")
    incremental = rollup_rows(store)
    assert incremental and all(r[5] > 0 for r in incremental)
    rebuild_rollup(store.engine)
    assert rollup_rows(store) == incremental


def test_replicas_migrating_at_once_do_not_collide(store_url):
    """Several workers start together on one database (regression: SQLite 'database is locked')."""
    from service.store.engine import create_store_engine

    engines = [create_store_engine(store_url) for _ in range(3)]
    errors = []

    def start(engine):
        try:
            migrate(engine)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert current_revision(engines[0]) == head_revision()
    for e in engines:
        e.dispose()


def test_resolved_reviews_leave_the_queue_and_stay_resolved_when_recorded_again(store):
    store.record(
        [
            item("r1", ["pricing_value"], "2026-11-02", review=True),
            item("r2", ["speed_availability"], "2026-11-02", review=True),
            item("calm", ["pricing_value"], "2026-11-02"),
        ],
        "1",
    )
    assert store.review_queue()[0] == 2

    done = store.resolve_reviews(["r1", "calm", "ghost", "r1"])
    assert (done.changed, done.unchanged, done.not_found, done.remaining) == (
        1,
        ["calm"],  # recorded but never flagged: nothing to resolve
        ["ghost"],
        1,
    )
    total, rows = store.review_queue()
    assert (total, [r["id"] for r in rows]) == (1, ["r2"])
    again = store.resolve_reviews(["r1"])  # idempotent
    assert (again.changed, again.unchanged, again.remaining) == (0, ["r1"], 1)

    # A client's retry (or a re-scoring) of a resolved item does not put it back in the queue.
    store.record([item("r1", ["human_support"], "2026-11-02", review=True)], "1")
    assert [r["id"] for r in store.review_queue()[1]] == ["r2"]
    total, rows = store.review_queue(include_resolved=True)
    assert total == 2 and {r["id"] for r in rows} == {"r1", "r2"}
    resolved = next(r for r in rows if r["id"] == "r1")
    assert resolved["reviewed_at"] is not None and resolved["themes"] == ["human_support"]
    # The review share in the metrics counts what the model flagged: unchanged by resolving.
    window = (datetime(2026, 11, 1), datetime(2026, 11, 3))
    summary = store.summary(*window, theme_ids=THEMES, sentiments=SENTIMENTS)
    assert summary.review_count == 2

    back = store.resolve_reviews(["r1"], resolved=False)
    assert (back.changed, back.remaining) == (1, 2)
    assert store.review_queue()[0] == 2
    # Erased items are gone from the queue and unknown to a later resolution.
    assert store.erase("r2")
    assert store.resolve_reviews(["r2"]).not_found == ["r2"]


def test_resolving_many_ids_works_in_chunks(store):
    store.record([item(f"m{k:04d}", [], "2026-11-02", review=True) for k in range(1200)], "1")
    done = store.resolve_reviews([f"m{k:04d}" for k in range(1100)])
    assert (done.changed, done.remaining) == (1100, 100)
