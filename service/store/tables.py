"""The metrics store's tables (SQLAlchemy Core; Alembic migrations create them).

``feedback`` holds one row per recorded item, keyed by the caller's id so recording is an
upsert. ``feedback_themes`` holds one row per assigned theme and repeats the item's time,
group keys and sentiment. ``daily_counts`` is a rollup kept in step with both in the same
transaction: per UTC day, per group dimension, per theme and sentiment, how many items. The
metrics endpoints read only the rollup, so a query costs the same for 10,000 or 10,000,000
recorded items.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from service.taxonomy import SENTIMENT_ID_MAX_LENGTH, THEME_ID_MAX_LENGTH, VERSION_MAX_LENGTH

metadata = MetaData()

ID_LENGTH = 255
GROUP_KEY_LENGTH = 200
LANG_LENGTH = 32
# The taxonomy's own limits: a taxonomy that loads fits these columns (PostgreSQL enforces them).
THEME_LENGTH = THEME_ID_MAX_LENGTH
SENTIMENT_LENGTH = SENTIMENT_ID_MAX_LENGTH
TAXONOMY_VERSION_LENGTH = VERSION_MAX_LENGTH

feedback = Table(
    "feedback",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True, comment="The caller's item id."),
    Column("created_at", DateTime, nullable=False, comment="UTC; from metadata or receipt time."),
    Column("received_at", DateTime, nullable=False),
    Column("channel", String(GROUP_KEY_LENGTH)),
    Column("segment", String(GROUP_KEY_LENGTH)),
    Column("lang", String(LANG_LENGTH)),
    Column("sentiment", String(SENTIMENT_LENGTH), nullable=False),
    Column("sentiment_scores", JSON, nullable=False),
    Column("scores", JSON, nullable=False, comment="Every theme's probability."),
    Column("needs_review", Boolean, nullable=False),
    Column("review_reasons", JSON, nullable=False),
    Column(
        "review_margin",
        Float,
        comment="Smallest distance of a theme score to its threshold: low = uncertain.",
    ),
    Column(
        "reviewed_at",
        DateTime,
        comment="UTC; when a person resolved the review (NULL: open or never flagged).",
    ),
    Column("model_version", String(200), nullable=False),
    Column("taxonomy_version", String(TAXONOMY_VERSION_LENGTH), nullable=False),
    Column("meta", JSON, nullable=False, comment="The caller's metadata, PII masked."),
    Column("text", Text, comment="Masked text; only when store_text is on."),
    Index("ix_feedback_created_at", "created_at"),
    Index("ix_feedback_channel_created_at", "channel", "created_at"),
    Index("ix_feedback_segment_created_at", "segment", "created_at"),
    Index("ix_feedback_lang_created_at", "lang", "created_at"),
    Index("ix_feedback_review_queue", "needs_review", "review_margin"),
)

feedback_themes = Table(
    "feedback_themes",
    metadata,
    Column(
        "feedback_id",
        String(ID_LENGTH),
        ForeignKey("feedback.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("theme", String(THEME_LENGTH), primary_key=True),
    Column("score", Float, nullable=False),
    Column("evidence", Text, comment="Masked evidence sentence; only when store_text is on."),
    # Copies of the item's fields, so aggregations need no join.
    Column("created_at", DateTime, nullable=False),
    Column("channel", String(GROUP_KEY_LENGTH)),
    Column("segment", String(GROUP_KEY_LENGTH)),
    Column("lang", String(LANG_LENGTH)),
    Column("sentiment", String(SENTIMENT_LENGTH), nullable=False),
    Index("ix_feedback_themes_created_at_theme", "created_at", "theme"),
    Index("ix_feedback_themes_channel_created_at", "channel", "created_at"),
    Index("ix_feedback_themes_segment_created_at", "segment", "created_at"),
    Index("ix_feedback_themes_lang_created_at", "lang", "created_at"),
)

# Dimensions of the rollup: "all" (no grouping) and each group_by key.
DIMENSIONS = ("all", "channel", "segment", "lang")
# In the rollup '' stands for "not set" (a key column cannot be NULL) and, in ``theme``, for the
# row that counts items rather than theme mentions.
NONE = ""

daily_counts = Table(
    "daily_counts",
    metadata,
    Column("day", Date, primary_key=True, comment="UTC day of created_at."),
    Column("dim", String(16), primary_key=True, comment="all, channel, segment or lang."),
    Column("value", String(GROUP_KEY_LENGTH), primary_key=True, comment="'' when not set."),
    Column(
        "theme", String(THEME_LENGTH), primary_key=True, comment="'' counts items, else mentions."
    ),
    Column("sentiment", String(SENTIMENT_LENGTH), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("n_review", Integer, nullable=False, comment="Of those, flagged for review."),
    Index("ix_daily_counts_dim_day", "dim", "day"),
)
