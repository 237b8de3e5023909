"""The framework's floor for `GET /v1/papers/{id}`: the least a Litestar app can do for it,
one handler doing the ceiling's single asyncpg query and returning the same bytes, with no
middleware, no dependencies, no validators and no OpenAPI. Between the ceiling
(bench/ceiling_app.py) and ours, it shows what Litestar itself costs and what is ours.

    DATABASE_URL=postgresql://… granian --interface asgi --factory bench.litestar_floor:create_app
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

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


def create_app() -> Litestar:
    """The floor app, with the same pool as the ceiling's (db.create_pool)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await db.create_pool(os.environ["DATABASE_URL"], max_size=10)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Litestar([paper], lifespan=[lifespan], openapi_config=None)
