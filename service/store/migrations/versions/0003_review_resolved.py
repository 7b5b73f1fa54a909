"""review queue: items a person has resolved leave the queue

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# Additive only (see docs/OPERATIONS.md, "Upgrade"): the queue's index (needs_review,
# review_margin) still serves it; resolved items are filtered out of its range.
def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "reviewed_at",
                sa.DateTime(),
                nullable=True,
                comment="UTC; when a person resolved the review (NULL: open or never flagged).",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_column("reviewed_at")
