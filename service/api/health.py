"""GET /health (liveness) and GET /ready (PostgreSQL and the engine answer)."""

from __future__ import annotations

import asyncio

import asyncpg
from litestar import Response, get
from litestar.datastructures import State

from service import db
from service.api.deps import Engine
from service.models import Health


@get("/health", summary="Liveness", tags=["health"])
async def health() -> Health:
    """The process is up."""
    return Health(status="ok")


async def _database_ok(pool: db.Pool) -> bool:
    try:
        async with pool.acquire(timeout=2) as conn:
            await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


@get("/ready", summary="Readiness", tags=["health"])
async def ready(state: State, engine: Engine) -> Response[Health]:
    """200 `ok` when PostgreSQL and the search engine answer; 200 `degraded` when only
    Meilisearch is down (searches fall back to PostgreSQL); 503 when PostgreSQL is down."""
    database_ok, engine_ok = await asyncio.gather(_database_ok(state.pool), engine.ping())
    checks = {
        "database": "ok" if database_ok else "unavailable",
        f"engine:{engine.name}": "ok" if engine_ok else "unavailable",
    }
    if not database_ok:
        status = "unavailable"
    elif engine_ok:
        status = "ok"
    else:  # every engine other than PostgreSQL itself falls back to PostgreSQL
        status = "degraded"
    return Response(
        Health(status=status, checks=checks), status_code=503 if status == "unavailable" else 200
    )
