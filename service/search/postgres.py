"""The PostgreSQL full-text engine: weighted tsvector ranking, ts_headline highlights, and a
pg_trgm expansion for typos and prefixes when the query's own words find little."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import asyncpg

from service import db
from service.models import Highlight, Paper, SearchHit
from service.search.engine import EngineUnavailableError, SearchQuery, SearchResult

FUZZY_BELOW = 3  # expand the query when exact words match fewer papers than this
TYPO_MIN_LENGTH = 4  # shorter words are only prefix-expanded
SIMILAR_PER_WORD = 3
CROP_WORDS = 40

_WORD = re.compile(r"(-?)([a-z0-9]+)")


def query_words(q: str) -> list[tuple[bool, str]]:
    """(excluded, word) pairs of a query, accents folded, lower-cased; quotes and operators dropped."""
    folded = unicodedata.normalize("NFKD", q).encode("ascii", "ignore").decode("ascii").lower()
    words: list[tuple[bool, str]] = []
    for match in _WORD.finditer(folded):
        excluded = match.group(1) == "-" and (
            match.start() == 0 or folded[match.start() - 1] == " "
        )
        if match.group(2) != "or":
            words.append((excluded, match.group(2)))
    return words


def expanded_tsquery(
    words: Sequence[tuple[bool, str]], similar: dict[str, list[str]]
) -> str | None:
    """A to_tsquery expression where each word also matches as a prefix and as similar words.

    Words are [a-z0-9]+ by construction, so quoting them is enough to keep them literal.
    """
    groups: list[str] = []
    for excluded, word in words:
        if excluded:
            groups.append(f"!'{word}'")
            continue
        alternatives = [f"'{word}':*", *(f"'{term}'" for term in similar.get(word, []))]
        groups.append("(" + " | ".join(alternatives) + ")")
    if not any(not excluded for excluded, _ in words):
        return None
    return " & ".join(groups)


def crop(text: str, words: int = CROP_WORDS) -> str:
    """The first `words` words of a text, with an ellipsis when it was cut."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " …"


class PostgresEngine:
    """Search inside the papers database itself."""

    name = "postgres"

    def __init__(self, pool: db.Pool) -> None:
        self._pool = pool

    async def search(self, query: SearchQuery) -> SearchResult:
        """Ranked, highlighted hits with disjunctive topic facets."""
        topics = list(query.topics) or None
        try:
            async with self._pool.acquire() as conn:
                if not query.q.strip():
                    return await self._browse(conn, topics, query)
                return await self._search(conn, topics, query)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise EngineUnavailableError(f"PostgreSQL search failed: {error}") from error

    async def _browse(
        self, conn: db.Connection, topics: list[str] | None, query: SearchQuery
    ) -> SearchResult:
        records = await db.browse_page(conn, topics, query.limit, query.offset)
        hits = []
        for record in records:
            paper = db.to_paper(record)
            hits.append(_hit(paper, Highlight(title=paper.title, abstract=crop(paper.abstract))))
        return SearchResult(
            engine=self.name,
            total=await db.browse_total(conn, topics),
            hits=hits,
            topic_facets=await db.browse_topic_facets(conn),
        )

    async def _search(
        self, conn: db.Connection, topics: list[str] | None, query: SearchQuery
    ) -> SearchResult:
        expanded = None
        if await db.count_exact_matches(conn, query.q) < FUZZY_BELOW:
            words = query_words(query.q)
            typo_words = [w for excluded, w in words if not excluded and len(w) >= TYPO_MIN_LENGTH]
            similar = (
                await db.similar_terms(conn, typo_words, SIMILAR_PER_WORD) if typo_words else {}
            )
            expanded = expanded_tsquery(words, similar)
        records = await db.search_page(conn, query.q, expanded, topics, query.limit, query.offset)
        hits = [
            _hit(
                db.to_paper(r),
                Highlight(title=r["highlight_title"], abstract=r["highlight_abstract"]),
            )
            for r in records
        ]
        return SearchResult(
            engine=self.name,
            total=await db.search_total(conn, query.q, expanded, topics),
            hits=hits,
            topic_facets=await db.search_topic_facets(conn, query.q, expanded),
        )

    async def ping(self) -> bool:
        """True when PostgreSQL answers."""
        try:
            async with self._pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def index_papers(self, papers: Sequence[Paper]) -> None:
        """Nothing to do: the papers table is the index."""

    async def delete_papers(self, ids: Sequence[str]) -> None:
        """Nothing to do: deleting the rows removes them from search."""

    async def close(self) -> None:
        """The pool belongs to the app, not to the engine."""


def _hit(paper: Paper, highlight: Highlight) -> SearchHit:
    fields = {name: getattr(paper, name) for name in Paper.__struct_fields__}
    return SearchHit(**fields, highlight=highlight)
