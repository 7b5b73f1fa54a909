"""Aggregate theme metrics, computed in SQL (GROUP BY on indexed columns).

Everything is read from the ``daily_counts`` rollup, so a query's cost depends on the number
of days and groups asked for, not on the number of recorded items. Windows resolve to whole
UTC days (the day of ``start`` up to and including the day of ``end``, unless ``end`` is
midnight); periods are whole UTC calendar periods (ISO weeks start on Monday), and a window
covers every period that overlaps it, those without feedback included (with zero counts). SQL
returns one row per (period, group, theme, sentiment), so what Python touches is proportional
to the answer and the number of periods, not to the data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import Engine, Row, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from service.store.engine import by_code_point
from service.store.tables import NONE, daily_counts

Interval = Literal["day", "week", "month"]
GroupBy = Literal["channel", "segment", "lang"]


# -- periods ---------------------------------------------------------------------------------
def period_start(moment: datetime | date, interval: Interval) -> date:
    """The first day of the period that contains ``moment``."""
    day = moment.date() if isinstance(moment, datetime) else moment
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def shift_period(start: date, interval: Interval, n: int) -> date:
    """The start of the period ``n`` periods after (or before, n < 0) the one at ``start``."""
    if interval == "day":
        return start + timedelta(days=n)
    if interval == "week":
        return start + timedelta(weeks=n)
    months = start.year * 12 + start.month - 1 + n
    return date(months // 12, months % 12 + 1, 1)


def _bucket(column, interval: Interval, dialect: str) -> ColumnElement:
    """SQL for the period start of ``column`` on this dialect."""
    if dialect == "postgresql":
        return func.date(func.date_trunc(interval, column))
    if dialect == "sqlite":
        if interval == "day":
            return func.date(column)
        if interval == "week":
            # 'weekday 0' moves to the coming Sunday (or stays on one); -6 days is its Monday.
            return func.date(column, "weekday 0", "-6 days")
        return func.strftime("%Y-%m-01", column)
    raise NotImplementedError(f"metrics are not implemented for the {dialect} dialect")


def _period_after(day: date, interval: Interval) -> date | None:
    """The start of the period after the one that contains ``day``; None past the calendar's
    end (year 9999), where there is nothing after it to leave out."""
    try:
        return shift_period(period_start(day, interval), interval, 1)
    except (OverflowError, ValueError):
        return None


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


# -- theme metrics ---------------------------------------------------------------------------
@dataclass
class ThemeStat:
    theme: str
    count: int
    share: float
    sentiment: dict[str, int]
    count_change: int | None = None
    share_change: float | None = None


@dataclass
class PeriodStat:
    period: date
    group: str | None
    feedback_count: int
    review_count: int
    themes: list[ThemeStat] = field(default_factory=list)


def day_range(start: datetime, end: datetime) -> tuple[date, date]:
    """The whole UTC days [first, stop) that the window [start, end) touches."""
    stop = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(days=1)
    return start.date(), stop


def period_count(start: datetime, end: datetime, interval: Interval) -> int:
    """How many periods the window [start, end) touches (counted, not listed: a window can
    span millennia)."""
    first_day, stop = day_range(start, end)
    first = period_start(first_day, interval)
    last = period_start(stop - timedelta(days=1), interval)
    if interval == "month":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return (last - first).days // (7 if interval == "week" else 1) + 1


class TooManyRows(ValueError):
    """A trend would list more (period, group) rows than its caller allows."""

    def __init__(self, periods: int, groups: int, limit: int) -> None:
        super().__init__(
            f"the trend would list {periods} periods for each of {groups} groups "
            f"({periods * groups} rows), more than {limit}"
        )
        self.periods, self.groups, self.limit = periods, groups, limit


def _periods(first: date, last: date, interval: Interval) -> Iterator[date]:
    """The period starts from ``first`` to ``last``, both included (never past ``last``, so
    a window ending in year 9999 does not overflow)."""
    period = first
    while True:
        yield period
        if period >= last:
            return
        period = shift_period(period, interval, 1)


Totals = dict[Hashable, list[int]]
Splits = dict[tuple[Hashable, str], dict[str, int]]


def _tally(rows: Iterable[Row], key: Callable[[Row], Hashable], sentiments: list[str]):
    """Rollup rows summed per ``key(row)``: the item rows (theme '') as ``[items, flagged]``,
    the theme rows as a sentiment split per (key, theme)."""
    items: Totals = {}
    counts: Splits = defaultdict(lambda: dict.fromkeys(sentiments, 0))
    for r in rows:
        k = key(r)
        if r.theme == NONE:
            totals = items.setdefault(k, [0, 0])
            totals[0] += int(r.n)
            totals[1] += int(r.review)
        else:
            counts[(k, r.theme)][r.sentiment] = int(r.n)
    return items, counts


def _theme_stat(
    theme_id: str, n_items: int, split: dict[str, int] | None, sentiments: list[str]
) -> ThemeStat:
    """A theme's count, share of ``n_items`` and sentiment split (zeros when not mentioned)."""
    split = dict(split) if split else dict.fromkeys(sentiments, 0)
    n = sum(split.values())
    return ThemeStat(theme_id, n, n / n_items if n_items else 0.0, split)


