"""The search engine contract that every engine implements and the contract tests check."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from typing import Final, Literal, Protocol, runtime_checkable

import msgspec

from service.models import Paper, SearchFacets, SearchHit, Suggestion

HIGHLIGHT_PRE: Final = "<mark>"
HIGHLIGHT_POST: Final = "</mark>"
SUGGEST_LIMIT: Final = 10

Sort = Literal["relevance", "title", "-title", "published", "-published", "updated", "-updated"]
"""`relevance` (best first), or a field ascending; `-field` descending. Ties: paper id."""

TopicMode = Literal["any", "all"]

_AUTHOR_FOLD: Final = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th"})
_SPACES: Final = re.compile(r"\s+")


def author_key(name: str) -> str:
    """An author name as filters compare it: case, accents and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_AUTHOR_FOLD))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", bare).strip()


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What to search for; the same fields mean the same on every engine.

    `q`: words that must all match (typos tolerated), `"quoted phrases"`, `-word` or
    `-"phrase"` to exclude; the last word also matches as a prefix unless followed by a space
    or a quote. Blank browses every paper. `topics` combine per `topic_mode`: `any` (a hit
    carries at least one) or `all`. `has_code` keeps papers with (or without) a code link.
    `published_from`/`published_to` are inclusive and leave undated papers out. `authors`
    keep papers by any of these names (see `author_key`).
    """

    q: str = ""
    topics: tuple[str, ...] = ()
    topic_mode: TopicMode = "any"
    has_code: bool | None = None
    published_from: date | None = None
    published_to: date | None = None
    authors: tuple[str, ...] = ()
    sort: Sort = "relevance"
    limit: int = 20
    offset: int = 0


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """An engine's answer: the page of hits, the exact total, and the facets (see
    SearchFacets for how they reconcile with the total)."""

    engine: str
    total: int
    hits: list[SearchHit]
    facets: SearchFacets

    @property
    def topic_facets(self) -> dict[str, int]:
        """Hits per topic without the topic filter (disjunctive)."""
        return self.facets.topics


class SuggestResult(msgspec.Struct, frozen=True, kw_only=True):
    """Title completions for a prefix, best first."""

    engine: str
    suggestions: list[Suggestion]


class EngineUnavailableError(RuntimeError):
    """The engine cannot answer right now (down, too slow, or a server-side error)."""


class ResultTooLargeError(RuntimeError):
    """The engine cannot count or page this result exactly (more hits than it ranks).

    Meilisearch stops counting at its `pagination.maxTotalHits`; the FallbackEngine then
    answers with PostgreSQL, which has no such limit.
    """


@runtime_checkable
class SearchEngine(Protocol):
    """A search engine over the papers held in PostgreSQL."""

    name: str

    async def search(self, query: SearchQuery) -> SearchResult:
        """Answer a query; raise EngineUnavailableError when the engine cannot."""
        ...

    async def suggest(self, prefix: str, limit: int = SUGGEST_LIMIT) -> SuggestResult:
        """Titles completing `prefix` (typos tolerated in its complete words), best first."""
        ...

    async def ping(self) -> bool:
        """True when the engine answers."""
        ...

    async def index_papers(self, papers: Sequence[Paper]) -> None:
        """Make these papers (new or changed) searchable."""
        ...

    async def delete_papers(self, ids: Sequence[str]) -> None:
        """Remove these papers from the index."""
        ...

    async def close(self) -> None:
        """Release the engine's connections."""
        ...
