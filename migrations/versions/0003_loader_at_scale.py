"""Loader at scale: slug bookkeeping for id assignment, lookups by title and by source file.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = [
    # A paper's id is slug_base for the first paper of that slug, slug_base-N for the N-th.
    "ALTER TABLE papers ADD COLUMN slug_base text",
    "ALTER TABLE papers ADD COLUMN slug_n integer NOT NULL DEFAULT 1",
    "UPDATE papers SET slug_base = id",
    "ALTER TABLE papers ALTER COLUMN slug_base SET NOT NULL",
    "CREATE INDEX papers_slug_base ON papers (slug_base, slug_n)",
    # Records with an arXiv id still find a paper first loaded without one, by title.
    "CREATE INDEX papers_title_key ON papers (title_key)",
    # --prune finds the papers of one source file.
    "CREATE INDEX papers_source_file ON papers ((source ->> 'file'))",
]

DOWNGRADE = [
    "DROP INDEX papers_source_file",
    "DROP INDEX papers_title_key",
    "DROP INDEX papers_slug_base",
    "ALTER TABLE papers DROP COLUMN slug_n",
    "ALTER TABLE papers DROP COLUMN slug_base",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
