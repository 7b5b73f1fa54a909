"""GET /v1/metrics/themes and /v1/metrics/summary: aggregate theme metrics for dashboards.

Both answer JSON, or CSV when the request's Accept header ranks ``text/csv`` above
``application/json``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from service.api.deps import (
    AUTH_ERRORS,
    INVALID_INPUT,
    STORE_UNAVAILABLE,
    MetricsScope,
    SettingsDep,
    StoreDep,
)
from service.api.schemas import (
    GroupMetrics,
    PeriodMetrics,
    SummaryResponse,
    ThemeMetric,
    ThemeMetricsResponse,
    UtcDateTime,
)
from service.spreadsheet import safe_cell
from service.store import Store
from service.store.metrics import (
    GroupBy,
    GroupStat,
    Interval,
    ThemeStat,
    TooManyRows,
    period_count,
)
from service.store.records import to_utc_naive

router = APIRouter(
    prefix="/v1/metrics",
    tags=["metrics"],
    dependencies=[MetricsScope],
    responses={**AUTH_ERRORS, **INVALID_INPUT, **STORE_UNAVAILABLE},
)

Start = Annotated[
    datetime | None, Query(description="Inclusive (ISO 8601); default: end minus 30 days.")
]
End = Annotated[datetime | None, Query(description="Exclusive (ISO 8601); default: now (UTC).")]

_CSV = {200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with Accept: text/csv"}}
# Every period a trend's window touches is answered, empty ones too: bound the answer's size.
MAX_PERIODS = 1000
# Rows of a trend (periods times groups): 10,000 rows of 9 themes are about 14 MB of JSON.
MAX_TREND_ROWS = 10_000


def _out_of_range(field: str, message: str) -> HTTPException:
    return HTTPException(422, detail=[{"field": field, "message": message}])


def _window(start: datetime | None, end: datetime | None, default_days: int):
    try:
        end_ = to_utc_naive(end) if end else to_utc_naive(datetime.now(UTC))
        end_ + timedelta(days=1)  # the last whole day the window touches
    except OverflowError:
        raise _out_of_range("end", "end is out of range") from None
    try:
        start_ = to_utc_naive(start) if start else end_ - timedelta(days=default_days)
        # The metrics also read the period, or window of the same length, just before.
        start_ - max(end_ - start_, timedelta(0)) - timedelta(days=93)
    except OverflowError:
        raise _out_of_range(
            "start", "start is out of range (the window before it must fit in the calendar)"
        ) from None
    if start_ >= end_:
        raise HTTPException(422, detail=[{"field": "start", "message": "start must be before end"}])
    return start_, end_


def _check_periods(start: datetime, end: datetime, interval: Interval) -> None:
    n = period_count(start, end, interval)
    if n > MAX_PERIODS:
        raise _out_of_range(
            "interval",
            f"the window covers {n} periods, more than {MAX_PERIODS}: "
            "choose a longer interval or a shorter window",
        )


async def _check_theme(request: Request, store: Store, theme: str | None) -> None:
    """422 unless ``theme`` is in the served taxonomy or in the store (an older taxonomy's
    theme is listed by the metrics, so it can be asked for too)."""
    if theme is None or theme in request.app.state.taxonomy.theme_ids:
        return
    if not await run_in_threadpool(store.has_theme, theme):
        raise HTTPException(
            422, detail=[{"field": "theme", "message": f"unknown theme id {theme!r}"}]
        )


def _accept_q(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type``: that of its most specific matching range
    (RFC 9110, 12.5.1); 0 when none matches."""
    ranges = {media_type: 2, f"{media_type.split('/')[0]}/*": 1, "*/*": 0}
    best, q = -1, 0.0
    for part in accept.split(","):
        name, *params = (x.strip() for x in part.split(";"))
        specificity = ranges.get(name.lower(), -1)
        if specificity <= best:
            continue
        best, q = specificity, 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
    return q


