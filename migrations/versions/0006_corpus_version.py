"""Corpus version: a counter bumped by every transaction that writes papers, their topics or
the taxonomy, whoever writes them (loads, scripts, psql). The API keeps answers computed from
the corpus (search results, topic counts) until it moves (service/cache.py).

Statement-level triggers bump it at most once per transaction (a transaction-local setting
remembers it), so a load of many batches adds one row version, not one per statement.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("papers", "paper_topics", "topics")

UPGRADE: list[str] = [
    "ALTER TABLE corpus_state ADD COLUMN version bigint NOT NULL DEFAULT 0",
    """CREATE FUNCTION bump_corpus_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('papers.corpus_version_bumped', true) IS DISTINCT FROM 'on' THEN
            UPDATE corpus_state SET version = version + 1;
            PERFORM set_config('papers.corpus_version_bumped', 'on', true);
        END IF;
        RETURN NULL;
    END $$""",
    *(
        f"""CREATE TRIGGER {table}_bump_corpus_version
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION bump_corpus_version()"""
        for table in TABLES
    ),
]
DOWNGRADE: list[str] = [
    *(f"DROP TRIGGER {table}_bump_corpus_version ON {table}" for table in TABLES),
    "DROP FUNCTION bump_corpus_version()",
    "ALTER TABLE corpus_state DROP COLUMN version",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
