"""GET /v1/topics."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter

from service import db
from service.api.deps import Conn, Engine
from service.api.search import MAX_QUERY_LENGTH
from service.models import Topic, TopicList
from service.search.engine import SearchQuery


@get("/v1/topics", summary="Topics with counts", tags=["topics"])
async def list_topics(
    conn: Conn,
    engine: Engine,
    q: Annotated[
        str | None,
        Parameter(
            description="Count only papers matching this query.", max_length=MAX_QUERY_LENGTH
        ),
    ] = None,
) -> TopicList:
    """Every topic of the taxonomy with its paper count (for `q`, the count of matching papers)."""
    topics = await db.list_topics(conn)
    if q is None or not q.strip():
        return TopicList(data=topics)
    facets = (await engine.search(SearchQuery(q=q.strip(), limit=0))).topic_facets
    return TopicList(
        data=[Topic(t.slug, t.label, t.description, facets.get(t.slug, 0)) for t in topics],
        query=q,
    )