def _wants_csv(request: Request) -> bool:
    """CSV only when Accept ranks it strictly above JSON (a tie, or no Accept: JSON)."""
    accept = request.headers.get("accept", "")
    return _accept_q(accept, "text/csv") > _accept_q(accept, "application/json")


def _metric(stat: ThemeStat) -> ThemeMetric:
    return ThemeMetric(
        theme=stat.theme,
        count=stat.count,
        share=round(stat.share, 6),
        sentiment=stat.sentiment,
        count_change=stat.count_change,
        share_change=None if stat.share_change is None else round(stat.share_change, 6),
    )


def _csv_response(header: list[str], rows: list[list]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")


@router.get("/themes", response_model=ThemeMetricsResponse, responses=_CSV)
async def theme_metrics(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    start: Start = None,
    end: End = None,
    interval: Interval = "week",
    group_by: GroupBy | None = None,
    theme: Annotated[str | None, Query(description="Only this theme id.")] = None,
):
    """Per period (and group): feedback count, each theme's count, share and sentiment split,
    and its change against the previous period. Every period the window touches is listed,
    those without feedback with zero counts (at most 1,000 periods, and
    10,000 rows of periods times groups)."""
    start_, end_ = _window(start, end, settings.metrics_default_days)
    _check_periods(start_, end_, interval)
    await _check_theme(request, store, theme)
    taxonomy = request.app.state.taxonomy
    sentiments = list(taxonomy.sentiments)
    try:
        periods = await run_in_threadpool(
            store.theme_metrics,
            start_,
            end_,
            interval=interval,
            theme_ids=taxonomy.theme_ids,
            sentiments=sentiments,
            group_by=group_by,
            theme=theme,
            max_rows=MAX_TREND_ROWS,
        )
    except TooManyRows as exc:
        raise _out_of_range(
            "group_by",
            f"{exc}: choose a longer interval, a shorter window, or fewer groups "
            "(/v1/metrics/summary with group_by gives each group's figures over the window)",
        ) from None
    if _wants_csv(request):
        # Sentiments of an older taxonomy found in the data too, as the JSON lists them: the
        # columns must add up to the count.
        found = {s for p in periods for t in p.themes for s in t.sentiment}
        sentiments += sorted(found - set(sentiments))
        header = ["period", "group", "feedback_count", "review_share", "theme", "count", "share"]
        header += [f"sentiment_{s}" for s in sentiments] + ["count_change", "share_change"]
        rows = []
        for p in periods:
            review = p.review_count / p.feedback_count if p.feedback_count else 0.0
            for t in p.themes:
                rows.append(
                    [p.period.isoformat(), p.group or "", p.feedback_count, round(review, 6)]
                    + [t.theme, t.count, round(t.share, 6)]
                    + [t.sentiment.get(s, 0) for s in sentiments]
                    + [
                        "" if t.count_change is None else t.count_change,
                        "" if t.share_change is None else round(t.share_change, 6),
                    ]
                )
        return _csv_response(header, rows)
    return ThemeMetricsResponse(
        start=start_,
        end=end_,
        interval=interval,
        group_by=group_by,
        theme=theme,
        periods=[
            PeriodMetrics(
                period=p.period,
                group=p.group,
                feedback_count=p.feedback_count,
                review_share=round(p.review_count / p.feedback_count, 6)
                if p.feedback_count
                else 0.0,
                themes=[_metric(t) for t in p.themes],
            )
            for p in periods
        ],
    )


@router.get("/summary", response_model=SummaryResponse, responses=_CSV)
async def summary(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=50, description="Themes per list.")] = 5,
    group_by: Annotated[
        GroupBy | None, Query(description="Also each group's figures, over the window only.")
    ] = None,
):
    """The top themes, the fastest rising ones (against the window of the same length just
    before) and the share of items flagged for review; with ``group_by``, each group's theme
    figures too. Everything covers the window's whole UTC days only (a trend's periods are
    whole calendar periods, which may reach outside it)."""
    start_, end_ = _window(start, end, settings.metrics_default_days)
    taxonomy = request.app.state.taxonomy
    options = {"theme_ids": taxonomy.theme_ids, "sentiments": list(taxonomy.sentiments)}
    result = await run_in_threadpool(store.summary, start_, end_, **options)
    groups = None
    if group_by:
        groups = await run_in_threadpool(
            store.group_summary, start_, end_, group_by=group_by, **options
        )
    top = sorted((t for t in result.themes if t.count), key=lambda t: -t.count)[:limit]
    rising = sorted(
        (t for t in result.themes if t.share_change is not None and t.share_change > 0),
        key=lambda t: -(t.share_change or 0.0),
    )[:limit]
    review_share = result.review_count / result.feedback_count if result.feedback_count else 0.0
    if _wants_csv(request):
        header = ["list", "rank", "theme", "count", "share", "count_change", "share_change"]
        rows = [["overall", "", "", result.feedback_count, "", "", ""]]
        rows.append(["needs_review", "", "", result.review_count, round(review_share, 6), "", ""])
        for name, stats in (("top", top), ("rising", rising)):
            for rank, t in enumerate(stats, 1):
                rows.append(
                    [name, rank, t.theme, t.count, round(t.share, 6)]
                    + ["" if t.count_change is None else t.count_change]
                    + ["" if t.share_change is None else round(t.share_change, 6)]
                )
        if groups is not None:
            header.append("group")
            rows = [row + [""] for row in rows] + _group_csv_rows(groups)
        return _csv_response(header, rows)
    return SummaryResponse(
        start=start_,
        end=end_,
        feedback_count=result.feedback_count,
        previous_feedback_count=result.previous_feedback_count,
        review_share=round(review_share, 6),
        top_themes=[_metric(t) for t in top],
        rising_themes=[_metric(t) for t in rising],
        groups=None if groups is None else [_group_metrics(g) for g in groups],
    )


