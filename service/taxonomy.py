"""The theme taxonomy, read from ``labels/taxonomy.yaml`` (the one source of theme ids)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

# Longest ids and version the metrics store's columns hold (service/store/tables.py sizes its
# columns from these). PostgreSQL refuses a longer value on every write, so a taxonomy that
# holds one is refused here, when it is loaded, instead.
THEME_ID_MAX_LENGTH = 64
SENTIMENT_ID_MAX_LENGTH = 32
VERSION_MAX_LENGTH = 32


@dataclass(frozen=True)
class Theme:
    """One theme: stable id, names and descriptions by language, the report figure it mirrors."""

    id: str
    name: dict[str, str]
    description: dict[str, str]
    report_figure: str


@dataclass(frozen=True)
class Taxonomy:
    """The versioned list of themes and sentiment labels."""

    version: str
    themes: tuple[Theme, ...]
    sentiments: tuple[str, ...]

    @property
    def theme_ids(self) -> list[str]:
        return [t.id for t in self.themes]

    def theme(self, theme_id: str) -> Theme:
        for t in self.themes:
            if t.id == theme_id:
                return t
        raise KeyError(theme_id)


def parse_taxonomy(data: dict) -> Taxonomy:
    """Build a :class:`Taxonomy` from the parsed YAML, checking ids are unique and that the
    version and ids fit the metrics store's columns."""
    themes = tuple(
        Theme(
            id=t["id"],
            name=dict(t["name"]),
            description={k: " ".join(v.split()) for k, v in t["description"].items()},
            report_figure=t.get("report_figure", ""),
        )
        for t in data["themes"]
    )
    ids = [t.id for t in themes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate theme ids in taxonomy: {ids}")
    sentiments = tuple(s["id"] for s in data["sentiments"])
    version = str(data["version"])
    _check_length("version", version, VERSION_MAX_LENGTH)
    for theme_id in ids:
        _check_length("theme id", str(theme_id), THEME_ID_MAX_LENGTH)
    for sentiment in sentiments:
        _check_length("sentiment id", str(sentiment), SENTIMENT_ID_MAX_LENGTH)
    return Taxonomy(version=version, themes=themes, sentiments=sentiments)


def _check_length(field: str, value: str, limit: int) -> None:
    """A ValueError naming ``field`` when ``value`` is longer than the store can keep."""
    if len(value) > limit:
        raise ValueError(
            f"taxonomy {field} {value[:limit]!r}... is {len(value)} characters long; "
            f"the metrics store keeps at most {limit}"
        )


def taxonomy_text(path: str | Path | None = None) -> str:
    """The taxonomy file's text: ``path``, or the packaged ``labels/taxonomy.yaml``."""
    if path is None:
        return resources.files("labels").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
    return Path(path).read_text(encoding="utf-8")


@lru_cache
def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load the taxonomy from ``path``, or the packaged ``labels/taxonomy.yaml``."""
    return parse_taxonomy(yaml.safe_load(taxonomy_text(path)))
