"""The connection pool and every SQL statement for papers and topics.

Each query is a module-level function taking the connection first, with `$n` parameters
only. The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, LiteralString, TypeAlias

import asyncpg
import msgspec

from service.models import Paper, Topic

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:  # asyncpg's classes are not generic at run time; Litestar resolves these annotations
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool

TS_CONFIG: Final = "papers_english"


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def _init_connection(conn: Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A pool whose connections decode JSON with msgspec."""
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30
    )
    if pool is None:  # only when created without being awaited
        raise RuntimeError("asyncpg returned no pool")
    return pool


async def connect(url: str) -> Connection:
    """One connection, with the same codecs as the pool's."""
    conn: Connection = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


# --- reading papers -------------------------------------------------------------------------

PAPER_COLUMNS: Final[LiteralString] = """
    p.id, p.title, p.abstract, p.authors, p.published, p.arxiv_id, p.links, p.source,
    p.created_at, p.updated_at,
    coalesce((
        SELECT jsonb_agg(jsonb_build_object('slug', t.slug, 'label', t.label) ORDER BY pt.rank)
        FROM paper_topics pt JOIN topics t ON t.slug = pt.topic_slug
        WHERE pt.paper_id = p.id
    ), '[]'::jsonb) AS topics
"""


def to_paper(record: asyncpg.Record) -> Paper:
    """A papers row (selected with PAPER_COLUMNS) as the API's Paper."""
    return msgspec.convert(
        {key: record[key] for key in Paper.__struct_fields__}, Paper, from_attributes=False
    )


async def get_paper(conn: Connection, paper_id: str) -> Paper | None:
    """One paper by id."""
    record = await conn.fetchrow(f"SELECT {PAPER_COLUMNS} FROM papers p WHERE p.id = $1", paper_id)
    return None if record is None else to_paper(record)


async def get_papers(conn: Connection, paper_ids: Sequence[str]) -> list[Paper]:
    """Papers by id, in the order asked; unknown ids are left out."""
    records = await conn.fetch(
        f"""SELECT {PAPER_COLUMNS}
            FROM unnest($1::text[]) WITH ORDINALITY AS wanted(id, n)
            JOIN papers p ON p.id = wanted.id
            ORDER BY wanted.n""",
        list(paper_ids),
    )
    return [to_paper(r) for r in records]


async def list_papers(
    conn: Connection, *, topic: str | None, after_id: str | None, limit: int
) -> list[Paper]:
    """A page of papers in id order, after `after_id` (keyset pagination)."""
    records = await conn.fetch(
        f"""SELECT {PAPER_COLUMNS} FROM papers p
            WHERE ($1::text IS NULL OR p.id > $1)
              AND ($2::text IS NULL OR EXISTS (
                    SELECT 1 FROM paper_topics pt WHERE pt.paper_id = p.id AND pt.topic_slug = $2))
            ORDER BY p.id
            LIMIT $3""",
        after_id,
        topic,
        limit,
    )
    return [to_paper(r) for r in records]


async def count_papers(conn: Connection) -> int:
    """How many papers there are."""
    count: int = await conn.fetchval("SELECT count(*) FROM papers")
    return count


# --- topics ---------------------------------------------------------------------------------


async def list_topics(conn: Connection) -> list[Topic]:
    """Every topic in taxonomy order, with how many papers carry it."""
    records = await conn.fetch(
        """SELECT t.slug, t.label, t.description, count(pt.paper_id)::int AS count
           FROM topics t LEFT JOIN paper_topics pt ON pt.topic_slug = t.slug
           GROUP BY t.slug ORDER BY t.position"""
    )
    return [Topic(r["slug"], r["label"], r["description"], r["count"]) for r in records]


async def topic_slugs(conn: Connection) -> set[str]:
    """The slugs of every topic in the taxonomy."""
    return {r["slug"] for r in await conn.fetch("SELECT slug FROM topics")}


