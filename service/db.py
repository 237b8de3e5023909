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

from service.models import Paper, RelatedPaper, Topic

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


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, statement_timeout_ms: int | None = None
) -> Pool:
    """A pool whose connections decode JSON with msgspec; with `statement_timeout_ms`, the
    server cancels any statement running longer (asyncpg.QueryCanceledError)."""
    server_settings = {}
    if statement_timeout_ms is not None:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    # The client-side timeout is only a backstop for a server that stops answering.
    command_timeout = max(30.0, (statement_timeout_ms or 0) / 1000 + 5)
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=command_timeout,
        server_settings=server_settings,
    )
    if pool is None:  # only when created without being awaited
        raise RuntimeError("asyncpg returned no pool")
    return pool


async def _keep_session(conn: Connection) -> None:
    """Nothing to reset on release: the API leaves no session state behind. Its settings come
    with the connection (server_settings), and cursors and advisory locks live in transactions,
    which asyncpg rolls back before calling this. asyncpg's default reset (RESET ALL, CLOSE
    ALL, UNLISTEN *, pg_advisory_unlock_all()) costs a round trip per request: a fifth of the
    per-paper throughput (bench/RESULTS.md)."""


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
        SELECT jsonb_agg(jsonb_build_object(
                   'slug', t.slug, 'label', t.label, 'score', pt.score, 'method', pt.method
               ) ORDER BY pt.rank)
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


# arXiv ids are looked up without their version suffix (index papers_arxiv_base, 0004).
_ARXIV_BASE: Final[LiteralString] = "regexp_replace(p.arxiv_id, 'v[0-9]+$', '')"


PAPER_BY_ARXIV: Final[LiteralString] = f"""
    SELECT {PAPER_COLUMNS} FROM papers p WHERE {_ARXIV_BASE} = $1
    ORDER BY p.arxiv_id = $2 DESC, p.id LIMIT 1"""


async def get_paper_by_arxiv(conn: Connection, base: str, asked: str) -> Paper | None:
    """The paper with this arXiv id in any version (`base` has none); `asked` exactly wins."""
    record = await conn.fetchrow(PAPER_BY_ARXIV, base, asked)
    return None if record is None else to_paper(record)


async def find_papers(
    conn: Connection,
    slugs: Sequence[str | None],
    arxiv_bases: Sequence[str | None],
    arxiv_asked: Sequence[str | None],
) -> dict[int, Paper]:
    """Papers for a batch of keys, by 0-based position: position i is `slugs[i]` when set, else
    the arXiv id `arxiv_bases[i]` (version stripped; `arxiv_asked[i]` exactly wins)."""
    records = await conn.fetch(
        f"""WITH wanted AS (
                SELECT w.slug, w.base, w.asked, (w.n - 1)::int AS i
                FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
                    AS w(slug, base, asked, n)
            ),
            found AS (
                SELECT w.i, p.id FROM wanted w JOIN papers p ON p.id = w.slug
                UNION ALL
                (SELECT DISTINCT ON (w.i) w.i, p.id
                 FROM wanted w JOIN papers p ON {_ARXIV_BASE} = w.base
                 ORDER BY w.i, p.arxiv_id = w.asked DESC, p.id)
            )
            SELECT found.i, {PAPER_COLUMNS} FROM found JOIN papers p ON p.id = found.id""",
        list(slugs),
        list(arxiv_bases),
        list(arxiv_asked),
    )
    return {r["i"]: to_paper(r) for r in records}


# Keyset listings: `WHERE id > $after ORDER BY id LIMIT n` walks an index from the cursor on,
# so a deep page costs what the first does (tests/test_papers_api.py checks these plans on
# 20,000 papers):
#   LIST_PAPERS:       Limit -> Index Scan using papers_pkey on papers p (Index Cond: id > $1)
#   LIST_TOPIC_PAPERS: Limit -> Nested Loop
#                        -> Index Only Scan using paper_topics_topic on paper_topics pt
#                             (Index Cond: topic_slug = $1 AND paper_id > $2)
#                        -> Index Scan using papers_pkey on papers p (Index Cond: id = pt.paper_id)
LIST_PAPERS: Final[LiteralString] = f"""
    SELECT {PAPER_COLUMNS} FROM papers p WHERE p.id > $1 ORDER BY p.id LIMIT $2"""
