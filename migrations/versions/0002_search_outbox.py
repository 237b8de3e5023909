"""Search outbox: papers whose change has not reached the search index yet.

The loader queues changed paper ids in the same transaction that changes them; they leave the
queue only once the engine has acknowledged them, so a failed or interrupted index update is
repaired by the next load (or by a reindex).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key: a deleted paper stays queued until the index has dropped it too.
    op.execute(
        """CREATE TABLE search_outbox (
            paper_id text PRIMARY KEY,
            queued_at timestamptz NOT NULL DEFAULT now()
        )"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE search_outbox")
