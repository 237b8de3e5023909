"""Dependencies handed to route handlers: a pooled connection and the search engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
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
    except (asyncpg.InterfaceError, asyncpg.InternalClientError):
        # PostgreSQL ended the session under the request (a restart, a failover) and asyncpg
        # may have lost track of the protocol (asyncpg#1069): never hand it out again. The
        # same exception goes on (Litestar wraps any other in an ExceptionGroup); problems.py
        # answers 503. A connection asyncpg saw close is already back in the pool, detached.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()
        raise
    finally:
        # Resetting a connection the server closed fails; asyncpg then terminates it, and the
        # request's own outcome (its answer, or its error) is what counts.
        with contextlib.suppress(
            OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError
        ):
            await pool.release(conn)


@asynccontextmanager
async def pooled_connection(state: State) -> AsyncIterator[db.Connection]:
    """A connection for part of a handler, as `provide_connection` gives one for all of it.

    Handlers that also call the search engine use this: the engine takes its own connection
    from the same pool, and a handler holding one while it waits for another deadlocks once
    as many requests as the pool has connections do the same.
    """
    connections = provide_connection(state)
    conn = await anext(connections)
    try:
        yield conn
    except BaseException as error:
        # Into provide_connection, as Litestar does with a dependency: it releases, or drops a
        # broken connection, and lets the error go on.
        with contextlib.suppress(type(error), StopAsyncIteration):
            await connections.athrow(error)
        raise
    await connections.aclose()  # runs provide_connection's release


def provide_engine(state: State) -> SearchEngine:
    """The app's search engine."""
    engine: SearchEngine = state.engine
    return engine


Conn = NamedDependency[db.Connection]
"""A handler parameter `conn: Conn` receives a pooled connection."""

Engine = NamedDependency[SearchEngine]
"""A handler parameter `engine: Engine` receives the search engine."""