LIST_TOPIC_PAPERS: Final[LiteralString] = f"""
    SELECT {PAPER_COLUMNS} FROM paper_topics pt JOIN papers p ON p.id = pt.paper_id
    WHERE pt.topic_slug = $1 AND pt.paper_id > $2 ORDER BY pt.paper_id LIMIT $3"""


async def list_papers(conn: Connection, *, after_id: str, limit: int) -> list[Paper]:
    """Papers in id order after `after_id` ('' for the first page)."""
    return [to_paper(r) for r in await conn.fetch(LIST_PAPERS, after_id, limit)]


async def list_topic_papers(
    conn: Connection, topic: str, *, after_id: str, limit: int
) -> list[Paper]:
    """Papers carrying `topic`, in id order after `after_id` ('' for the first page)."""
    return [to_paper(r) for r in await conn.fetch(LIST_TOPIC_PAPERS, topic, after_id, limit)]


async def count_topic_papers(conn: Connection, topic: str) -> int:
    """How many papers carry `topic`."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM paper_topics WHERE topic_slug = $1", topic
    )
    return count


EXPORT_PAPERS: Final[LiteralString] = f"SELECT {PAPER_COLUMNS} FROM papers p ORDER BY p.id"
"""Every paper in id order, read through a server-side cursor by the export."""


# --- related papers -------------------------------------------------------------------------
# Candidates share a topic with the paper, or one of its distinctive terms: its lexemes (title
# and abstract, stemmed) found in at least 2 papers and at most RELATED_MAX_TERM_FREQ of them,
# weighted tf-idf style, (1 + ln tf) * ln(1 / freq), doubled for title words; the top
# RELATED_TERMS are used. A lexeme's corpus frequency comes from the planner's statistics on
# search_vector (pg_stats.most_common_elems, kept by ANALYZE and autovacuum); a lexeme not
# listed there is rare, and its papers are counted through the GIN index (cheap, being rare).
#   topic_score = sum over shared topics of min(score here, score there) / sum of scores here
#   term_score  = weight of the shared terms / weight of all the terms used
#   score       = round(0.4 * topic_score + 0.6 * term_score, 4); ties broken by id.
# Lexemes are letters, digits and hyphens only, so quoting one as a tsquery needs no escaping.

RELATED_TERMS: Final = 16
RELATED_MAX_TERM_FREQ: Final = 0.25
RELATED_TOPIC_WEIGHT: Final = 0.4

_RELATED: Final[LiteralString] = """
    WITH stats AS MATERIALIZED (
        SELECT s.most_common_elems::text::text[] AS elems, s.most_common_elem_freqs AS freqs
        FROM pg_stats s
        WHERE s.schemaname = current_schema() AND s.tablename = 'papers'
          AND s.attname = 'search_vector' AND NOT s.inherited
    ),
    corpus AS (
        SELECT coalesce(nullif(greatest(c.reltuples, 0), 0), (SELECT count(*) FROM papers)) AS n
        FROM pg_class c WHERE c.oid = 'papers'::regclass
    ),
    lexemes AS (
        SELECT u.lexeme, 'A' = ANY(u.weights) AS in_title, cardinality(u.positions) AS tf,
               st.freqs[array_position(st.elems, u.lexeme)] AS freq,
               '''' || u.lexeme || '''' AS quoted
        FROM papers me CROSS JOIN unnest(me.search_vector) AS u(lexeme, positions, weights)
        LEFT JOIN stats st ON true
        WHERE me.id = $1 AND u.lexeme ~ '^[[:alpha:]][[:alnum:]-]+$'
    ),
    terms AS (
        SELECT l.lexeme, l.quoted,
               (1 + ln(l.tf)) * ln(1 / coalesce(l.freq, counted.df / corpus.n))
                   * CASE WHEN l.in_title THEN 2 ELSE 1 END AS weight
        FROM lexemes l CROSS JOIN corpus
        LEFT JOIN LATERAL (
            SELECT count(*)::float8 AS df FROM papers c
            WHERE l.freq IS NULL AND c.search_vector @@ l.quoted::tsquery
        ) counted ON true
        WHERE coalesce(l.freq, 0) <= $4::float8 AND (l.freq IS NOT NULL OR counted.df >= 2)
        ORDER BY weight DESC, l.lexeme
        LIMIT $5
    ),
    term_hits AS (
        SELECT c.id, s.weight / (SELECT sum(weight) FROM terms) AS term_score, s.shared
        FROM papers c
        CROSS JOIN LATERAL (
            SELECT sum(t.weight) AS weight,
                   array_agg(t.lexeme ORDER BY t.weight DESC, t.lexeme) AS shared
            FROM terms t WHERE c.search_vector @@ t.quoted::tsquery
        ) s
        WHERE c.search_vector @@ (SELECT string_agg(quoted, ' | ')::tsquery FROM terms)
          AND c.id <> $1
    ),
    my_topics AS (
        SELECT pt.topic_slug, pt.score FROM paper_topics pt WHERE pt.paper_id = $1
    ),
    topic_hits AS (
        SELECT pt.paper_id AS id,
               sum(least(pt.score, m.score)) / (SELECT sum(score) FROM my_topics) AS topic_score,
               array_agg(pt.topic_slug ORDER BY m.score DESC, pt.topic_slug) AS shared
        FROM my_topics m JOIN paper_topics pt ON pt.topic_slug = m.topic_slug
        WHERE pt.paper_id <> $1
        GROUP BY pt.paper_id
    ),
    scored AS (
        SELECT coalesce(th.id, tp.id) AS id,
               coalesce(tp.topic_score, 0) AS topic_score,
               coalesce(th.term_score, 0) AS term_score,
               coalesce(tp.shared, '{}') AS shared_topics,
               coalesce(th.shared, '{}') AS shared_lexemes
        FROM term_hits th FULL JOIN topic_hits tp ON tp.id = th.id
    ),
    ranked AS (
        SELECT s.*,
               round(($6::float8 * s.topic_score + (1 - $6::float8) * s.term_score)::numeric, 4)::float8
                   AS score
        FROM scored s
        WHERE $3::text[] IS NULL OR EXISTS (
            SELECT 1 FROM paper_topics f
            WHERE f.paper_id = s.id AND f.topic_slug = ANY($3::text[]))
        ORDER BY score DESC, s.id
        LIMIT $2
    ),
    words AS (  -- each term as first written in the paper (title, then abstract)
        SELECT DISTINCT ON (l.lexeme) l.lexeme, lower(d.token) AS word
        FROM papers me,
             ts_debug('papers_english', me.title || ' ' || me.abstract) WITH ORDINALITY
                 AS d(alias, description, token, dictionaries, dictionary, lexemes, n),
             unnest(d.lexemes) AS l(lexeme)
        WHERE me.id = $1 AND l.lexeme IN (SELECT lexeme FROM terms)
        ORDER BY l.lexeme, d.n
    )
