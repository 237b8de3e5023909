"""Papers: one by id (slug or `arxiv:`), a batch, the related ones, and keyset listings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi.spec import Example
from litestar.params import Body, Parameter

from service import db
from service.api.cursor import CursorCodec, CursorError
from service.api.deps import Conn
from service.api.fields import FieldsParam, fields_param
from service.api.http import http_date
from service.api.openapi import any_of
from service.api.problems import BadParameter
from service.ingest.validate import ARXIV_ID
from service.models import (
    BatchError,
    BatchRequest,
    BatchResponse,
    Paper,
    PaperPage,
    PartialBatchResponse,
    RelatedPapers,
)

ARXIV_PREFIX = "arxiv:"
_VERSION = re.compile(r"v[0-9]+$")

Limit = Annotated[
    int,
    Parameter(ge=1, le=100, description="Papers per page (1-100).", examples=[Example(value=20)]),
]
CursorParam = Annotated[
    str | None,
    Parameter(
        description="`next_cursor` of the previous page (also in its `Link: rel=next` header). "
        "Opaque and signed; valid for PAPERS_CURSOR_TTL_S seconds (default 24 hours).",
        max_length=500,
        examples=[
            Example(
                summary="a cursor as the API returns it",
                value="WzEsImFsbCIsImRlbnNpbmctbGF3LW9mLWxsbXMiLDE3OTY0MjMwNDRd"
                ".mjGK0jfffKqaCjRTZibRs-6sujoZwnnTLmEUvHkdckU",
            )
        ],
    ),
]
PaperIdParam = Annotated[
    str,
    Parameter(
        description="The paper's id (its slug), or `arxiv:` and its arXiv id; a version "
        "suffix is ignored (`arxiv:2403.06009v2` finds 2403.06009 in any version).",
        examples=[
            Example(summary="slug", value="densing-law-of-llms"),
            Example(summary="arXiv id", value="arxiv:2403.06009"),
        ],
    ),
]


async def check_topic(conn: db.Connection, name: str, topics: list[str]) -> None:
    """400 naming the parameter when a topic slug is not in the taxonomy."""
    unknown = sorted(set(topics) - await db.topic_slugs(conn))
    if unknown:
        raise BadParameter(name, f"unknown topic {', '.join(map(repr, unknown))}; see /v1/topics")


def arxiv_key(key: str) -> tuple[str, str] | None:
    """(id without version, id as given) for an `arxiv:` key with a well-formed id, else None."""
    if not key.startswith(ARXIV_PREFIX):
        return None
    asked = key.removeprefix(ARXIV_PREFIX)
    return (_VERSION.sub("", asked), asked) if ARXIV_ID.match(asked) else None


async def resolve_paper(conn: db.Connection, key: str) -> Paper:
    """The paper a slug or `arxiv:` key names; 404 problem when there is none."""
    arxiv = arxiv_key(key)
    if arxiv is not None:
        paper = await db.get_paper_by_arxiv(conn, *arxiv)
    elif key.startswith(ARXIV_PREFIX):
        paper = None
    else:
        paper = await db.get_paper(conn, key)
    if paper is None:
        raise NotFoundException(detail=f"no paper with id {key!r}")
    return paper


def last_modified(papers: Sequence[Paper]) -> dict[str, str]:
    """A Last-Modified header: the latest `updated_at` of these papers (none for no paper)."""
    return {"Last-Modified": http_date(max(p.updated_at for p in papers))} if papers else {}


# A whole paper, or (with `fields`) the selected fields of one.
PaperOrFields = Annotated[Paper | dict[str, Any], any_of("PaperOrFields")]
BatchAnswer = Annotated[BatchResponse | PartialBatchResponse, any_of("BatchAnswer")]


@get("/v1/papers/{paper_id:str}", summary="One paper", tags=["papers"])
async def get_paper(
    conn: Conn, paper_id: PaperIdParam, fields: FieldsParam = None
) -> Response[PaperOrFields]:
    """The per-paper JSON (with `fields`, only those fields). 404 problem when unknown."""
    selection = fields_param(fields, Paper)
    paper = await resolve_paper(conn, paper_id)
    content = paper if selection is None else selection.project(paper)
    return Response(content, headers=last_modified([paper]))


@post("/v1/papers/batch", summary="Many papers at once", tags=["papers"], status_code=200)
async def batch_papers(
    conn: Conn,
    data: Annotated[
        BatchRequest,
        Body(description="`ids` (1-500 slugs or `arxiv:` ids) and optionally `fields`."),
    ],
) -> BatchAnswer:
    """Up to 500 papers by id (slugs and `arxiv:` ids mixed), in the order asked.

    `data[i]` answers `ids[i]`: the paper, or `null` with an entry in `errors` saying why
    (`not-found`). A repeated id is answered at each of its positions. With `fields`, each
    paper holds only those fields. No ids, more than 500, a malformed id or an unknown field
    is a 422 problem naming the field (`ids`, `ids[3]`, `fields`).
    """
    selection = fields_param(data.fields, Paper, in_body=True)
    keys = [arxiv_key(key) for key in data.ids]
    found = await db.find_papers(
        conn,
        [key if arxiv is None else None for key, arxiv in zip(data.ids, keys, strict=True)],
        [None if arxiv is None else arxiv[0] for arxiv in keys],
        [None if arxiv is None else arxiv[1] for arxiv in keys],
    )
    papers = [found.get(i) for i in range(len(data.ids))]
    errors = [BatchError(i, key, "not-found") for i, key in enumerate(data.ids) if i not in found]
    if selection is None:
        return BatchResponse(data=papers, errors=errors)
    return PartialBatchResponse(
        data=[None if p is None else selection.project(p) for p in papers], errors=errors
    )


@get("/v1/papers/{paper_id:str}/related", summary="Related papers", tags=["papers"])
async def related_papers(
    conn: Conn,
    paper_id: PaperIdParam,
    topic: Annotated[
        list[str] | None,
        Parameter(
            description="Only related papers with this topic; repeat for several (OR).",
            max_items=50,
            examples=[Example(value=["efficient-inference"])],
        ),
    ] = None,
    limit: Annotated[
        int, Parameter(ge=1, le=100, description="How many (1-100).", examples=[Example(value=10)])
    ] = 10,
) -> RelatedPapers:
    """The papers most related to this one, best first, each with a `score` in [0, 1] and the
    `reason`: the topics it shares, and the shared words that are rarest in the corpus.

    `score = 0.4 * topic_score + 0.6 * term_score`: `topic_score` is the shared part of this
    paper's topic scores (each shared topic counts with the lower of the two papers' scores);
    `term_score` is the weight of the shared terms among this paper's 16 most distinctive
    stemmed terms (tf-idf: frequent here, rare in the corpus, title words double). Ties are
    broken by id, so the order is stable. 404 problem for an unknown paper.
    """
    topics = list(dict.fromkeys(topic or ())) or None
    if topics:
        await check_topic(conn, "topic", topics)
    paper = await resolve_paper(conn, paper_id)
    related = await db.related_papers(conn, paper.id, topics=topics, limit=limit)
    return RelatedPapers(paper_id=paper.id, data=related)


# --- listings -------------------------------------------------------------------------------


def _next_link(request: Request[Any, Any, Any], cursor: str) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    return f'<{request.url.path}?{urlencode([*params, ("cursor", cursor)])}>; rel="next"'


async def paper_page(
    conn: db.Connection,
    state: State,
    request: Request[Any, Any, Any],
    *,
    topic: str | None,
    limit: int,
    cursor: str | None,
) -> Response[PaperPage]:
    """One page of every paper, or of a topic's papers, in id order (keyset on id).

    The page and `total` are read in one snapshot; a paper added between pages appears on a
    later page if its id sorts after the cursor. Headers: `Link: rel="next"` and
    `Last-Modified` (when a paper was last added, changed or pruned: what moves a page).
    """
    codec: CursorCodec = state.cursor_codec
    listing = "all" if topic is None else f"topic:{topic}"
    after = ""
    if cursor is not None:
        try:
            after = codec.decode(cursor, listing)
        except CursorError as error:
            raise BadParameter("cursor", str(error)) from None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if topic is None:
            papers = await db.list_papers(conn, after_id=after, limit=limit + 1)
            total = await db.count_papers(conn)
        else:
            papers = await db.list_topic_papers(conn, topic, after_id=after, limit=limit + 1)
            total = await db.count_topic_papers(conn, topic)
        changed = await db.papers_changed_at(conn)
    page = papers[:limit]
    next_cursor = codec.encode(listing, page[-1].id) if len(papers) > limit else None
    headers = {"Last-Modified": http_date(changed)} if changed is not None else {}
    if next_cursor is not None:
        headers["Link"] = _next_link(request, next_cursor)
    return Response(PaperPage(data=page, next_cursor=next_cursor, total=total), headers=headers)


@get("/v1/papers", summary="List papers", tags=["papers"])
async def list_papers(
    conn: Conn,
    state: State,
    request: Request[Any, Any, Any],
    topic: Annotated[
        str | None,
        Parameter(
            description="Only papers with this topic slug.", examples=[Example(value="biology")]
        ),
    ] = None,
    limit: Limit = 20,
    cursor: CursorParam = None,
) -> Response[PaperPage]:
    """Every paper in id order, a page at a time, with the exact `total`.

    Pass `next_cursor` (or follow the `Link: rel="next"` header) for the next page; it is null
    on the last page. Paging is by key, not offset: any page costs what the first does, and
    papers added meanwhile neither shift nor repeat the pages. A cursor is signed, belongs to
    its listing (same `topic`), and expires after PAPERS_CURSOR_TTL_S seconds (400 problem
    naming `cursor`).
    """
    if topic is not None:
        await check_topic(conn, "topic", [topic])
    return await paper_page(conn, state, request, topic=topic, limit=limit, cursor=cursor)
