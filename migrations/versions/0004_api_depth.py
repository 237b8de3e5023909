"""API depth: what the search filters and sorts, and the per-paper endpoints, need.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Per-paper endpoints: cursors, batch lookups, related papers.
PAPERS_UPGRADE: list[str] = [
    # Secrets the API generates once and every worker shares (the cursor signing key);
    # PAPERS_CURSOR_SECRET, when set, is used instead and nothing is stored.
    """CREATE TABLE api_secrets (
        name text PRIMARY KEY,
        value bytea NOT NULL CHECK (length(value) >= 32),
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    # arxiv:<id> lookups ignore the version suffix (2403.06009v2 finds 2403.06009).
    """CREATE INDEX papers_arxiv_base ON papers ((regexp_replace(arxiv_id, 'v[0-9]+$', '')))""",
    # When the corpus last changed (a paper added, changed or pruned): the Last-Modified of
    # listings and topics, which max(updated_at) cannot give once papers are deleted.
    """CREATE TABLE corpus_state (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        changed_at timestamptz NOT NULL
    )""",
    "INSERT INTO corpus_state (changed_at) SELECT coalesce(max(updated_at), now()) FROM papers",
]
PAPERS_DOWNGRADE: list[str] = [
    "DROP TABLE corpus_state",
    "DROP INDEX papers_arxiv_base",
    "DROP TABLE api_secrets",
]

# Search: filters and sort orders.
SEARCH_UPGRADE: list[str] = [
    # The `author` filter compares names without case, accents or extra spaces. A SQL-standard
    # body binds `unaccent` and its dictionary now, so the function does not depend on the
    # search_path at query time and can back an index.
    r"""CREATE FUNCTION paper_author_keys(names text[]) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        RETURN ARRAY(
            SELECT lower(regexp_replace(btrim(unaccent('unaccent'::regdictionary, n)), '\s+', ' ', 'g'))
            FROM unnest(names) AS n
        )""",
    "CREATE INDEX papers_author_keys ON papers USING gin (paper_author_keys(authors))",
    # published_from / published_to.
    "CREATE INDEX papers_published ON papers (published)",
    # GET /v1/suggest matches titles only: a title-only index keeps abstracts out of its way.
    """CREATE INDEX papers_title_search ON papers
       USING gin (to_tsvector('papers_english'::regconfig, title))""",
    # Completions of the word being typed, as a range scan whatever the database collation.
    "CREATE INDEX search_terms_prefix ON search_terms (term text_pattern_ops)",
]
SEARCH_DOWNGRADE: list[str] = [
    "DROP INDEX search_terms_prefix",
    "DROP INDEX papers_title_search",
    "DROP INDEX papers_published",
    "DROP INDEX papers_author_keys",
    "DROP FUNCTION paper_author_keys(text[])",
]


def upgrade() -> None:
    for statement in [*PAPERS_UPGRADE, *SEARCH_UPGRADE]:
        op.execute(statement)


def downgrade() -> None:
    for statement in [*SEARCH_DOWNGRADE, *PAPERS_DOWNGRADE]:
        op.execute(statement)
