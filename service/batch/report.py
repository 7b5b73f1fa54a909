"""The run's summary: rows scored, theme shares with sentiment split, top themes by segment,
the share flagged for review; as text, Markdown, JSON and a PNG chart of theme shares."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from service.privacy import mask_pii

# Group values repeat row after row: each distinct one is masked once.
_masked = lru_cache(maxsize=4096)(mask_pii)


class ReportStats:
    """Counts accumulated row by row (memory: themes x sentiments x segments)."""

    def __init__(self, theme_ids: list[str], sentiments: list[str], segment: str | None) -> None:
        self.theme_ids, self.sentiments, self.segment = theme_ids, sentiments, segment
        self.rows = 0
        self.review = 0
        self.no_theme = 0
        self.sentiment = Counter()
        self.themes: dict[str, Counter] = {t: Counter() for t in theme_ids}
        self.segments: dict[str, Counter] = defaultdict(Counter)
        self.segment_rows: Counter = Counter()
        self.langs: Counter = Counter()

    def add(self, prediction: dict, segment_value: object = None) -> None:
        self.rows += 1
        self.review += bool(prediction["needs_review"])
        self.sentiment[prediction["sentiment"]] += 1
        # Segment and language values are the input's own, and may be personal data (an email
        # as the segment): masked as the store masks its group keys.
        self.langs[_masked(prediction.get("lang") or "unknown")] += 1
        if not prediction["themes"]:
            self.no_theme += 1
        seg = _masked(str(segment_value)) if segment_value not in (None, "") else "(none)"
        if self.segment:
            self.segment_rows[seg] += 1
        for theme in prediction["themes"]:
            self.themes.setdefault(theme, Counter())[prediction["sentiment"]] += 1
            if self.segment:
                self.segments[seg][theme] += 1

    def as_dict(self, top: int = 3) -> dict:
        def share(n: int, of: int) -> float:
            return round(n / of, 4) if of else 0.0

        themes = []
        for theme, split in self.themes.items():
            n = sum(split.values())
            themes.append(
                {
                    "theme": theme,
                    "count": n,
                    "share": share(n, self.rows),
                    "sentiment": {s: split.get(s, 0) for s in self.sentiments},
                }
            )
        themes.sort(key=lambda t: -t["count"])
        by_segment = {
            seg: {
                "rows": self.segment_rows[seg],
                "top_themes": [
                    {"theme": t, "count": n, "share": share(n, self.segment_rows[seg])}
                    for t, n in counts.most_common(top)
                ],
            }
            for seg, counts in sorted(
                self.segments.items(), key=lambda kv: -self.segment_rows[kv[0]]
            )
        }
        return {
            "rows_scored": self.rows,
            "needs_review": {"count": self.review, "share": share(self.review, self.rows)},
            "no_theme": {"count": self.no_theme, "share": share(self.no_theme, self.rows)},
            "sentiment": {s: self.sentiment.get(s, 0) for s in self.sentiments},
            "themes": themes,
            "segment_column": self.segment,
            "top_themes_by_segment": by_segment,
            "languages": dict(self.langs.most_common()),
        }

    def text(self) -> str:
        """A short plain-text summary for the terminal."""
        d = self.as_dict()
        lines = [
            f"{d['rows_scored']:,} rows scored; {d['needs_review']['share']:.1%} flagged "
            f"for review; {d['no_theme']['share']:.1%} with no theme"
        ]
        for t in d["themes"]:
            if t["count"]:
                split = ", ".join(f"{s} {n}" for s, n in t["sentiment"].items())
                lines.append(f"  {t['theme']:<20} {t['share']:6.1%}  ({split})")
        return "\n".join(lines)

    def markdown(self, title: str, chart: str | None) -> str:
        d = self.as_dict()
        out = [
            f"# {title}",
            "",
            f"- Rows scored: {d['rows_scored']:,}",
            f"- Flagged for review: {d['needs_review']['count']:,} "
            f"({d['needs_review']['share']:.1%})",
            f"- With no theme: {d['no_theme']['count']:,} ({d['no_theme']['share']:.1%})",
            "- Sentiment: " + ", ".join(f"{s} {n:,}" for s, n in d["sentiment"].items()),
            "",
            "## Theme shares",
            "",
            "| theme | items | share | " + " | ".join(self.sentiments) + " |",
            "|---|---|---|" + "---|" * len(self.sentiments),
        ]
        for t in d["themes"]:
            out.append(
                f"| {t['theme']} | {t['count']:,} | {t['share']:.1%} | "
                + " | ".join(f"{t['sentiment'][s]:,}" for s in self.sentiments)
                + " |"
            )
        if chart:
            out += ["", f"![Theme shares]({chart})"]
        if d["top_themes_by_segment"]:
            out += [
                "",
                f"## Top themes by {d['segment_column']}",
                "",
                f"| {d['segment_column']} | items | top themes |",
                "|---|---|---|",
            ]
            for seg, info in d["top_themes_by_segment"].items():
                tops = ", ".join(f"{t['theme']} ({t['share']:.0%})" for t in info["top_themes"])
                out.append(f"| {seg} | {info['rows']:,} | {tops} |")
        return "\n".join(out) + "\n"

    def chart(self, path: Path) -> None:
        """A horizontal bar chart of theme shares, split by sentiment."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        d = self.as_dict()
        themes = list(reversed(d["themes"]))
        colours = {"negative": "#c0392b", "neutral": "#95a5a6", "positive": "#27ae60"}
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(themes) + 1.2))
        left = [0.0] * len(themes)
        for s in self.sentiments:
            widths = [
                t["sentiment"][s] / d["rows_scored"] if d["rows_scored"] else 0 for t in themes
            ]
            ax.barh([t["theme"] for t in themes], widths, left=left, label=s, color=colours.get(s))
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_xlabel("share of feedback mentioning the theme")
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(f"Theme shares ({d['rows_scored']:,} items)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def write(self, report_path: Path, title: str) -> list[Path]:
        """``report.md`` plus ``report.json`` and ``report.png`` beside it (``report.json`` or
        ``report`` give the same three files: none overwrites another)."""
        if report_path.suffix.lower() in {".md", ".json", ".png"}:
            report_path = report_path.with_suffix("")
        report_path.parent.mkdir(parents=True, exist_ok=True)
        png = report_path.with_name(report_path.name + ".png")
        js = report_path.with_name(report_path.name + ".json")
        report_path = report_path.with_name(report_path.name + ".md")
        self.chart(png)
        report_path.write_text(self.markdown(title, png.name), encoding="utf-8")
        js.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return [report_path, js, png]
