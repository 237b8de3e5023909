"""Observability: a row per `papers load` run, which the API's /metrics exports.

Loads run in the CLI process, not in the API, so the API cannot count them in memory: each
run records its outcome and counts here, and /metrics sums them at scrape time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE: list[str] = [
    """CREATE TABLE load_runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL DEFAULT now(),
        outcome text NOT NULL CHECK (outcome IN ('ok', 'dry-run', 'failed')),
        files text[] NOT NULL,
        read bigint NOT NULL DEFAULT 0 CHECK (read >= 0),
        inserted bigint NOT NULL DEFAULT 0 CHECK (inserted >= 0),
        updated bigint NOT NULL DEFAULT 0 CHECK (updated >= 0),
        unchanged bigint NOT NULL DEFAULT 0 CHECK (unchanged >= 0),
        pruned bigint NOT NULL DEFAULT 0 CHECK (pruned >= 0),
        rejected bigint NOT NULL DEFAULT 0 CHECK (rejected >= 0),
        error text
    )""",
]
DOWNGRADE: list[str] = [
    "DROP TABLE load_runs",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
