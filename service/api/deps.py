"""Dependencies handed to route handlers: a pooled connection and the search engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from litestar.datastructures import State
from litestar.di import NamedDependency

from service import db
from service.api.limits import PoolTimeoutError
from service.search.engine import SearchEngine


async def provide_connection(state: State) -> AsyncGenerator[db.Connection, None]:
    """A connection from the app's pool, returned after the request.

    Waits at most `state.pool_timeout_s` (PAPERS_POOL_TIMEOUT_S) for a free connection, then
    raises PoolTimeoutError (a 503 with `Retry-After`) rather than queueing without bound.
    """
    pool: db.Pool = state.pool
    timeout: float = state.pool_timeout_s
    try:
        async with asyncio.timeout(timeout):  # in this task: unlike acquire(timeout=), no new one
            conn = await pool.acquire()
    except TimeoutError:
        raise PoolTimeoutError(f"no free connection within {timeout} s") from None
    try:
        yield conn
    finally:
        await pool.release(conn)


def provide_engine(state: State) -> SearchEngine:
    """The app's search engine."""
    engine: SearchEngine = state.engine
    return engine


Conn = NamedDependency[db.Connection]
"""A handler parameter `conn: Conn` receives a pooled connection."""

Engine = NamedDependency[SearchEngine]
"""A handler parameter `engine: Engine` receives the search engine."""
