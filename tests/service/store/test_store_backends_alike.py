"""Regressions where PostgreSQL behaved otherwise than SQLite, or replicas of different
versions got in each other's way: values the store refuses, schemas newer or older than the
code, the database's isolation level and collation, the URL's connect_timeout, ties in sort
orders, and rebuilding the rollup while writers record."""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.store import Store, StoreError, StoreValueError
from service.store.engine import create_store_engine, head_revision, migrate, schema_problem
from service.store.records import rebuild_rollup
from service.store.tables import daily_counts
from tests.service.store.test_store import SENTIMENTS, THEMES, item

FUTURE = "9999_from_newer_code"


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def set_revisions(store: Store, *revisions: str) -> None:
    """Stamp ``alembic_version`` by hand, as another version of the code would have left it."""
    with store.engine.begin() as c:
        c.execute(text("DELETE FROM alembic_version"))
        for revision in revisions:
            c.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})


def rollup(store: Store) -> list[tuple]:
    with store.engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(select(daily_counts)))


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_value_postgresql_refuses_is_a_store_value_error(store):
    """A value too long for its column failed as a SQLAlchemy error, which callers (the API:
    503 with Retry-After) take for an outage worth retrying."""
    with pytest.raises(StoreValueError, match=r"character varying\(32\)"):
        store.record([item("a", ["pricing_value"], "2026-11-02")], "v" * 33)


def test_a_schema_newer_than_this_code_is_left_as_it_is(store, store_url, caplog):
    """During a rolling upgrade an older replica restarts after a newer one migrated."""
    set_revisions(store, FUTURE)
    with caplog.at_level(logging.WARNING, logger="service.store.engine"):
        newer = Store.open(store_url)
    assert f"revision {FUTURE}, newer than this code knows" in caplog.text
    with newer.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == FUTURE
    assert newer.record([item("a", ["pricing_value"], "2026-11-02")], "1") == 1
    assert newer.schema_problem() is None  # and it counts as ready
    newer.close()


def test_alembic_failures_at_open_are_store_errors(store, store_url):
    set_revisions(store, "0001", head_revision())  # overlapping revisions: Alembic refuses
    with pytest.raises(StoreError, match="cannot be opened: CommandError"):
        Store.open(store_url)


def test_schema_problem_names_a_missing_or_older_schema(store_url):
    engine = create_store_engine(store_url)
    assert schema_problem(engine) == "schema missing: no migrations applied"
    migrate(engine, "0001")
    assert schema_problem(engine) == (
        f"schema behind: at revision 0001, this code needs {head_revision()}"
    )
    migrate(engine)
    assert schema_problem(engine) is None
    engine.dispose()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_postgresql_writes_are_read_committed_whatever_the_database_default(store_url):
    url = make_url(store_url).update_query_dict(
        {"options": "-c default_transaction_isolation=repeatable\\ read"}
    )
    plain = create_engine(url)
    with plain.connect() as c:  # the setting takes: a plain engine runs REPEATABLE READ
        assert c.execute(text("SHOW transaction_isolation")).scalar_one() == "repeatable read"
    plain.dispose()
    store = Store.open(url.render_as_string(hide_password=False))
    with store.engine.connect() as c:
        assert c.execute(text("SHOW transaction_isolation")).scalar_one() == "read committed"

    # Writers of overlapping ids no longer fail with serialization errors.
    def write(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(10):
            ids = rng.sample(range(6), 3)
            store.record([item(f"id-{k}", rng.sample(THEMES, 2), "2026-11-02") for k in ids], "1")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))  # a writer's exception is raised here
    store.close()


def test_connect_timeout_in_the_url_wins_over_the_default():
    seen: list[dict] = []
    for query, expected in (("?connect_timeout=1", "1"), ("", 5)):
        # Port 1 on loopback: nothing listens, the connection is refused at once.
        engine = create_store_engine(f"postgresql+psycopg://x:y@127.0.0.1:1/none{query}")
        event.listen(engine, "do_connect", lambda _d, _r, _a, params: seen.append(params))
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert seen[-1]["connect_timeout"] == expected
        engine.dispose()


def test_examples_tied_in_score_and_time_come_in_id_order(store_url):
    s = Store.open(store_url, store_text=True)
    s.record([item(k, ["pricing_value"], "2026-11-02T10:00:00Z") for k in ("c", "a", "b")], "1")
    s.record([item("a", ["pricing_value"], "2026-11-02T10:00:00Z")], "1")  # moves its rows
    found = s.examples("pricing_value", *_november(), limit=2)
    assert [r["id"] for r in found] == ["a", "b"]
    s.close()


def _november():
    from datetime import datetime

    return datetime(2026, 11, 1), datetime(2026, 11, 30)


def test_review_queue_ties_page_alike_whatever_the_collation(store):
    if store.engine.dialect.name == "postgresql":
        # A database created under en_US or ICU sorts "a" before "B"; the test database is C,
        # so its id columns are given a linguistic collation for this test.
        with store.engine.begin() as c:
            if not c.execute(
                text("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
            ).first():
                pytest.skip("PostgreSQL was built without ICU")
            for table, column in (("feedback", "id"), ("feedback_themes", "feedback_id")):
                c.execute(
                    text(
                        f"ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR(255) "
                        'COLLATE "und-x-icu"'
                    )
                )
    ids = ["a", "B", "c", "A", "b", "_z", "Z", "é", "e2"]
    thresholds = {"pricing_value": 0.5}  # every item the same margin: only the id breaks ties
    s = store
    s.record(
        [item(k, ["pricing_value"], "2026-11-02T10:00:00Z", review=True) for k in ids],
        "1",
        thresholds,
    )
    total, first = s.review_queue(limit=4)
    _, rest = s.review_queue(limit=10, offset=4)
    assert total == len(ids)
    assert [r["id"] for r in first + rest] == sorted(ids)  # code-point order


def test_rebuilding_the_rollup_while_writers_record(store):
    """On PostgreSQL the rebuild's DELETE and the writers' rollup upserts deadlocked."""
    stop = threading.Event()
    errors: list[str] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            batch = [
                item(
                    f"id-{rng.randint(0, 200)}",
                    [rng.choice(THEMES)],
                    f"2026-11-0{rng.randint(1, 9)}T10:00:00Z",
                    channel=rng.choice("abc"),
                    sentiment=rng.choice(SENTIMENTS),
                )
                for _ in range(5)
            ]
            try:
                store.record(batch, "1")
            except Exception as exc:  # reported below
                errors.append(f"record: {type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(6):
            time.sleep(0.2)
            try:
                rebuild_rollup(store.engine)
            except Exception as exc:  # reported below
                errors.append(f"rebuild: {type(exc).__name__}: {exc}"[:200])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    incremental = rollup(store)
    rebuild_rollup(store.engine)
    assert rollup(store) == incremental
