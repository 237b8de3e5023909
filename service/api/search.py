"""GET /v1/search."""

from __future__ import annotations

import time
from datetime import date
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import ResponseHeader, State
from litestar.openapi.spec import Example
from litestar.params import Parameter

from service.api.deps import Engine, pooled_connection
from service.api.fields import FieldsParam, fields_param
from service.api.openapi import any_of
from service.api.papers import check_topic
from service.api.problems import BadParameter
from service.models import SearchHit, SearchResponse
from service.search.engine import SearchQuery, Sort, TopicMode

MAX_QUERY_LENGTH: Final = 500
MAX_LIMIT: Final = 100
MAX_OFFSET: Final = 1_000_000_000  # only there to keep the number a number; no paging cap
MAX_AUTHORS: Final = 20
MAX_AUTHOR_LENGTH: Final = 300


def _authors(values: list[str] | None) -> tuple[str, ...]:
    names = [" ".join(value.split()) for value in values or ()]
    for name in names:
        if not name:
            raise BadParameter("author", "an author name cannot be empty")
        if len(name) > MAX_AUTHOR_LENGTH:
            raise BadParameter("author", f"at most {MAX_AUTHOR_LENGTH} characters")
    return tuple(dict.fromkeys(names))


def _page_links(request: Request[Any, Any, Any], limit: int, offset: int, total: int) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
    links = []
    if limit and offset + limit < total:
        links.append((offset + limit, "next"))
    if limit and offset > 0:
        links.append((max(0, min(offset, total) - limit), "prev"))
    return ", ".join(
        f'<{request.url.path}?{urlencode([*params, ("offset", str(at))])}>; rel="{rel}"'
        for at, rel in links
    )


LINK_HEADER: Final = ResponseHeader(
    name="Link",
    value='</v1/search?q=kv&offset=20>; rel="next", </v1/search?q=kv&offset=0>; rel="prev"',
    description='The `rel="next"` and `rel="prev"` pages (same query, another `offset`), '
    "when there are.",
    documentation_only=True,
)


@get(
    "/v1/search",
    summary="Full-text search",
    tags=["search"],
    response_headers=[LINK_HEADER],
)
async def search(
    state: State,
    engine: Engine,
    request: Request[Any, Any, Any],
    q: Annotated[
        str,
        Parameter(
            description='Words that must all match, typos tolerated; `"quoted phrase"` '
            'matches the phrase; `-word` or `-"phrase"` excludes; the last word also matches '
            "as a prefix while typed (not when followed by a space). Empty browses.",
            max_length=MAX_QUERY_LENGTH,
            examples=[
                Example(summary="words", value="kv cache compression"),
                Example(summary="phrase and exclusion", value='"kv cache" -quantization'),
                Example(summary="typo, and a word being typed", value="protien fitn"),
            ],
        ),
    ] = "",
    topic: Annotated[
        list[str] | None,
        Parameter(
            description="Topic slug filter; repeat for several (see `topic_mode`).",
            max_items=50,
            examples=[Example(value=["biology"])],
        ),
    ] = None,
    topic_mode: Annotated[
        TopicMode,
        Parameter(
            description="`any`: a hit carries at least one of the `topic` values; `all`: every one.",
            examples=[Example(value="all")],
        ),
    ] = "any",
    has_code: Annotated[
        bool | None,
        Parameter(
            description="`true`: only papers with a code link; `false`: only without.",
            examples=[Example(value=True)],
        ),
    ] = None,
    published_from: Annotated[
        date | None,
        Parameter(
            description="Published on or after this ISO date (undated papers are left out).",
            examples=[Example(value="2024-01-01")],
        ),
    ] = None,
    published_to: Annotated[
        date | None,
        Parameter(
            description="Published on or before this ISO date (inclusive).",
            examples=[Example(value="2024-12-31")],
        ),
    ] = None,
    author: Annotated[
        list[str] | None,
        Parameter(
            description="An author's full name, compared without case, accents or extra "
            "spaces; repeat for several (a paper by any of them matches).",
            max_items=MAX_AUTHORS,
            examples=[Example(value=["Yoshua Bengio"])],
        ),
    ] = None,
    sort: Annotated[
        Sort,
        Parameter(
            description="`relevance` (best first), or `title`, `published`, `updated` "
            "ascending; a `-` prefix sorts descending (`-published`: newest first). "
            "Undated papers come last either way. Ties are broken by paper id.",
            examples=[Example(value="-published")],
        ),
    ] = "relevance",
    limit: Annotated[
        int,
        Parameter(
            ge=0,
            le=MAX_LIMIT,
            description="Hits per page (0-100; 0: counts only).",
            examples=[Example(value=20)],
        ),
    ] = 20,
    offset: Annotated[
        int,
        Parameter(
            ge=0,
            le=MAX_OFFSET,
            description="Hits to skip. Any offset up to `total` works: page through the "
            "whole result with any `limit`.",
            examples=[Example(value=40)],
        ),
    ] = 0,
    fields: FieldsParam = None,
) -> Response[Annotated[SearchResponse | dict[str, Any], any_of("SearchOrFields")]]:
    """Ranked hits with highlights, the exact total and facets.

    Highlights wrap matches in `<mark>…</mark>`: the whole title, and an abstract snippet of
    about 40 words cropped around the matches. Every order ends with the paper id, so paging
    with `offset` through `total` returns each paper exactly once (while the corpus does not
    change). `Link` headers give the `next` and `prev` pages. With `fields`, each hit keeps
    only those fields (`fields=id,title,highlight.title`); the rest of the answer is whole.

    Facets (`topics`, `no_topic`, `has_code`, `years`, `undated`) count the papers matching
    `q` and every filter except `topic`: topic facets are disjunctive, so selecting topics
    never changes any facet, and each topic's count is the total the search would have with
    that topic alone. Without a `topic` filter they reconcile with `total`:
    `has_code.true + has_code.false`, `sum(years) + undated`, and `no_topic` plus the papers
    that have a topic all equal `total`.

    On Meilisearch, totals and pages are exact up to 1,000,000 hits (its
    `pagination.maxTotalHits`); a search matching more is answered by PostgreSQL, which has
    no limit (the response's `engine` then says `postgres`).
    """
    started = time.perf_counter()
    selection = fields_param(fields, SearchHit)
    topics = tuple(dict.fromkeys(topic or ()))
    if topics:
        async with pooled_connection(state) as conn:  # released before the engine takes one
            await check_topic(conn, "topic", list(topics))
    if published_from and published_to and published_from > published_to:
        raise BadParameter("published_from", "is after published_to")
    query = SearchQuery(
        q=q,
        topics=topics,
        topic_mode=topic_mode,
        has_code=has_code,
        published_from=published_from,
        published_to=published_to,
        authors=_authors(author),
        sort=sort,
        limit=limit,
        offset=offset,
    )
    result = await engine.search(query)
    body = SearchResponse(
        query=q,
        engine=result.engine,
        total=result.total,
        limit=limit,
        offset=offset,
        hits=result.hits,
        facets=result.facets,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    links = _page_links(request, limit, offset, result.total)
    content: SearchResponse | dict[str, Any] = body
    if selection is not None:  # the hits keep only the selected fields
        content = msgspec.structs.asdict(body) | {"hits": [selection.project(h) for h in body.hits]}
    return Response(content, headers={"Link": links} if links else None)
