"""GET /v1/papers and GET /v1/papers/{id}."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.exceptions import NotFoundException
from litestar.params import Parameter

from service import db
from service.api.cursor import decode_cursor, encode_cursor
from service.api.deps import Conn
from service.api.problems import BadParameter
from service.models import Paper, PaperPage

Limit = Annotated[int, Parameter(ge=1, le=100, description="Papers per page (1-100).")]


async def check_topic(conn: db.Connection, name: str, topics: list[str]) -> None:
    """400 naming the parameter when a topic slug is not in the taxonomy."""
    unknown = sorted(set(topics) - await db.topic_slugs(conn))
    if unknown:
        raise BadParameter(name, f"unknown topic {', '.join(map(repr, unknown))}; see /v1/topics")


@get("/v1/papers/{paper_id:str}", summary="One paper", tags=["papers"])
async def get_paper(
    conn: Conn,
    paper_id: Annotated[str, Parameter(description="The paper's id (a slug).")],
) -> Paper:
    """The per-paper JSON. 404 problem when the id is unknown."""
    paper = await db.get_paper(conn, paper_id)
    if paper is None:
        raise NotFoundException(detail=f"no paper with id {paper_id!r}")
    return paper


@get("/v1/papers", summary="List papers", tags=["papers"])
async def list_papers(
    conn: Conn,
    topic: Annotated[str | None, Parameter(description="Only papers with this topic slug.")] = None,
    limit: Limit = 20,
    cursor: Annotated[
        str | None, Parameter(description="`next_cursor` from the previous page.", max_length=500)
    ] = None,
) -> PaperPage:
    """Every paper in a stable order (by id), a page at a time; `next_cursor` is null on the last page."""
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor).after
        except ValueError as error:
            raise BadParameter("cursor", str(error)) from None
    if topic is not None:
        await check_topic(conn, "topic", [topic])
    papers = await db.list_papers(conn, topic=topic, after_id=after, limit=limit + 1)
    next_cursor = encode_cursor(papers[limit - 1].id) if len(papers) > limit else None
    return PaperPage(data=papers[:limit], next_cursor=next_cursor)