def theme_metrics(
    engine: Engine,
    start: datetime,
    end: datetime,
    interval: Interval,
    theme_ids: list[str],
    sentiments: list[str],
    group_by: GroupBy | None = None,
    theme: str | None = None,
    max_rows: int | None = None,
) -> list[PeriodStat]:
    """Per period (and group): item count, and per theme its count, share, sentiment split and
    change against the previous period. Every period the window touches is listed (with zero
    counts where there is no feedback; per group, for each group with feedback in the window).
    Periods are whole, the first and the last too, so they may reach outside the window: the
    window's own totals are ``summary``'s. :class:`TooManyRows` if that would be more than
    ``max_rows`` (period, group) rows: checked before they are built."""
    first_day, stop = day_range(start, end)
    first = period_start(first_day, interval)
    last = period_start(stop - timedelta(days=1), interval)
    query_start = shift_period(first, interval, -1)  # the period before, for the change
    query_stop = _period_after(stop - timedelta(days=1), interval)  # the last period whole
    d = daily_counts.c
    period = _bucket(d.day, interval, engine.dialect.name).label("period")
    query = (
        select(
            period,
            d.value,
            d.theme,
            d.sentiment,
            func.sum(d.n).label("n"),
            func.sum(d.n_review).label("review"),
        )
        .where(d.dim == (group_by or "all"), d.day >= query_start)
        .group_by(period, d.value, d.theme, d.sentiment)
    )
    if query_stop is not None:
        query = query.where(d.day < query_stop)
    if theme:
        query = query.where(d.theme.in_([NONE, theme]))

    with engine.connect() as connection:
        items, counts = _tally(
            connection.execute(query), lambda r: (_as_date(r.period), r.value or None), sentiments
        )

    shown = [theme] if theme else theme_ids
    extra = sorted({t for _, t in counts} - set(shown)) if not theme else []
    # Without group_by, the one overall row per period even when the window is empty.
    groups = {g for p, g in items if p >= first} if group_by else {None}
    n_periods = period_count(start, end, interval)
    if max_rows is not None and n_periods * len(groups) > max_rows:
        raise TooManyRows(n_periods, len(groups), max_rows)

    def stat(key: tuple[date, str | None], theme_id: str) -> ThemeStat:
        return _theme_stat(theme_id, items[key][0], counts.get((key, theme_id)), sentiments)

    result = []
    for period_day in _periods(first, last, interval):
        for group in sorted(groups, key=lambda g: g or ""):
            key = (period_day, group)
            n_items, n_review = items.get(key, (0, 0))
            row = PeriodStat(period_day, group, n_items, n_review)
            previous = (shift_period(period_day, interval, -1), group)
            for theme_id in shown + extra:
                current = _theme_stat(theme_id, n_items, counts.get((key, theme_id)), sentiments)
                # A change needs feedback in both periods (a share of nothing is no figure).
                if n_items and previous in items:
                    before = stat(previous, theme_id)
                    current.count_change = current.count - before.count
                    current.share_change = current.share - before.share
                row.themes.append(current)
            result.append(row)
    return result


# -- summary ---------------------------------------------------------------------------------
@dataclass
class Summary:
    feedback_count: int
    review_count: int
    previous_feedback_count: int
    themes: list[ThemeStat]  # current window, with change against the window before