"""


async def related_papers(
    conn: Connection, paper_id: str, *, topics: list[str] | None, limit: int
) -> list[RelatedPaper]:
    """The papers most related to `paper_id` (optionally only those with one of `topics`),
    best first, with their score and reason."""
    records = await conn.fetch(
        f"""{_RELATED}
        SELECT {PAPER_COLUMNS}, r.score,
               round(r.topic_score::numeric, 4)::float8 AS topic_score,
               round(r.term_score::numeric, 4)::float8 AS term_score,
               r.shared_topics,
               ARRAY(SELECT coalesce(w.word, x.lexeme)
                     FROM unnest(r.shared_lexemes) WITH ORDINALITY AS x(lexeme, n)
                     LEFT JOIN words w ON w.lexeme = x.lexeme
                     ORDER BY x.n) AS shared_terms
        FROM ranked r JOIN papers p ON p.id = r.id
        ORDER BY r.score DESC, r.id""",
        paper_id,
        limit,
        topics,
        RELATED_MAX_TERM_FREQ,
        RELATED_TERMS,
        RELATED_TOPIC_WEIGHT,
    )
    reason_keys = ("shared_topics", "shared_terms", "topic_score", "term_score")
    return [
        msgspec.convert(
            {key: r[key] for key in Paper.__struct_fields__}
            | {"score": r["score"], "reason": {key: r[key] for key in reason_keys}},
            RelatedPaper,
        )
        for r in records
    ]


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


# --- API secrets ----------------------------------------------------------------------------


async def shared_secret(conn: Connection, name: str, candidate: bytes) -> bytes:
    """The secret stored under `name`, storing `candidate` first when there is none: every
    process that asks, at once or later, gets the same one. Call outside a transaction."""
    await conn.execute(
        "INSERT INTO api_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name,
        candidate,
    )
    value: bytes = await conn.fetchval("SELECT value FROM api_secrets WHERE name = $1", name)
    return value


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
# Every search statement starts with the four texts of TsQueries ($1-$4; NULL browses every
# paper), then the six filters of SearchFilters ($5-$10).


class TsQueries(msgspec.Struct, frozen=True, kw_only=True):
    """The tsquery texts of a search, bound as $1-$4.

    A paper matches `match` (every term but the word being typed, with its alternatives) and,
    when a word is being typed, either `typed` (its alternatives, English stems) or
    `typed_prefix` (a `simple` prefix of the indexed stems: one letter, or a stop word, still
    matches as a prefix). `exact` holds the words as typed: exact matches rank first.
    """

    match: str | None
    exact: str
    typed: str | None = None
    typed_prefix: str | None = None

    def args(self) -> tuple[object, ...]:
        """The values of $1-$4."""
        return (self.match, self.exact, self.typed, self.typed_prefix)


class SearchFilters(msgspec.Struct, frozen=True, kw_only=True):
    """The filters of a search, bound as $5-$10 (None: not filtered)."""

    topics: list[str] | None = None
    topics_all: bool = False
    has_code: bool | None = None
    published_from: date | None = None
    published_to: date | None = None
    authors: list[str] | None = None

    def args(self) -> tuple[object, ...]:
        """The values of $5-$10."""
        return (
            self.topics,
            self.topics_all,
            self.has_code,
            self.published_from,
            self.published_to,
            self.authors,
        )


_Q_MATCH: Final[LiteralString] = """q AS (
    SELECT coalesce(to_tsquery('papers_english', $1::text), ''::tsquery)
           && coalesce(to_tsquery('papers_english', $3::text)
                       || to_tsquery('simple', $4::text), ''::tsquery) AS query,
           to_tsquery('papers_english', $2::text) AS exact)"""
_Q_BROWSE: Final[LiteralString] = (
    "q AS (SELECT $1::text AS query, $2::text AS exact, $3::text AS typed, $4::text AS prefix)"
)
_MATCHES: Final[LiteralString] = "p.search_vector @@ q.query"
_HAS_CODE: Final[LiteralString] = "(coalesce(p.links -> 'code', '[]'::jsonb) <> '[]'::jsonb)"
_TOPIC_OK: Final[LiteralString] = """($5::text[] IS NULL OR CASE WHEN $6::boolean
    THEN (SELECT count(*) FROM paper_topics pt
          WHERE pt.paper_id = p.id AND pt.topic_slug = ANY($5::text[])) = cardinality($5::text[])
    ELSE EXISTS (SELECT 1 FROM paper_topics pt
                 WHERE pt.paper_id = p.id AND pt.topic_slug = ANY($5::text[])) END)"""
_OTHER_FILTERS_OK: Final[LiteralString] = f"""($7::boolean IS NULL OR {_HAS_CODE} = $7::boolean)
    AND ($8::date IS NULL OR p.published >= $8::date)
    AND ($9::date IS NULL OR p.published <= $9::date)
    AND ($10::text[] IS NULL OR paper_author_keys(p.authors) && paper_author_keys($10::text[]))"""
_TITLE_HEADLINE: Final[LiteralString] = "'HighlightAll=true, StartSel=<mark>, StopSel=</mark>'"
# About 40 words in at most two fragments, chosen around the matches.
_ABSTRACT_HEADLINE: Final[LiteralString] = (
    '\'MaxFragments=2, MaxWords=20, MinWords=8, FragmentDelimiter=" … ", '
    "StartSel=<mark>, StopSel=</mark>'"
)
_RANK: Final[LiteralString] = "ts_rank_cd('{0.1, 0.2, 0.4, 1.0}', p.search_vector, q.query, 1)"

# Each sort order as (ORDER BY inside the page CTE, ORDER BY of the final select). Every one
# ends with the paper id, so the order is total and offsets page through it without overlap.
# Titles compare lower-cased, byte-wise (as Meilisearch sorts strings); missing dates go last.
SORT_ORDERS: Final[dict[str, tuple[LiteralString, LiteralString]]] = {
    "relevance": ("exact DESC, rank DESC, p.id", "page.exact DESC, page.rank DESC, p.id"),
    "title": ('lower(p.title) COLLATE "C", p.id', 'lower(p.title) COLLATE "C", p.id'),
    "-title": ('lower(p.title) COLLATE "C" DESC, p.id', 'lower(p.title) COLLATE "C" DESC, p.id'),
    "published": ("p.published NULLS LAST, p.id", "p.published NULLS LAST, p.id"),
    "-published": ("p.published DESC NULLS LAST, p.id", "p.published DESC NULLS LAST, p.id"),
    "updated": ("p.updated_at, p.id", "p.updated_at, p.id"),
    "-updated": ("p.updated_at DESC, p.id", "p.updated_at DESC, p.id"),
}


async def term_candidates(
    conn: Connection,
    words: Sequence[str],
    per_word: int,
    prefix: tuple[str, str] | None,
    completions: int,
) -> tuple[dict[str, list[str]], list[str]]:
    """Indexed words close to each of `words` (trigram similarity, best first), and the
    shortest indexed words in the range `prefix` = (lowest, above) (the word being typed).

    Both are candidates: the caller keeps those within its typo budget.
    """
    low, high = prefix if prefix is not None else (None, None)
    records = await conn.fetch(
        """SELECT w.word, ARRAY(
                   SELECT t.term FROM search_terms t WHERE t.term % w.word
                   ORDER BY similarity(t.term, w.word) DESC, t.term LIMIT $2) AS terms
           FROM unnest($1::text[]) AS w(word)
           UNION ALL
           SELECT NULL, ARRAY(
                   SELECT t.term FROM search_terms t
                   WHERE t.term ~>=~ $3::text AND t.term ~<~ $4::text
                   ORDER BY length(t.term), t.term LIMIT $5)
           WHERE $3::text IS NOT NULL""",
        list(words),
        per_word,
        low,
        high,
        completions,
    )
    similar: dict[str, list[str]] = {}
    completed: list[str] = []
    for record in records:
        if record["word"] is None:
            completed = list(record["terms"])
        else:
            similar[record["word"]] = list(record["terms"])
    return similar, completed


async def search_page(
    conn: Connection,
    query: TsQueries | None,
    filters: SearchFilters,
    sort: str,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    """A page of papers (PAPER_COLUMNS) in `sort` order; with a query, also their highlights
    (`highlight_title`, `highlight_abstract`). `query` None browses every paper."""
    inner, outer = SORT_ORDERS[sort]
    if query is None:
        if sort == "relevance":
            inner, outer = "p.id", "p.id"
        sql = f"""WITH {_Q_BROWSE},
            page AS (
                SELECT p.id, false AS exact, 0::real AS rank FROM papers p, q
                WHERE {_TOPIC_OK} AND {_OTHER_FILTERS_OK}
                ORDER BY {inner} LIMIT $11 OFFSET $12
            )
            SELECT {PAPER_COLUMNS} FROM page JOIN papers p ON p.id = page.id
            ORDER BY {outer}"""
    else:
        sql = f"""WITH {_Q_MATCH},
            page AS (
                SELECT p.id, (p.search_vector @@ q.exact) AS exact, {_RANK} AS rank
                FROM papers p, q
                WHERE {_MATCHES} AND {_TOPIC_OK} AND {_OTHER_FILTERS_OK}
                ORDER BY {inner} LIMIT $11 OFFSET $12
            )
            SELECT {PAPER_COLUMNS},
                   ts_headline('papers_english', p.title, q.query, {_TITLE_HEADLINE})
                       AS highlight_title,
                   ts_headline('papers_english', p.abstract, q.query, {_ABSTRACT_HEADLINE})
                       AS highlight_abstract
            FROM page JOIN papers p ON p.id = page.id, q
            ORDER BY {outer}"""
    texts = query.args() if query is not None else (None, "", None, None)
    return await conn.fetch(sql, *texts, *filters.args(), limit, offset)


async def search_facets(
    conn: Connection, query: TsQueries | None, filters: SearchFilters
) -> list[asyncpg.Record]:
    """(facet, value, n) rows: `total` (every filter), and over the result without the topic
    filter: `topic` per slug (value NULL: papers without a topic), `has_code` per
    'true'/'false', `year` per year (value NULL: undated). One scan of the matches."""
    q, matches = (_Q_BROWSE, "true") if query is None else (_Q_MATCH, _MATCHES)
    return await conn.fetch(
        f"""WITH {q},
        base AS MATERIALIZED (
            SELECT p.id, p.published, {_HAS_CODE} AS has_code, {_TOPIC_OK} AS topic_ok
            FROM papers p, q
            WHERE {matches} AND {_OTHER_FILTERS_OK}
        )
        SELECT 'total' AS facet, NULL AS value, count(*) FILTER (WHERE topic_ok)::int AS n
        FROM base
        UNION ALL
        SELECT 'topic', pt.topic_slug, count(*)::int
        FROM base LEFT JOIN paper_topics pt ON pt.paper_id = base.id GROUP BY pt.topic_slug
        UNION ALL
        SELECT 'has_code', base.has_code::text, count(*)::int FROM base GROUP BY base.has_code
        UNION ALL
        SELECT 'year', extract(year FROM base.published)::int::text, count(*)::int
        FROM base GROUP BY 2""",
        *(query.args() if query is not None else (None, "", None, None)),
        *filters.args(),
    )


async def suggest_titles(
    conn: Connection, query: TsQueries, limit: int, candidates: int
) -> list[asyncpg.Record]:
    """(id, title, highlight) of papers whose title matches, exact matches first, then by
    cover density over title length (close matches in short titles), then shortness. Only the first `candidates` title matches are ranked, which
    keeps one-letter prefixes as fast as whole words."""
    return await conn.fetch(
        f"""WITH {_Q_MATCH},
        found AS (
            SELECT p.id, p.title, to_tsvector('papers_english'::regconfig, p.title) AS tv
            FROM papers p, q
            WHERE to_tsvector('papers_english'::regconfig, p.title) @@ q.query
            LIMIT $6
        )
        SELECT found.id, found.title,
               ts_headline('papers_english', found.title, q.query, {_TITLE_HEADLINE}) AS highlight
        FROM found, q
        ORDER BY (found.tv @@ q.exact) DESC, ts_rank_cd(found.tv, q.query, 2) DESC,
                 length(found.title), found.id
        LIMIT $5""",
        *query.args(),
        limit,
        candidates,
    )


# --- HTTP validators ------------------------------------------------------------------------


async def papers_changed_at(conn: Connection) -> datetime | None:
    """When a paper was last added, changed or pruned (`Last-Modified` of what lists or
    counts papers)."""
    changed: datetime | None = await conn.fetchval("SELECT changed_at FROM corpus_state")
    return changed


async def corpus_version(conn: Connection) -> int:
    """The corpus version: moves with every transaction that wrote papers, their topics or
    the taxonomy (triggers, migration 0006); what service/cache.py keys its entries by."""
    version: int = await conn.fetchval("SELECT version FROM corpus_state")
    return version


async def corpus_state(conn: Connection) -> tuple[int, datetime]:
    """(corpus_version, papers_changed_at) in one round trip."""
    record = await conn.fetchrow("SELECT version, changed_at FROM corpus_state")
    if record is None:
        raise RuntimeError("corpus_state has no row: run `papers migrate`")
    return record["version"], record["changed_at"]


async def mark_corpus_changed(conn: Connection) -> None:
    """Record, in the caller's transaction, that papers were added, changed or deleted."""
    await conn.execute("UPDATE corpus_state SET changed_at = clock_timestamp()")


