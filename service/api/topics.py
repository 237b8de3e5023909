"""GET /v1/topics and GET /v1/topics/{slug}/papers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi.spec import Example
from litestar.params import Parameter

from service import db
from service.api.deps import Conn, Engine, pooled_connection
from service.api.http import http_date
from service.api.papers import CursorParam, Limit, paper_page
from service.api.search import MAX_QUERY_LENGTH
from service.cache import CorpusCache
from service.models import PaperPage, Topic, TopicList
from service.search.engine import SearchQuery


@get("/v1/topics", summary="Topics with counts", tags=["topics"])
async def list_topics(
    engine: Engine,
    state: State,
    q: Annotated[
        str | None,
        Parameter(
            description="Count only papers matching this query.",
            max_length=MAX_QUERY_LENGTH,
            examples=[Example(summary="topics of KV-cache papers", value="kv cache")],
        ),
    ] = None,
) -> Response[TopicList]:
    """Every topic of the taxonomy with its paper count (for `q`, the count of matching papers).

    `Last-Modified` is when a paper was last added, changed or pruned, since that is what
    moves the counts.
    """
    cache: CorpusCache[list[Topic]] = state.topics_cache
    async with pooled_connection(state) as conn:  # released before the engine takes one
        version, changed = await db.corpus_state(conn)
        topics = cache.get(version, "topics")
        if topics is None:  # counting every paper's topics is what costs (100k papers: ~70 ms)
            topics = await db.list_topics(conn)
            cache.put(version, "topics", topics)
    headers = {"Last-Modified": http_date(changed)}
    if q is None or not q.strip():
        return Response(TopicList(data=topics), headers=headers)
    facets = (await engine.search(SearchQuery(q=q.strip(), limit=0))).topic_facets
    counted = [Topic(t.slug, t.label, t.description, facets.get(t.slug, 0)) for t in topics]
    return Response(TopicList(data=counted, query=q), headers=headers)


@get("/v1/topics/{slug:str}/papers", summary="Papers of a topic", tags=["topics"])
async def topic_papers(
    conn: Conn,
    state: State,
    request: Request[Any, Any, Any],
    slug: Annotated[
        str, Parameter(description="The topic's slug.", examples=[Example(value="biology")])
    ],
    limit: Limit = 20,
    cursor: CursorParam = None,
) -> Response[PaperPage]:
    """The papers carrying this topic, in id order, a page at a time, with the exact `total`;
    paged like `GET /v1/papers` (signed expiring cursor, `Link: rel="next"`). 404 problem for
    an unknown topic."""
    if slug not in await db.topic_slugs(conn):
        raise NotFoundException(detail=f"no topic {slug!r}; see /v1/topics")
    return await paper_page(conn, state, request, topic=slug, limit=limit, cursor=cursor)
