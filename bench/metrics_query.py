"""Metrics queries over 1,000,000 recorded items on PostgreSQL (target: each under 1 s).

Fills a dedicated database with N synthetic recorded items (one year, 4 channels, 3 segments,
4 languages, ~1.5 themes per item on average) in SQL, then times the store's own metrics
functions against a baseline measured in the same run: loading the same rows into Python and
aggregating there (what "aggregations run in SQL" avoids).

    PG_DB=cxthemes_bench bash scripts/postgres.sh   # prints the URL
    .venv/bin/python bench/metrics_query.py --url postgresql+psycopg://cxthemes:cxthemes@127.0.0.1:5432/cxthemes_bench
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from datetime import datetime

from sqlalchemy import select, text

from service.store import Store
from service.store.records import rebuild_rollup
from service.store.tables import feedback_themes, metadata
from service.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()
THEMES = TAXONOMY.theme_ids
SENTIMENTS = list(TAXONOMY.sentiments)

FILL_ITEMS = """
INSERT INTO feedback (id, created_at, received_at, channel, segment, lang, sentiment,
                      sentiment_scores, scores, needs_review, review_reasons, model_version,
                      taxonomy_version, meta, text)
SELECT 'bench-' || g,
       timestamp '2026-01-01' + ((g::bigint * 7919) % 31536000) * interval '1 second',
       now(),
       (ARRAY['app_review','email','chat','survey'])[1 + g % 4],
       (ARRAY['consumer','smb','enterprise'])[1 + (g / 4) % 3],
       (ARRAY['en','zh','es','de'])[1 + (g / 12) % 4],
       (ARRAY['negative','neutral','positive'])[1 + (g::bigint * 31) % 3],
       '{}'::json, '{}'::json, g % 10 = 0, '[]'::json, 'bench', '1', '{}'::json, NULL
FROM generate_series(1, :n) AS g
"""

FILL_THEMES = """
INSERT INTO feedback_themes (feedback_id, theme, score, evidence, created_at, channel, segment,
                             lang, sentiment)
SELECT f.id, t.theme, 0.9, NULL, f.created_at, f.channel, f.segment, f.lang, f.sentiment
FROM feedback f
CROSS JOIN LATERAL unnest(CAST(:themes AS text[])) AS t(theme)
WHERE abs(hashtext(f.id || t.theme)) % 100 < 17
"""


def fill(store: Store, n: int) -> None:
    metadata.drop_all(store.engine)
    with store.engine.begin() as c:  # tables of older schema versions too
        c.execute(text("DROP TABLE IF EXISTS daily_counts, feedback_themes, feedback"))
    with store.engine.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS alembic_version"))
    from service.store.engine import migrate

    migrate(store.engine)
    started = time.perf_counter()
    with store.engine.begin() as c:
        c.execute(text(FILL_ITEMS), {"n": n})
        c.execute(text(FILL_THEMES), {"themes": THEMES})
    print(f"filled {n:,} items in {time.perf_counter() - started:.1f} s")
    # Bulk SQL bypasses the write path, so build the rollup the way a repair would.
    started = time.perf_counter()
    rebuild_rollup(store.engine)
    print(f"rebuilt the daily rollup in {time.perf_counter() - started:.1f} s")
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        for table in ("feedback", "feedback_themes", "daily_counts"):
            c.execute(text(f"VACUUM ANALYZE {table}"))


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def python_baseline(store: Store, start: datetime, end: datetime) -> Counter:
    """Load every theme row of the window into Python and count per (week, channel, theme)."""
    counts: Counter = Counter()
    query = select(
        feedback_themes.c.created_at, feedback_themes.c.channel, feedback_themes.c.theme
    ).where(feedback_themes.c.created_at >= start, feedback_themes.c.created_at < end)
    with store.engine.connect() as c:
        for created_at, channel, theme in c.execute(query):
            counts[(created_at.isocalendar()[:2], channel, theme)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a PostgreSQL URL (its tables are replaced)")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-fill", action="store_true", help="reuse the data already there")
    args = parser.parse_args()

    store = Store.open(args.url)
    if not args.no_fill:
        fill(store, args.items)
    with store.engine.connect() as c:
        n_items = c.execute(text("SELECT count(*) FROM feedback")).scalar_one()
        n_themes = c.execute(text("SELECT count(*) FROM feedback_themes")).scalar_one()
        n_rollup = c.execute(text("SELECT count(*) FROM daily_counts")).scalar_one()
    print(f"store: {n_items:,} items, {n_themes:,} theme rows, {n_rollup:,} rollup rows")

    year = (datetime(2026, 1, 1), datetime(2027, 1, 1))
    quarter = (datetime(2026, 7, 1), datetime(2026, 10, 1))
    month = (datetime(2026, 11, 1), datetime(2026, 12, 1))
    common = {"theme_ids": THEMES, "sentiments": SENTIMENTS}
    cases = {
        "themes: year by week": lambda: store.theme_metrics(*year, interval="week", **common),
        "themes: year by month, group_by channel": lambda: store.theme_metrics(
            *year, interval="month", group_by="channel", **common
        ),
        "themes: quarter by day, group_by lang": lambda: store.theme_metrics(
            *quarter, interval="day", group_by="lang", **common
        ),
        "themes: year by week, one theme": lambda: store.theme_metrics(
            *year, interval="week", theme="pricing_value", **common
        ),
        "summary: last month vs month before": lambda: store.summary(*month, **common),
        "summary: whole year vs year before": lambda: store.summary(*year, **common),
    }
    baseline_s, _ = timed(lambda: python_baseline(store, *year), 1)
    print(f"\nbaseline (rows into Python, year, week x channel x theme): {baseline_s:.2f} s\n")
    print(f"| query | median of {args.repeat} (s) | under 1 s | baseline / query |")
    print("|---|---|---|---|")
    for name, fn in cases.items():
        seconds, _ = timed(fn, args.repeat)
        ok = "yes" if seconds < 1.0 else "NO"
        print(f"| {name} | {seconds:.3f} | {ok} | {baseline_s / seconds:.1f}x |")
    store.close()


if __name__ == "__main__":
    main()
