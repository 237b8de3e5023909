"""GET /health (liveness) and GET /ready (PostgreSQL and the engine answer)."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example

from service import db
from service.api.deps import Engine
from service.api.problems import PROBLEM_JSON, NotReady, build_problem
from service.models import Health, Problem


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


@get(
    "/ready",
    summary="Readiness",
    tags=["health"],
    responses={
        503: ResponseSpec(
            Problem,
            generate_examples=False,
            description="`unavailable`: PostgreSQL does not answer; `checks` says what is down.",
            media_type=PROBLEM_JSON,
            examples=[
                Example(
                    summary="PostgreSQL is down",
                    value=msgspec.to_builtins(
                        build_problem(
                            503,
                            None,
                            "not ready: database unavailable",
                            "/ready",
                            checks={"database": "unavailable", "engine:postgres": "ok"},
                        )
                    ),
                )
            ],
        )
    },
)
async def ready(state: State, engine: Engine) -> Health:
    """200 `ok` when PostgreSQL and the search engine answer; 200 `degraded` when only
    Meilisearch is down (searches fall back to PostgreSQL); 503 problem when PostgreSQL is
    down, with the state of each dependency in `checks`."""
    database_ok, engine_ok = await asyncio.gather(_database_ok(state.pool), engine.ping())
    checks = {
        "database": "ok" if database_ok else "unavailable",
        f"engine:{engine.name}": "ok" if engine_ok else "unavailable",
    }
    if not database_ok:
        raise NotReady(checks)
    # Every engine other than PostgreSQL itself falls back to PostgreSQL.
    return Health(status="ok" if engine_ok else "degraded", checks=checks)
