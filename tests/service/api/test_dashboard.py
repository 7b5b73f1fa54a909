"""The dashboard in a real headless Chromium, against a live server with a seeded store."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from service.api.main import create_app
from service.core.config import Settings
from service.predictor import Prediction
from service.store import RecordInput, Store
from service.taxonomy import load_taxonomy

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("CXTHEMES_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing but the browser tests are required")
    pytest.skip("no Chromium (apt-get install chromium)", allow_module_level=True)

THEMES = load_taxonomy().theme_ids


def seed(store: Store) -> None:
    """12 weeks of feedback on three channels; themes drift so shares change over time."""
    items = []
    start = datetime(2026, 9, 7)
    for k in range(240):
        week = k // 20
        themes = [THEMES[k % 9]] + ([THEMES[4]] if week > 6 and k % 2 else [])
        sentiment = ["negative", "neutral", "positive"][k % 3]
        text = f"Order {k}: it was all fine. But {THEMES[k % 9].replace('_', ' ')} was bad."
        prediction = Prediction(
            themes=sorted(set(themes)),
            scores={t: (0.9 if t in themes else 0.1) for t in THEMES},
            sentiment=sentiment,
            sentiment_scores={"negative": 0.2, "neutral": 0.2, "positive": 0.6},
            needs_review=k % 7 == 0,
            evidence={t: text.split(". ")[1] for t in themes},
            model_version="seeded",
            lang="en",
        )
        items.append(
            RecordInput(
                id=f"s{k}",
                text=text,
                prediction=prediction,
                metadata={
                    "channel": ["app", "email", "chat"][k % 3],
                    "created_at": start + timedelta(days=week * 7 + k % 7, hours=k % 24),
                },
            )
        )
    store.record(items, "1")


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    import uvicorn

    db = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'store.db'}"
    store = Store.open(db, store_text=True)
    seed(store)
    app = create_app(
        Settings(model=str(tiny_bundle), database_url=db, store_text=True), store=store
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def chart_has_data(page, chart_id: str) -> bool:
    return page.evaluate(
        """id => { const c = window.cxDashboard.charts[id];
                   return !!c && c.data.datasets.some(d => d.data.some(v => v !== 0)); }""",
        chart_id,
    )


def test_dashboard_renders_filters_and_switches_language(server, tmp_path):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    query = "start=2026-09-01&end=2026-12-01&interval=week&group_by=channel"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, env={**os.environ, "HOME": str(tmp_path)}
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.goto(f"{server}/dashboard?{query}")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('Updated')"
        )
        for chart in ("chart-trend", "chart-sentiment", "chart-groups"):
            assert chart_has_data(page, chart), chart
        assert page.locator("#kpi-count").inner_text() == "240"
        assert page.locator("#themes-table tbody tr").count() == 9
        assert "%" in page.locator("#themes-table tbody tr").first.inner_text()
        assert page.locator(".example mark").count() >= 1  # evidence highlighted
        # Pricing grows in the last weeks of the seeded data.
        assert "Pricing and value" in page.locator("#rising li").first.inner_text()
        weeks = page.evaluate("() => window.cxDashboard.charts['chart-trend'].data.labels.length")
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

        # A filter change changes the data and the URL (so the view can be shared).
        page.select_option("#interval", "day")
        page.wait_for_function(
            f"() => window.cxDashboard.charts['chart-trend'].data.labels.length > {weeks}"
        )
        page.select_option("#group_by", "segment")
        page.wait_for_function("() => location.search.includes('group_by=segment')")
        assert "interval=day" in page.url

        # Chinese UI, and a phone-width layout.
        page.click("#lang-switch")
        page.wait_for_function("() => document.querySelector('h1').textContent === '客户反馈主题'")
        assert "lang=zh" in page.url
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)  # charts resize on the next frame
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width}px wide on a phone"
        texts = page.locator(".example p").all_inner_texts()
        assert len(texts) == len(set(texts))  # no examples doubled by overlapping reloads
        page.screenshot(path=str(SCREENSHOTS / "dashboard-zh-phone.png"), full_page=True)

        # Keyboard: from the top of a fresh page, Tab reaches the switch and the filters.
        page.reload()
        page.wait_for_function("() => document.getElementById('status').textContent !== ''")
        page.keyboard.press("Tab")
        focused = [
            page.evaluate("() => document.activeElement.id || document.activeElement.tagName")
        ]
        for _ in range(16):  # date inputs take a Tab per field (day, month, year)
            page.keyboard.press("Tab")
            focused.append(
                page.evaluate("() => document.activeElement.id || document.activeElement.tagName")
            )
        assert {"lang-switch", "start", "interval"} <= set(focused)
        browser.close()
    assert problems == []
    assert (SCREENSHOTS / "dashboard.png").stat().st_size > 20_000


def test_dashboard_is_self_contained(server):
    import httpx

    page = httpx.get(f"{server}/dashboard")
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    )
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert httpx.get(f"{server}/static/vendor/chart.umd.min.js").status_code == 200


@pytest.fixture
def page(tmp_path):
    """A fresh headless page; ``page.problems`` collects console errors and page errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, env={**os.environ, "HOME": str(tmp_path)}
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        yield page, problems
        browser.close()