async def sync_topics(conn: Connection, topics: Sequence[tuple[str, str, str]]) -> None:
    """Make the topics table hold exactly these (slug, label, description) rows, in order.

    A topic that papers still carry is not deleted: the foreign key refuses it, and the
    load fails with PostgreSQL's message naming the topic.
    """
    await conn.executemany(
        """INSERT INTO topics (slug, label, description, position) VALUES ($1, $2, $3, $4)
           ON CONFLICT (slug) DO UPDATE
           SET label = excluded.label, description = excluded.description,
               position = excluded.position""",
        [(slug, label, description, n) for n, (slug, label, description) in enumerate(topics)],
    )
    await conn.execute(
        "DELETE FROM topics WHERE NOT (slug = ANY($1::text[]))", [slug for slug, _, _ in topics]
    )


# --- loader writes --------------------------------------------------------------------------

LOAD_LOCK_ID: Final = 0x6C6F6164  # "load": one loader at a time


async def lock_for_load(conn: Connection) -> None:
    """Serialise loads: wait for any other load's transaction to finish."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOAD_LOCK_ID)


async def find_existing(
    conn: Connection, arxiv_ids: Sequence[str], title_keys: Sequence[str]
) -> list[asyncpg.Record]:
    """Existing papers known by one of these arXiv ids, or (without an arXiv id) title keys."""
    return await conn.fetch(
        """SELECT id, arxiv_id, title_key, content_hash FROM papers
           WHERE arxiv_id = ANY($1::text[])
              OR (arxiv_id IS NULL AND title_key = ANY($2::text[]))""",
        list(arxiv_ids),
        list(title_keys),
    )


async def taken_ids(conn: Connection, candidates: Sequence[str]) -> set[str]:
    """Which of these ids, or their numbered variants (`id-2`, `id-3`…), are already used."""
    records = await conn.fetch(
        r"""SELECT p.id FROM papers p, unnest($1::text[]) AS c(id)
            WHERE p.id = c.id OR p.id ~ ('^' || c.id || '-[0-9]+$')""",
        list(candidates),
    )
    return {r["id"] for r in records}


PaperRow = tuple[str, str, str, str, list[str], date | None, str | None, Any, Any, str]


async def insert_papers(conn: Connection, rows: Sequence[PaperRow]) -> None:
    """Insert new papers: (id, title, title_key, abstract, authors, published, arxiv_id,
    links, source, content_hash)."""
    await conn.executemany(
        """INSERT INTO papers (id, title, title_key, abstract, authors, published, arxiv_id,
                               links, source, content_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        rows,
    )


async def update_papers(conn: Connection, rows: Sequence[PaperRow]) -> None:
    """Overwrite changed papers' content (same tuple shape as insert); updated_at moves."""
    await conn.executemany(
        """UPDATE papers SET title = $2, title_key = $3, abstract = $4, authors = $5,
                  published = $6, arxiv_id = $7, links = $8, source = $9, content_hash = $10,
                  updated_at = now()
           WHERE id = $1""",
        rows,
    )


async def replace_paper_topics(
    conn: Connection, paper_ids: Sequence[str], rows: Sequence[tuple[str, str, int, float, str]]
) -> None:
    """Replace these papers' topics with (paper_id, slug, rank, score, method) rows."""
    await conn.execute("DELETE FROM paper_topics WHERE paper_id = ANY($1::text[])", list(paper_ids))
    await conn.executemany(
        """INSERT INTO paper_topics (paper_id, topic_slug, rank, score, method)
           VALUES ($1, $2, $3, $4, $5)""",
        rows,
    )


