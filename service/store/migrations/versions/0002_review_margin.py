"""review queue: each item's distance to the nearest theme threshold

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "review_margin",
                sa.Float(),
                nullable=True,
                comment="Smallest distance of a theme score to its threshold: low = uncertain.",
            )
        )
        batch_op.create_index(
            "ix_feedback_review_queue", ["needs_review", "review_margin"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_review_queue")
        batch_op.drop_column("review_margin")
