"""GET /v1/search."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import get
from litestar.params import Parameter

from service.api.deps import Conn, Engine
from service.api.papers import check_topic
from service.models import SearchFacets, SearchResponse
from service.search.engine import SearchQuery

MAX_QUERY_LENGTH = 500
MAX_OFFSET = 10_000


@get("/v1/search", summary="Full-text search", tags=["search"])
async def search(
    conn: Conn,
    engine: Engine,
    q: Annotated[
        str,
        Parameter(
            description="Words to find (typos and prefixes tolerated; quotes for phrases, "
            "-word to exclude). Empty browses every paper in id order.",
            max_length=MAX_QUERY_LENGTH,
        ),
    ] = "",
    topic: Annotated[
        list[str] | None,
        Parameter(
            description="Topic slug filter; repeat for several, which combine with OR.",
            max_items=50,
        ),
    ] = None,
    limit: Annotated[int, Parameter(ge=0, le=100, description="Hits per page (0-100).")] = 20,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="Hits to skip.")] = 0,
) -> SearchResponse:
    """Ranked hits with highlights, total and topic facet counts.

    Facet counts are disjunctive: each topic's count is the number of hits the query would
    have with that topic selected, whatever topics are selected now, so a frontend can
    render them as checkboxes.
    """
    started = time.perf_counter()
    topics = tuple(dict.fromkeys(topic or ()))
    if topics:
        await check_topic(conn, "topic", list(topics))
    result = await engine.search(
        SearchQuery(q=q.strip(), topics=topics, limit=limit, offset=offset)
    )
    return SearchResponse(
        query=q,
        engine=result.engine,
        total=result.total,
        limit=limit,
        offset=offset,
        hits=result.hits,
        facets=SearchFacets(topics=result.topic_facets),
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