# --- load runs (migration 0005; exported by /metrics) ----------------------------------------


LOAD_RUN_COUNTS: Final = ("read", "inserted", "updated", "unchanged", "pruned", "rejected")


class LoadRunTotals(msgspec.Struct, frozen=True):
    """The load runs with one outcome: how many, what they did, when the last one finished."""

    outcome: str
    runs: int
    read: int
    inserted: int
    updated: int
    unchanged: int
    pruned: int
    rejected: int
    last_finished_at: datetime


async def record_load_run(
    conn: Connection,
    *,
    started_at: datetime,
    outcome: str,
    files: Sequence[str],
    counts: dict[str, int] | None = None,
    error: str | None = None,
) -> None:
    """Record one `papers load` run (`counts` by LOAD_RUN_COUNTS name; absent ones are 0)."""
    counts = counts or {}
    await conn.execute(
        """INSERT INTO load_runs
               (started_at, outcome, files, read, inserted, updated, unchanged, pruned,
                rejected, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        started_at,
        outcome,
        list(files),
        *(counts.get(key, 0) for key in LOAD_RUN_COUNTS),
        error,
    )


async def load_run_totals(conn: Connection) -> list[LoadRunTotals]:
    """Every load run so far, summed by outcome."""
    records = await conn.fetch(
        """SELECT outcome, count(*) AS runs, sum(read)::bigint AS read,
                  sum(inserted)::bigint AS inserted, sum(updated)::bigint AS updated,
                  sum(unchanged)::bigint AS unchanged, sum(pruned)::bigint AS pruned,
                  sum(rejected)::bigint AS rejected, max(finished_at) AS last_finished_at
           FROM load_runs GROUP BY outcome ORDER BY outcome"""
    )
    return [msgspec.convert(dict(r), LoadRunTotals) for r in records]
