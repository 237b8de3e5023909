"""The connection pool and every SQL statement for papers and topics.

Each query is a module-level function taking the connection first, with `$n` parameters
only. The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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


JSONB_VERSION: Final = b"\x01"  # jsonb's binary format: a version byte, then the JSON text


def _encode_jsonb(value: Any) -> bytes:
    return JSONB_VERSION + msgspec.json.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def _init_connection(conn: Connection) -> None:
    # Binary codecs: msgspec does the JSON work, and binary COPY (the loader) can carry jsonb.
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json",
        encoder=msgspec.json.encode,
        decoder=msgspec.json.decode,
        schema="pg_catalog",
        format="binary",
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


async def count_papers_at_most(conn: Connection, limit: int) -> int:
    """min(number of papers, limit + 1): a cheap "is the table empty / small" check."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM papers LIMIT $1 + 1) AS first_rows", limit
    )
    return count


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
# A load stages each batch in temporary tables with COPY, then merges it with set-based SQL.

LOAD_LOCK_ID: Final = 0x6C6F6164  # "load": one loader at a time

PAPER_COPY_COLUMNS: Final = (
    "id", "title", "title_key", "abstract", "authors", "published", "arxiv_id", "links",
    "source", "content_hash", "slug_base", "slug_n",
)  # fmt: skip
TOPIC_COPY_COLUMNS: Final = ("paper_id", "topic_slug", "rank", "score", "method")

_CREATE_STAGING: Final[tuple[LiteralString, ...]] = (
    """CREATE TEMP TABLE load_changed (
        id text NOT NULL, title text NOT NULL, title_key text NOT NULL, abstract text NOT NULL,
        authors text[] NOT NULL, published date, arxiv_id text, links jsonb NOT NULL,
        source jsonb NOT NULL, content_hash text NOT NULL, slug_base text NOT NULL,
        slug_n integer NOT NULL
    ) ON COMMIT DROP""",
    "CREATE TEMP TABLE load_terms (term text NOT NULL) ON COMMIT DROP",
    "CREATE TEMP TABLE load_seen (id text NOT NULL) ON COMMIT DROP",
)

_UPDATE_CHANGED: Final[tuple[LiteralString, ...]] = (
    """UPDATE papers p
       SET title = s.title, title_key = s.title_key, abstract = s.abstract, authors = s.authors,
           published = s.published, arxiv_id = s.arxiv_id, links = s.links, source = s.source,
           content_hash = s.content_hash, updated_at = now()
       FROM load_changed s WHERE p.id = s.id""",
    "DELETE FROM paper_topics pt USING load_changed s WHERE pt.paper_id = s.id",
    "TRUNCATE load_changed",
)
_ADD_TERMS: Final[tuple[LiteralString, ...]] = (
    "INSERT INTO search_terms (term) SELECT DISTINCT term FROM load_terms ON CONFLICT DO NOTHING",
    "TRUNCATE load_terms",
)


async def try_lock_for_load(conn: Connection) -> bool:
    """Take the load lock for this transaction if it is free."""
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOAD_LOCK_ID)
    return taken


async def load_lock_holder(conn: Connection) -> int | None:
    """The backend pid holding the load lock, if any."""
    pid: int | None = await conn.fetchval(
        """SELECT pid FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objid = $1 AND pid <> pg_backend_pid()
           LIMIT 1""",
        LOAD_LOCK_ID,
    )
    return pid


async def lock_for_load(conn: Connection) -> None:
    """Serialise loads and reindexes: wait for any other one's transaction to finish."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", LOAD_LOCK_ID)


async def create_staging(conn: Connection) -> None:
    """The temporary tables one load stages its batches in (dropped at commit)."""
    for statement in _CREATE_STAGING:
        await conn.execute(statement)


async def find_matches(
    conn: Connection, arxiv_ids: Sequence[str], title_keys: Sequence[str]
) -> list[asyncpg.Record]:
    """Papers known by one of these arXiv ids or title keys: (id, arxiv_id, title_key, hash)."""
    return await conn.fetch(
        """SELECT id, arxiv_id, title_key, content_hash FROM papers
           WHERE arxiv_id = ANY($1::text[])
           UNION
           SELECT id, arxiv_id, title_key, content_hash FROM papers
           WHERE title_key = ANY($2::text[])""",
        list(arxiv_ids),
        list(title_keys),
    )


async def slug_counters(conn: Connection, bases: Sequence[str]) -> dict[str, int]:
    """For each slug base already used, the highest N of its ids."""
    records = await conn.fetch(
        """SELECT slug_base, max(slug_n) AS n FROM papers
           WHERE slug_base = ANY($1::text[]) GROUP BY slug_base""",
        list(bases),
    )
    return {r["slug_base"]: r["n"] for r in records}


async def existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of these ids are taken (ids from before slug bookkeeping may not follow it)."""
    return {
        r["id"]
        for r in await conn.fetch("SELECT id FROM papers WHERE id = ANY($1::text[])", list(ids))
    }


async def merge_batch(
    conn: Connection,
    new: Sequence[tuple[Any, ...]],
    changed: Sequence[tuple[Any, ...]],
    topics: Sequence[tuple[Any, ...]],
    terms: Sequence[str],
    *,
    queue: bool = True,
) -> None:
    """Write one batch: new papers are COPYed straight into `papers`; changed ones go through a
    staging table and one UPDATE; their topics are replaced; terms and the outbox follow.

    Rows are in PAPER_COPY_COLUMNS order; topics in TOPIC_COPY_COLUMNS order.
    """
    if new:
        await conn.copy_records_to_table("papers", records=new, columns=PAPER_COPY_COLUMNS)
    if changed:
        await conn.copy_records_to_table(
            "load_changed", records=changed, columns=PAPER_COPY_COLUMNS
        )
        for statement in _UPDATE_CHANGED:
            await conn.execute(statement)
    if topics:
        await conn.copy_records_to_table("paper_topics", records=topics, columns=TOPIC_COPY_COLUMNS)
    if terms:
        await conn.copy_records_to_table(
            "load_terms", records=[(t,) for t in terms], columns=("term",)
        )
        for statement in _ADD_TERMS:
            await conn.execute(statement)
    if queue:
        await queue_for_index(conn, [row[0] for row in (*new, *changed)])


async def mark_seen(conn: Connection, ids: Sequence[str]) -> None:
    """Remember papers this load had (for --prune)."""
    await conn.copy_records_to_table("load_seen", records=[(i,) for i in ids], columns=("id",))


async def prune_source(conn: Connection, source_file: str) -> list[str]:
    """Delete papers last loaded from this file that this load did not have; return their ids."""
    records = await conn.fetch(
        """DELETE FROM papers p
           WHERE p.source ->> 'file' = $1
             AND NOT EXISTS (SELECT 1 FROM load_seen s WHERE s.id = p.id)
           RETURNING p.id""",
        source_file,
    )
    return [r["id"] for r in records]


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
