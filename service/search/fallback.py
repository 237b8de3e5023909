"""Meilisearch first, PostgreSQL when Meilisearch cannot answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from service import metrics
from service.models import Paper
from service.search.engine import (
    SUGGEST_LIMIT,
    EngineUnavailableError,
    ResultTooLargeError,
    SearchEngine,
    SearchQuery,
    SearchResult,
    SuggestResult,
)
from service.search.meilisearch import MeilisearchRequestError

log = logging.getLogger(__name__)

_R = TypeVar("_R")


class FallbackEngine:
    """Answer with `primary`; when it is down, too slow or failing server-side, with `fallback`.

    The result's `engine` names whichever engine answered. A 4xx from Meilisearch means our
    request was wrong: that is raised, not hidden behind the fallback. The one exception is a
    missing index, which is a deployment state (nothing loaded yet), not a bad request. A
    search too large for the primary to count exactly goes to the fallback too, without a
    warning: that is a limit, not a fault.
    """

    def __init__(self, primary: SearchEngine, fallback: SearchEngine) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    async def search(self, query: SearchQuery) -> SearchResult:
        """The primary's answer, or the fallback's when the primary cannot give one."""
        try:
            return await self._either(lambda engine: engine.search(query))
        except ResultTooLargeError as error:
            log.info(
                "search too large for %s, answering with %s",
                self.primary.name,
                self.fallback.name,
                extra={"fields": {"engine": self.primary.name, "reason": str(error)}},
            )
            return await self.fallback.search(query)

    async def suggest(self, prefix: str, limit: int = SUGGEST_LIMIT) -> SuggestResult:
        """The primary's suggestions, or the fallback's when the primary cannot give them."""
        return await self._either(lambda engine: engine.suggest(prefix, limit))

    async def _either(self, call: Callable[[SearchEngine], Awaitable[_R]]) -> _R:
        try:
            return await call(self.primary)
        except EngineUnavailableError as error:
            reason = str(error)
        except MeilisearchRequestError as error:
            if error.code != "index_not_found":
                raise
            reason = str(error)
        log.warning(
            "search engine %s unavailable, answering with %s",
            self.primary.name,
            self.fallback.name,
            extra={"fields": {"engine": self.primary.name, "reason": reason}},
        )
        metrics.record_fallback(self.primary.name, self.fallback.name)
        return await call(self.fallback)

    async def ping(self) -> bool:
        """Whether the primary engine answers (the fallback is checked with the database)."""
        return await self.primary.ping()

    async def index_papers(self, papers: Sequence[Paper]) -> None:
        """Index in the primary; the fallback reads PostgreSQL directly."""
        await self.primary.index_papers(papers)

    async def delete_papers(self, ids: Sequence[str]) -> None:
        """Delete from the primary."""
        await self.primary.delete_papers(ids)

    async def close(self) -> None:
        """Close both engines."""
        await self.primary.close()
        await self.fallback.close()
