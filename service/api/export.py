"""GET /v1/papers.jsonl: the whole corpus as JSON Lines, streamed in constant memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Stream

from service import db
from service.api.http import is_head

JSONL = "application/x-ndjson"
CHUNK = 500  # rows per round trip of the server-side cursor, and per chunk written


async def export_lines(pool: db.Pool, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """Every paper as one JSON line, in id order, `chunk` papers per piece of bytes.

    One pooled connection holds a read-only repeatable-read transaction (one snapshot, so the
    export is consistent even while papers change) and a server-side cursor fetching `chunk`
    rows at a time; nothing but the current chunk is held in memory.
    """
    encoder = msgspec.json.Encoder()
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        lines = bytearray()
        count = 0
        async for record in conn.cursor(db.EXPORT_PAPERS, prefetch=chunk):
            encoder.encode_into(db.to_paper(record), lines, -1)
            lines += b"\n"
            count += 1
            if count == chunk:
                yield bytes(lines)
                lines.clear()
                count = 0
        if lines:
            yield bytes(lines)


async def _no_lines() -> AsyncIterator[bytes]:
    # One empty piece, not none: the answer stays a stream, with the GET's headers (no ETag
    # and no Content-Length, which a stream does not have).
    yield b""


@get(
    "/v1/papers.jsonl",
    summary="Export every paper (JSON Lines)",
    tags=["papers"],
    media_type=JSONL,
)
async def export_papers(state: State, request: Request[Any, Any, Any]) -> Stream:
    """Every paper, one per line, in id order: the loader's JSON Lines format, so
    `papers load export.jsonl` into another database yields the same papers.

    Each line is exactly the JSON of `GET /v1/papers/{id}`. The response is streamed from a
    server-side cursor over one consistent snapshot, so memory does not grow with the corpus.
    `HEAD` answers with the same headers without reading the papers.
    """
    lines = _no_lines() if is_head(request.scope) else export_lines(state.pool)
    return Stream(
        lines,
        media_type=JSONL,
        headers={"Content-Disposition": 'inline; filename="papers.jsonl"'},
    )
