"""The framework's floors for `GET /v1/papers/{id}`: the least a Litestar app can do for it,
the ceiling's single asyncpg query returning the same bytes, with no middleware and no
OpenAPI. Between the ceiling (bench/ceiling_app.py) and ours, they show what Litestar itself
costs and what is ours:

- `create_app`: one HTTP route handler (`@get`), as ours are written: path parameter parsing,
  dependency injection (`state`), the response pipeline;
- `create_asgi_app`: one ASGI route handler (`@asgi`, mounted at /v1/papers): Litestar's
  routing and exception handling only; the handler reads the path and sends the bytes itself.

    DATABASE_URL=postgresql://… granian --interface asgi --factory bench.litestar_floor:create_app
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Response, asgi, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.types import Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import db

_QUERY = f"SELECT {db.PAPER_COLUMNS} FROM papers p WHERE p.id = $1"


@get("/v1/papers/{paper_id:str}")
async def paper(paper_id: str, state: State) -> Response[bytes]:
    """One paper by id, as our per-paper JSON; 404 otherwise."""
    pool: db.Pool = state.pool
    async with pool.acquire() as conn:
        record = await conn.fetchrow(_QUERY, paper_id)
    if record is None:
        raise NotFoundException()
    return Response(msgspec.json.encode(db.to_paper(record)), media_type="application/json")


@asgi("/v1/papers", is_mount=True)
async def paper_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The same as `paper`, as an ASGI handler (the mount leaves `/{id}` in the path)."""
    pool: db.Pool = scope["litestar_app"].state.pool
    async with pool.acquire() as conn:
        record = await conn.fetchrow(_QUERY, scope["path"].strip("/"))
    if record is None:
        raise NotFoundException()
    body = msgspec.json.encode(db.to_paper(record))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Litestar:
    """The floor app with an HTTP route handler."""
    return _floor(paper)


def create_asgi_app() -> Litestar:
    """The floor app with an ASGI route handler."""
    return _floor(paper_asgi)


def _floor(handler: Any) -> Litestar:
    """An app of this one handler, with the same pool as the ceiling's (db.create_pool)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await db.create_pool(os.environ["DATABASE_URL"], max_size=10)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Litestar([handler], lifespan=[lifespan], openapi_config=None)