def summary(
    engine: Engine, start: datetime, end: datetime, theme_ids: list[str], sentiments: list[str]
) -> Summary:
    """Theme counts and shares in the window and their change against the window of the same
    number of days just before it."""
    first_day, stop = day_range(start, end)
    previous_first = first_day - (stop - first_day)
    d = daily_counts.c
    window = case((d.day >= first_day, "current"), else_="previous").label("window")
    query = (
        select(
            window,
            d.theme,
            d.sentiment,
            func.sum(d.n).label("n"),
            func.sum(d.n_review).label("review"),
        )
        .where(d.dim == "all", d.day >= previous_first, d.day < stop)
        .group_by(window, d.theme, d.sentiment)
    )
    with engine.connect() as connection:
        items, counts = _tally(connection.execute(query), lambda r: r.window, sentiments)
    n_now, review_now = items.get("current", (0, 0))
    n_before = items.get("previous", (0, 0))[0]
    known = theme_ids + sorted({t for _, t in counts} - set(theme_ids))
    themes = []
    for theme_id in known:
        stat = _theme_stat(theme_id, n_now, counts.get(("current", theme_id)), sentiments)
        before = sum(counts.get(("previous", theme_id), {}).values())
        if n_before:
            stat.count_change = stat.count - before
            stat.share_change = stat.share - before / n_before
        themes.append(stat)
    return Summary(n_now, review_now, n_before, themes)


@dataclass
class GroupStat:
    group: str | None
    feedback_count: int
    review_count: int
    themes: list[ThemeStat]  # the window's own figures; no change


def group_summary(
    engine: Engine,
    start: datetime,
    end: datetime,
    group_by: GroupBy,
    theme_ids: list[str],
    sentiments: list[str],
) -> list[GroupStat]:
    """Per group with feedback in the window: its item count and each theme's count, share
    and sentiment split, over the window's whole UTC days only (as ``summary``; a trend's
    periods may reach outside the window)."""
    first_day, stop = day_range(start, end)
    d = daily_counts.c
    query = (
        select(
            d.value,
            d.theme,
            d.sentiment,
            func.sum(d.n).label("n"),
            func.sum(d.n_review).label("review"),
        )
        .where(d.dim == group_by, d.day >= first_day, d.day < stop)
        .group_by(d.value, d.theme, d.sentiment)
    )
    with engine.connect() as connection:
        items, counts = _tally(connection.execute(query), lambda r: r.value or None, sentiments)
    known = theme_ids + sorted({t for _, t in counts} - set(theme_ids))
    return [
        GroupStat(
            group,
            n_items,
            n_review,
            [_theme_stat(t, n_items, counts.get((group, t)), sentiments) for t in known],
        )
        for group, (n_items, n_review) in sorted(items.items(), key=lambda kv: kv[0] or "")
    ]


def has_theme(engine: Engine, theme: str) -> bool:
    """Whether the store holds mentions of ``theme`` (an id from an older taxonomy stays
    queryable as long as its figures are there)."""
    # '' is the rollup's item row, not a theme; a NUL is never stored (and PostgreSQL
    # refuses a query holding one).
    if not theme or "\x00" in theme:
        return False
    d = daily_counts.c
    query = select(d.theme).where(d.dim == "all", d.theme == theme).limit(1)
    with engine.connect() as connection:
        return connection.execute(query).first() is not None


def examples(engine: Engine, theme: str, start: datetime, end: datetime, limit: int) -> list[dict]:
    """Recent stored (masked) texts mentioning ``theme``, with their evidence sentence; empty
    unless the store keeps texts."""
    from service.store.tables import feedback, feedback_themes

    t, f = feedback_themes.c, feedback.c
    # The same whole UTC days as the figures beside them (``theme_metrics``, ``summary``).
    first_day, stop = day_range(start, end)
    since, until = datetime.combine(first_day, time.min), datetime.combine(stop, time.min)
    query = (
        select(f.id, f.created_at, f.channel, f.sentiment, f.text, t.evidence, t.score)
        .select_from(feedback_themes.join(feedback, f.id == t.feedback_id))
        .where(t.theme == theme, t.created_at >= since, t.created_at < until, f.text.is_not(None))
        # The item id last: ties in score and time come in one order on every backend and
        # every call, so a limit cuts the same list.
        .order_by(t.score.desc(), t.created_at.desc(), by_code_point(t.feedback_id, engine))
        .limit(limit)
    )
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(query)]
