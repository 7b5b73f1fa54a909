"""parse_taxonomy refuses a taxonomy the metrics store could not record (PostgreSQL enforces
its column sizes; SQLite does not, so the limits are checked where the taxonomy is loaded)."""

from __future__ import annotations

import copy

import pytest
import yaml

from service.store.tables import daily_counts, feedback, feedback_themes
from service.taxonomy import (
    SENTIMENT_ID_MAX_LENGTH,
    THEME_ID_MAX_LENGTH,
    VERSION_MAX_LENGTH,
    parse_taxonomy,
    taxonomy_text,
)

PROJECT = yaml.safe_load(taxonomy_text())


def with_(change) -> dict:
    data = copy.deepcopy(PROJECT)
    change(data)
    return data


def test_the_project_taxonomy_fits_the_store():
    assert parse_taxonomy(PROJECT).version == str(PROJECT["version"])


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("version", lambda d: d.update(version="2026-12-01-personalization-split-v2")),
        ("theme id", lambda d: d["themes"][0].update(id="t" * (THEME_ID_MAX_LENGTH + 1))),
        (
            "sentiment id",
            lambda d: d["sentiments"][0].update(id="s" * (SENTIMENT_ID_MAX_LENGTH + 1)),
        ),
    ],
)
def test_too_long_version_or_ids_are_refused_naming_the_field(field, change):
    with pytest.raises(ValueError, match=f"taxonomy {field} .* the metrics store keeps at most"):
        parse_taxonomy(with_(change))


def test_values_at_the_limits_are_accepted():
    def at_limits(d):
        d["version"] = "v" * VERSION_MAX_LENGTH
        d["themes"][0]["id"] = "t" * THEME_ID_MAX_LENGTH
        d["sentiments"][0]["id"] = "s" * SENTIMENT_ID_MAX_LENGTH

    taxonomy = parse_taxonomy(with_(at_limits))
    assert taxonomy.version == "v" * VERSION_MAX_LENGTH


def test_the_limits_are_the_store_s_column_sizes():
    assert feedback.c.taxonomy_version.type.length == VERSION_MAX_LENGTH
    for table in (feedback_themes, daily_counts):
        assert table.c.theme.type.length == THEME_ID_MAX_LENGTH
    for table in (feedback, feedback_themes, daily_counts):
        assert table.c.sentiment.type.length == SENTIMENT_ID_MAX_LENGTH
