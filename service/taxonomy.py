"""The theme taxonomy, read from ``labels/taxonomy.yaml`` (the one source of theme ids)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml


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
    """Build a :class:`Taxonomy` from the parsed YAML, checking ids are unique."""
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
    return Taxonomy(version=str(data["version"]), themes=themes, sentiments=sentiments)


def taxonomy_text(path: str | Path | None = None) -> str:
    """The taxonomy file's text: ``path``, or the packaged ``labels/taxonomy.yaml``."""
    if path is None:
        return resources.files("labels").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
    return Path(path).read_text(encoding="utf-8")


@lru_cache
def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load the taxonomy from ``path``, or the packaged ``labels/taxonomy.yaml``."""
    return parse_taxonomy(yaml.safe_load(taxonomy_text(path)))