async def add_search_terms(conn: Connection, paper_ids: Sequence[str]) -> None:
    """Record the words of these papers for typo and prefix expansion of queries."""
    await conn.execute(
        """INSERT INTO search_terms (term)
           SELECT DISTINCT w
           FROM papers p,
                regexp_split_to_table(lower(unaccent(p.title || ' ' || p.abstract)), '[^a-z0-9]+') AS w
           WHERE p.id = ANY($1::text[]) AND char_length(w) BETWEEN 3 AND 40
           ON CONFLICT DO NOTHING""",
        list(paper_ids),
    )


# --- the search outbox -----------------------------------------------------------------------


async def queue_for_index(conn: Connection, paper_ids: Sequence[str]) -> None:
    """Queue papers (changed or deleted) for the search index, in the caller's transaction."""
    await conn.execute(
        """INSERT INTO search_outbox (paper_id) SELECT unnest($1::text[])
           ON CONFLICT (paper_id) DO UPDATE SET queued_at = now()""",
        list(paper_ids),
    )


async def outbox_batch(conn: Connection, after: str, limit: int) -> list[tuple[str, bool]]:
    """Queued (paper_id, still_exists) pairs in id order, after `after`."""
    records = await conn.fetch(
        """SELECT o.paper_id, (p.id IS NOT NULL) AS exists
           FROM search_outbox o LEFT JOIN papers p ON p.id = o.paper_id
           WHERE o.paper_id > $1 ORDER BY o.paper_id LIMIT $2""",
        after,
        limit,
    )
    return [(r["paper_id"], r["exists"]) for r in records]


async def unqueue(conn: Connection, paper_ids: Sequence[str], queued_before: datetime) -> None:
    """Drop these papers from the outbox unless they were queued again after `queued_before`."""
    await conn.execute(
        "DELETE FROM search_outbox WHERE paper_id = ANY($1::text[]) AND queued_at <= $2",
        list(paper_ids),
        queued_before,
    )


async def unqueue_all(conn: Connection, queued_before: datetime) -> None:
    """Empty the outbox of everything queued before a reindex started."""
    await conn.execute("DELETE FROM search_outbox WHERE queued_at <= $1", queued_before)


async def now(conn: Connection) -> datetime:
    """The database's clock (the outbox's timestamps come from it)."""
    value: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return value


# --- full-text search (the PostgreSQL engine) -----------------------------------------------
# $1 is the user's query for websearch_to_tsquery; $2 an optional expanded tsquery (typo and
# prefix alternatives) that replaces it for matching. Exact matches always rank first.

_MATCH: Final[LiteralString] = """
    WITH q AS (
        SELECT websearch_to_tsquery('papers_english', $1) AS exact,
               coalesce(to_tsquery('papers_english', $2), websearch_to_tsquery('papers_english', $1))
                   AS query
    )
"""
_TOPIC_FILTER: Final[LiteralString] = """
    ($3::text[] IS NULL OR EXISTS (
        SELECT 1 FROM paper_topics pt WHERE pt.paper_id = p.id AND pt.topic_slug = ANY($3::text[])))
"""
_BROWSE_TOPIC_FILTER: Final[LiteralString] = """
    ($1::text[] IS NULL OR EXISTS (
        SELECT 1 FROM paper_topics pt WHERE pt.paper_id = p.id AND pt.topic_slug = ANY($1::text[])))
"""
_TITLE_HEADLINE: Final[LiteralString] = "'HighlightAll=true, StartSel=<mark>, StopSel=</mark>'"
_ABSTRACT_HEADLINE: Final[LiteralString] = (
    '\'MaxFragments=2, MaxWords=30, MinWords=15, FragmentDelimiter=" … ", '
    "StartSel=<mark>, StopSel=</mark>'"
)


