"""Initial schema: papers, topics, paper_topics, search terms, full-text and trigram indexes.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    # English stemming after accent folding; the two-argument to_tsvector with a fixed
    # configuration is immutable, so it can feed a generated column.
    "CREATE TEXT SEARCH CONFIGURATION papers_english (COPY = pg_catalog.english)",
    """ALTER TEXT SEARCH CONFIGURATION papers_english
       ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem""",
    """CREATE TABLE topics (
        slug text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
        label text NOT NULL CHECK (label <> ''),
        description text NOT NULL,
        position integer NOT NULL
    )""",
    """CREATE TABLE papers (
        id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]*$' AND char_length(id) <= 200),
        title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 1000),
        title_key text NOT NULL,
        abstract text NOT NULL CHECK (char_length(abstract) BETWEEN 1 AND 100000),
        authors text[] NOT NULL DEFAULT '{}',
        published date,
        arxiv_id text UNIQUE,
        links jsonb NOT NULL DEFAULT '{}',
        source jsonb NOT NULL,
        content_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        search_vector tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('papers_english'::regconfig, title), 'A')
            || setweight(to_tsvector('papers_english'::regconfig, abstract), 'B')
        ) STORED
    )""",
    # Without an arXiv id, a paper is known by its normalised title.
    "CREATE UNIQUE INDEX papers_title_key_no_arxiv ON papers (title_key) WHERE arxiv_id IS NULL",
    "CREATE INDEX papers_search_vector ON papers USING gin (search_vector)",
    "CREATE INDEX papers_title_trgm ON papers USING gin (lower(title) gin_trgm_ops)",
    """CREATE TABLE paper_topics (
        paper_id text NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
        topic_slug text NOT NULL REFERENCES topics (slug) ON UPDATE CASCADE,
        rank smallint NOT NULL,
        score real NOT NULL,
        method text NOT NULL,
        PRIMARY KEY (paper_id, topic_slug)
    )""",
    "CREATE INDEX paper_topics_topic ON paper_topics (topic_slug, paper_id)",
    # Every word of every title and abstract, for typo and prefix expansion of queries.
    "CREATE TABLE search_terms (term text PRIMARY KEY)",
    "CREATE INDEX search_terms_trgm ON search_terms USING gin (term gin_trgm_ops)",
]

DOWNGRADE = [
    "DROP TABLE search_terms",
    "DROP TABLE paper_topics",
    "DROP TABLE papers",
    "DROP TABLE topics",
    "DROP TEXT SEARCH CONFIGURATION papers_english",
    "DROP EXTENSION IF EXISTS unaccent",
    "DROP EXTENSION IF EXISTS pg_trgm",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
