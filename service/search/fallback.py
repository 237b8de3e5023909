"""Meilisearch first, PostgreSQL when Meilisearch cannot answer."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from service.models import Paper
from service.search.engine import EngineUnavailableError, SearchEngine, SearchQuery, SearchResult
from service.search.meilisearch import MeilisearchRequestError

log = logging.getLogger(__name__)


class FallbackEngine:
    """Answer with `primary`; when it is down, too slow or failing server-side, with `fallback`.

    The result's `engine` names whichever engine answered. A 4xx from Meilisearch means our
    request was wrong: that is raised, not hidden behind the fallback. The one exception is a
    missing index, which is a deployment state (nothing loaded yet), not a bad request.
    """

    def __init__(self, primary: SearchEngine, fallback: SearchEngine) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    async def search(self, query: SearchQuery) -> SearchResult:
        """The primary's answer, or the fallback's when the primary cannot give one."""
        try:
            return await self.primary.search(query)
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
        return await self.fallback.search(query)

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
