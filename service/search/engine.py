"""The search engine contract that every engine implements and the contract tests check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec

from service.models import Paper, SearchHit

HIGHLIGHT_PRE = "<mark>"
HIGHLIGHT_POST = "</mark>"


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What to search for. An empty `q` browses every paper in id order.

    `topics` combine with OR: a hit carries at least one of them.
    """

    q: str = ""
    topics: tuple[str, ...] = ()
    limit: int = 20
    offset: int = 0


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """An engine's answer.

    `topic_facets` counts, for every topic, the hits the query would have with that topic
    selected (disjunctive facets): the topic filter itself is not applied to the counts.
    """

    engine: str
    total: int
    hits: list[SearchHit]
    topic_facets: dict[str, int]


class EngineUnavailableError(RuntimeError):
    """The engine cannot answer right now (down, too slow, or a server-side error)."""


@runtime_checkable
class SearchEngine(Protocol):
    """A search engine over the papers held in PostgreSQL."""

    name: str

    async def search(self, query: SearchQuery) -> SearchResult:
        """Answer a query; raise EngineUnavailableError when the engine cannot."""
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
