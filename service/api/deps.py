"""Dependencies handed to route handlers: a pooled connection and the search engine."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from litestar.datastructures import State
from litestar.di import NamedDependency

from service import db
from service.search.engine import SearchEngine


async def provide_connection(state: State) -> AsyncGenerator[db.Connection, None]:
    """A connection from the app's pool, returned after the request."""
    pool: db.Pool = state.pool
    async with pool.acquire() as conn:
        yield conn


def provide_engine(state: State) -> SearchEngine:
    """The app's search engine."""
    engine: SearchEngine = state.engine
    return engine


Conn = NamedDependency[db.Connection]
"""A handler parameter `conn: Conn` receives a pooled connection."""

Engine = NamedDependency[SearchEngine]
"""A handler parameter `engine: Engine` receives the search engine."""