async def count_exact_matches(conn: Connection, q: str) -> int:
    """How many papers match the query's own words (no typo or prefix expansion)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM papers p WHERE p.search_vector @@ websearch_to_tsquery('papers_english', $1)",
        q,
    )
    return count


async def similar_terms(
    conn: Connection, words: Sequence[str], per_word: int
) -> dict[str, list[str]]:
    """For each word, the indexed words closest to it by trigram similarity, best first."""
    records = await conn.fetch(
        """SELECT w.word, coalesce(array_agg(c.term ORDER BY c.sim DESC, c.term)
                                   FILTER (WHERE c.term IS NOT NULL), '{}') AS terms
           FROM unnest($1::text[]) AS w(word)
           LEFT JOIN LATERAL (
               SELECT t.term, similarity(t.term, w.word) AS sim
               FROM search_terms t WHERE t.term % w.word
               ORDER BY sim DESC, t.term LIMIT $2
           ) c ON true
           GROUP BY w.word""",
        list(words),
        per_word,
    )
    return {r["word"]: list(r["terms"]) for r in records}


async def search_page(
    conn: Connection,
    q: str,
    expanded: str | None,
    topics: list[str] | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """A page of matching papers, best first, with highlighted title and abstract."""
    return await conn.fetch(
        f"""{_MATCH},
        page AS (
            SELECT p.id, (p.search_vector @@ q.exact) AS exact,
                   ts_rank_cd('{{0.1, 0.2, 0.4, 1.0}}', p.search_vector, q.query, 1) AS rank
            FROM papers p, q
            WHERE p.search_vector @@ q.query AND {_TOPIC_FILTER}
            ORDER BY exact DESC, rank DESC, p.id
            LIMIT $4 OFFSET $5
        )
        SELECT {PAPER_COLUMNS},
               ts_headline('papers_english', p.title, q.query, {_TITLE_HEADLINE}) AS highlight_title,
               ts_headline('papers_english', p.abstract, q.query, {_ABSTRACT_HEADLINE})
                   AS highlight_abstract
        FROM page JOIN papers p ON p.id = page.id, q
        ORDER BY page.exact DESC, page.rank DESC, p.id""",
        q,
        expanded,
        topics,
        limit,
        offset,
    )


async def search_total(
    conn: Connection, q: str, expanded: str | None, topics: list[str] | None
) -> int:
    """How many papers match, with the topic filter."""
    total: int = await conn.fetchval(
        f"""{_MATCH}
        SELECT count(*) FROM papers p, q WHERE p.search_vector @@ q.query AND {_TOPIC_FILTER}""",
        q,
        expanded,
        topics,
    )
    return total


async def search_topic_facets(conn: Connection, q: str, expanded: str | None) -> dict[str, int]:
    """Papers matching the query per topic, without the topic filter (disjunctive facets)."""
    records = await conn.fetch(
        f"""{_MATCH}
        SELECT pt.topic_slug AS slug, count(*)::int AS n
        FROM papers p JOIN paper_topics pt ON pt.paper_id = p.id, q
        WHERE p.search_vector @@ q.query
        GROUP BY pt.topic_slug""",
        q,
        expanded,
    )
    return {r["slug"]: r["n"] for r in records}


async def browse_page(
    conn: Connection, topics: list[str] | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    """A page of every paper (optionally within topics), in id order, for an empty query."""
    return await conn.fetch(
        f"""SELECT {PAPER_COLUMNS} FROM papers p WHERE {_BROWSE_TOPIC_FILTER}
            ORDER BY p.id LIMIT $2 OFFSET $3""",
        topics,
        limit,
        offset,
    )


async def browse_total(conn: Connection, topics: list[str] | None) -> int:
    """How many papers there are (optionally within topics)."""
    total: int = await conn.fetchval(
        f"SELECT count(*) FROM papers p WHERE {_BROWSE_TOPIC_FILTER}", topics
    )
    return total


async def browse_topic_facets(conn: Connection) -> dict[str, int]:
    """Papers per topic over the whole corpus."""
    records = await conn.fetch(
        "SELECT topic_slug AS slug, count(*)::int AS n FROM paper_topics GROUP BY topic_slug"
    )
    return {r["slug"]: r["n"] for r in records}
