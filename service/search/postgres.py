"""The PostgreSQL full-text engine: weighted tsvector ranking, ts_headline highlights, and
typo and prefix alternatives drawn from the indexed words (pg_trgm).

Queries read as Meilisearch reads them (`parse_query`), so both engines answer the same
request the same way: every word must match, with the typos Meilisearch allows for its length
(`typo_budget`); `"quoted phrases"` match as phrases, without typos; `-word` and `-"phrase"`
exclude; the last word also matches as a prefix while it is being typed (nothing after it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

import asyncpg
import msgspec

from service import db
from service.cache import CorpusCache
from service.models import CodeCounts, Highlight, Paper, SearchFacets, SearchHit, Suggestion
from service.search.engine import (
    SUGGEST_LIMIT,
    EngineUnavailableError,
    SearchQuery,
    SearchResult,
    SuggestResult,
)

CANDIDATES_PER_WORD: Final = 12  # trigram neighbours looked at per word, before the budget
TYPOS_PER_WORD: Final = 3  # alternatives kept per word
COMPLETIONS: Final = 20  # indexed words completing the word being typed
CROP_WORDS: Final = 40
SUGGEST_CANDIDATES: Final = 500

_TOKEN: Final = re.compile(r'"|[^\W_]+|\s+|.')


class Term(msgspec.Struct, frozen=True):
    """A word or a phrase of a query."""

    words: tuple[str, ...]
    phrase: bool = False
    excluded: bool = False
    prefix: bool = False  # the word being typed: also matches words it begins


def parse_query(q: str) -> list[Term]:
    """The terms of a query, read as Meilisearch reads one.

    A `"` opens or closes a phrase (an unclosed one runs to the end); a `-` right before a
    word or a phrase, at the start or after a space, excludes it; only the very last piece,
    when it is a plain word, is a prefix. Words are runs of letters and digits, lower-cased.
    """
    terms: list[Term] = []
    phrase: list[str] | None = None
    phrase_excluded = exclude_next = False
    after_space = True
    pieces = _TOKEN.findall(q.lower())
    for position, piece in enumerate(pieces):
        if piece == '"':
            if phrase is None:
                phrase, phrase_excluded = [], exclude_next
            else:
                if phrase:
                    terms.append(Term(tuple(phrase), phrase=True, excluded=phrase_excluded))
                phrase = None
            exclude_next = False
        elif piece[0].isalnum():
            if phrase is not None:
                phrase.append(piece)
            elif exclude_next:
                terms.append(Term((piece,), excluded=True))
            else:
                terms.append(Term((piece,), prefix=position == len(pieces) - 1))
            exclude_next = False
        else:
            exclude_next = phrase is None and piece == "-" and after_space
        after_space = piece[-1].isspace()
    if phrase:
        terms.append(Term(tuple(phrase), phrase=True, excluded=phrase_excluded))
    return terms


def fold(word: str) -> str:
    """A word as the typo index stores it: accents dropped, ASCII only."""
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode("ascii")


def typo_budget(word: str) -> int:
    """Typos allowed in a word, as Meilisearch's defaults: none under 5 letters, 2 from 9."""
    return 0 if len(word) < 5 else 1 if len(word) < 9 else 2