def wait_loaded(page) -> str:
    page.wait_for_function(
        "() => { const s = document.getElementById('status').textContent;"
        " return s.startsWith('Updated') || s.startsWith('No data'); }",
        timeout=20_000,
    )
    return page.locator("#status").inner_text()


def test_every_figure_covers_the_chosen_days_only(server, page):
    """From 9 to 10 September, both days included: the KPI, the table and the group chart
    count those two days, not the whole ISO week (or month) around them."""
    import httpx

    page, problems = page
    expected = httpx.get(
        f"{server}/v1/metrics/summary",
        params={"start": "2026-09-09", "end": "2026-09-11", "limit": 50, "group_by": "channel"},
    ).json()
    names = {t["id"]: t["name"]["en"] for t in httpx.get(f"{server}/v1/themes").json()["themes"]}
    page.goto(f"{server}/dashboard?start=2026-09-09&end=2026-09-10&interval=week&group_by=channel")
    assert wait_loaded(page).startswith("Updated")
    assert page.locator("#kpi-count").inner_text() == str(expected["feedback_count"]) == "6"
    assert page.locator("#end").input_value() == "2026-09-10"  # as chosen: inclusive
    assert "end=2026-09-10" in page.url

    counts = {t["theme"]: t["count"] for t in expected["top_themes"]}
    for row in page.locator("#themes-table tbody tr").all_inner_texts():
        name, share = row.split("\t")[:2]
        theme = next(i for i, n in names.items() if n == name)
        want = 100 * counts.get(theme, 0) / expected["feedback_count"]
        assert abs(float(share.rstrip("%")) - want) <= 0.051, (name, share, want)

    groups = page.evaluate(
        """() => { const c = window.cxDashboard.charts['chart-groups'];
                   const data = c.data.datasets.map(d => [d.label, d.data]);
                   return { labels: c.data.labels, data: Object.fromEntries(data) }; }"""
    )
    assert groups["labels"] == [g["group"] or "—" for g in expected["groups"]]
    for theme, name in names.items():
        want = [
            next(t["share"] for t in g["themes"] if t["theme"] == theme) for g in expected["groups"]
        ]
        assert groups["data"][name] == pytest.approx(want), name
    assert problems == []


def test_a_shared_link_with_bad_filters_falls_back_to_the_defaults(server, page):
    page, problems = page
    page.goto(f"{server}/dashboard?start=nope&end=30/11/2026&interval=year&group_by=colour")
    wait_loaded(page)
    start, end = page.locator("#start").input_value(), page.locator("#end").input_value()
    assert len(start) == len(end) == 10 and start < end
    assert page.locator("#interval").input_value() == "week"
    assert page.locator("#group_by").input_value() == "channel"
    assert problems == []