def _review_share(stat: GroupStat) -> float:
    return round(stat.review_count / stat.feedback_count, 6) if stat.feedback_count else 0.0


def _group_metrics(stat: GroupStat) -> GroupMetrics:
    return GroupMetrics(
        group=stat.group,
        feedback_count=stat.feedback_count,
        review_share=_review_share(stat),
        themes=[_metric(t) for t in stat.themes],
    )


def _group_csv_rows(groups: list[GroupStat]) -> list[list]:
    """Summary CSV rows per group: its item count (no theme), then each theme's figures."""
    rows: list[list] = []
    for g in groups:
        rows.append(["group", "", "", g.feedback_count, "", "", "", g.group or ""])
        for t in g.themes:
            rows.append(["group", "", t.theme, t.count, round(t.share, 6), "", "", g.group or ""])
    return rows


class Example(BaseModel):
    id: str
    created_at: UtcDateTime
    channel: str | None
    sentiment: str
    text: str
    evidence: str | None = Field(None, description="The sentence that carries the theme.")


class ExamplesResponse(BaseModel):
    theme: str
    store_text: bool = Field(..., description="False: texts are not stored, so none to show.")
    examples: list[Example]


@router.get("/examples", response_model=ExamplesResponse)
async def theme_examples(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    theme: Annotated[str, Query(description="A theme id.")],
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 3,
) -> ExamplesResponse:
    """A few masked example texts for a theme, the highest-scoring first, with the evidence
    sentence (only when the store keeps texts)."""
    start_, end_ = _window(start, end, settings.metrics_default_days)
    await _check_theme(request, store, theme)
    rows = await run_in_threadpool(store.examples, theme, start_, end_, limit)
    return ExamplesResponse(
        theme=theme, store_text=settings.store_text, examples=[Example(**r) for r in rows]
    )