def typo_cost(typed: str, indexed: str) -> int:
    """Edits from `typed` to `indexed` (a swap of neighbours is one edit); like Meilisearch,
    a wrong first letter costs two."""
    rows = len(typed) + 1
    cols = len(indexed) + 1
    d = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        d[i][0] = i
    for j in range(cols):
        d[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            cost = 0 if typed[i - 1] == indexed[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if (
                i > 1
                and j > 1
                and typed[i - 1] == indexed[j - 2]
                and typed[i - 2] == indexed[j - 1]
            ):
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    first = 1 if typed[:1] != indexed[:1] else 0
    return d[-1][-1] + first


def typo_alternatives(word: str, candidates: Sequence[str]) -> list[str]:
    """The candidates within the word's typo budget, in the order given, at most a few."""
    budget = typo_budget(word)
    kept = [c for c in candidates if c != word and typo_cost(word, c) <= budget]
    return kept[:TYPOS_PER_WORD]


def _lexeme(word: str) -> str:
    # to_tsquery reads a quoted operand literally (then stems it); quotes and backslashes
    # cannot occur in a word, but are escaped anyway.
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery_text(terms: Sequence[Term], alternatives: dict[str, list[str]] | None) -> str | None:
    """The to_tsquery expression of the terms, all of which must hold; None when empty.

    With `alternatives` (word -> indexed words), plain words also match those and the prefix
    word matches as a prefix: the matching query. Without, the words exactly as typed.
    """
    groups: list[str] = []
    for term in terms:
        if term.phrase:
            group = "(" + " <-> ".join(_lexeme(w) for w in term.words) + ")"
        elif alternatives is None or term.excluded:
            group = _lexeme(term.words[0])
        else:
            word = term.words[0]
            options = [_lexeme(word) + (":*" if term.prefix else "")]
            options += [_lexeme(a) for a in alternatives.get(word, []) if a != word]
            group = "(" + " | ".join(options) + ")"
        groups.append(("!" if term.excluded else "") + group)
    return " & ".join(groups) or None


def crop(text: str, words: int = CROP_WORDS) -> str:
    """The first `words` words of a text, with an ellipsis when it was cut."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " …"


def mark_cuts(snippet: str, text: str) -> str:
    """A headline snippet with an ellipsis where it starts after, or ends before, the text."""
    plain = snippet.replace("<mark>", "").replace("</mark>", "").strip()
    if not plain:
        return snippet
    head = plain.split(" … ")[0].split()[:3]
    tail = plain.split(" … ")[-1].split()[-3:]
    if text.split()[: len(head)] != head:
        snippet = "… " + snippet
    if text.split()[-len(tail) :] != tail:
        snippet += " …"
    return snippet


class PostgresEngine:
    """Search inside the papers database itself."""

    name = "postgres"

    def __init__(self, pool: db.Pool, cache: CorpusCache[SearchResult] | None = None) -> None:
        self._pool = pool
        self._cache = cache if cache is not None and cache.max_weight > 0 else None

    async def search(self, query: SearchQuery) -> SearchResult:
        """Hits in the asked order with highlights, the exact total and the facets.

        With a cache, an answer is kept until the corpus version moves (service/cache.py), and
        computed once for all the requests asking for it meanwhile: ranking and counting every
        match of a broad query is what costs, not reading it back.
        """
        if self._cache is None:
            return await self._search(query)
        try:
            async with self._pool.acquire() as conn:
                version = await db.corpus_version(conn)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise EngineUnavailableError(f"PostgreSQL search failed: {error}") from error
        return await self._cache.get_or_compute(
            version, query, lambda: self._search(query), lambda result: len(result.hits) + 1
        )

    async def _search(self, query: SearchQuery) -> SearchResult:
        filters = db.SearchFilters(
            topics=list(query.topics) or None,
            topics_all=query.topic_mode == "all",
            has_code=query.has_code,
            published_from=query.published_from,
            published_to=query.published_to,
            authors=list(query.authors) or None,
        )
        try:
            async with self._pool.acquire() as conn:
                tsqueries = await self._tsqueries(conn, query.q)
                records = await db.search_page(
                    conn, tsqueries, filters, query.sort, query.limit, query.offset
                )
                facets = await db.search_facets(conn, tsqueries, filters)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise EngineUnavailableError(f"PostgreSQL search failed: {error}") from error
        hits = []
        for record in records:
            paper = db.to_paper(record)
            if tsqueries is None:
                highlight = Highlight(title=paper.title, abstract=crop(paper.abstract))
            else:
                highlight = Highlight(
                    title=record["highlight_title"],
                    abstract=mark_cuts(record["highlight_abstract"], paper.abstract),
                )
            hits.append(_hit(paper, highlight))
        total, search_facets = _facets(facets)
        return SearchResult(engine=self.name, total=total, hits=hits, facets=search_facets)

    async def suggest(self, prefix: str, limit: int = SUGGEST_LIMIT) -> SuggestResult:
        """Titles matching every word of `prefix`, the last one as a prefix, typos tolerated."""
        try:
            async with self._pool.acquire() as conn:
                tsqueries = await self._tsqueries(conn, prefix)
                if tsqueries is None:
                    return SuggestResult(engine=self.name, suggestions=[])
                records = await db.suggest_titles(conn, tsqueries, limit, SUGGEST_CANDIDATES)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
            raise EngineUnavailableError(f"PostgreSQL suggest failed: {error}") from error
        return SuggestResult(
            engine=self.name,
            suggestions=[Suggestion(r["id"], r["title"], r["highlight"]) for r in records],
        )

    async def _tsqueries(self, conn: db.Connection, q: str) -> db.TsQueries | None:
        """The tsqueries of a query (see db.TsQueries); None browses."""
        terms = parse_query(q)
        if not terms:
            return None
        plain = [t for t in terms if not t.phrase and not t.excluded]
        typo_words = sorted({fold(t.words[0]) for t in plain if typo_budget(fold(t.words[0]))})
        typing = next((t for t in plain if t.prefix), None)
        typed = fold(typing.words[0]) if typing else ""
        prefix = (typed, typed[:-1] + chr(ord(typed[-1]) + 1)) if typed.isalnum() else None
        alternatives: dict[str, list[str]] = {}
        if typo_words or prefix:
            similar, completed = await db.term_candidates(
                conn, typo_words, CANDIDATES_PER_WORD, prefix, COMPLETIONS
            )
            for term in plain:
                word = term.words[0]
                found = typo_alternatives(fold(word), similar.get(fold(word), []))
                alternatives[word] = found + (completed if term.prefix else [])
        exact = tsquery_text(terms, None) or ""
        if typing is None:
            return db.TsQueries(match=tsquery_text(terms, alternatives), exact=exact)
        # The word being typed: its English alternatives, or any indexed stem it begins.
        whole = msgspec.structs.replace(typing, prefix=False)
        return db.TsQueries(
            match=tsquery_text([t for t in terms if t is not typing], alternatives),
            exact=exact,
            typed=tsquery_text([whole], alternatives),
            typed_prefix=_lexeme(typed or typing.words[0]) + ":*",
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


def _facets(records: Sequence[asyncpg.Record]) -> tuple[int, SearchFacets]:
    total = no_topic = undated = 0
    topics: dict[str, int] = {}
    code = {"true": 0, "false": 0}
    years: dict[int, int] = {}
    for facet, value, n in records:
        if facet == "total":
            total = n
        elif facet == "topic" and value is None:
            no_topic = n
        elif facet == "topic":
            topics[value] = n
        elif facet == "has_code":
            code[value] = n
        elif value is None:
            undated = n
        else:
            years[int(value)] = n
    return total, SearchFacets(
        topics=topics,
        no_topic=no_topic,
        has_code=CodeCounts(true=code["true"], false=code["false"]),
        years=dict(sorted(years.items())),
        undated=undated,
    )


def _hit(paper: Paper, highlight: Highlight) -> SearchHit:
    fields = {name: getattr(paper, name) for name in Paper.__struct_fields__}
    return SearchHit(**fields, highlight=highlight)
