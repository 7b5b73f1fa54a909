"""The ``--report`` files keep no personal data: segment and language values are masked as the
store masks its group keys (an email used as a segment is the input's own value)."""

from __future__ import annotations

import json

from service.batch.report import ReportStats
from service.batch.runner import Job, ScoreOptions

EMAIL = "jane.doe.report@example.com"
PHONE = "+1 415 555 2671"
THEMES = ["pricing_value", "service_quality"]
SENTIMENTS = ["negative", "neutral", "positive"]


def _prediction(lang: str | None = "en") -> dict:
    return {
        "needs_review": False,
        "sentiment": "negative",
        "themes": ["pricing_value"],
        "lang": lang,
    }


def _report_texts(stats: ReportStats, tmp_path) -> str:
    stats.write(tmp_path / "report.md", "test")
    return (tmp_path / "report.md").read_text() + (tmp_path / "report.json").read_text()


def test_segment_and_language_values_are_masked_in_the_report(tmp_path):
    stats = ReportStats(THEMES, SENTIMENTS, "segment")
    stats.add(_prediction(lang=EMAIL), EMAIL)
    stats.add(_prediction(), f"vip {PHONE}")
    stats.add(_prediction(), "retail")
    stats.add(_prediction(lang=None), None)
    data = stats.as_dict()
    assert set(data["top_themes_by_segment"]) == {"[EMAIL]", "vip [PHONE]", "retail", "(none)"}
    assert data["languages"] == {"en": 2, "[EMAIL]": 1, "unknown": 1}
    texts = _report_texts(stats, tmp_path) + stats.text()
    assert EMAIL not in texts and PHONE not in texts and "vip [PHONE]" in texts


def test_a_scoring_run_reports_masked_segments_and_languages(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "r1", "text": "Prices went up again.", "segment": EMAIL, "lang": EMAIL},
        {"id": "r2", "text": "The app is slow.", "segment": f"vip {PHONE}"},
        {"id": "r3", "text": "The app is slow.", "segment": "retail"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = Job(predictor, src, tmp_path / "out.jsonl", ScoreOptions()).run(progress=False)
    assert summary.stats.rows == 3
    texts = _report_texts(summary.stats, tmp_path)
    assert EMAIL not in texts and PHONE not in texts
    assert set(summary.stats.segment_rows) == {"[EMAIL]", "vip [PHONE]", "retail"}
    assert "[EMAIL]" in json.loads((tmp_path / "report.json").read_text())["languages"]
