"""The Litestar application, wired explicitly: nothing is built at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from service import db
from service.api import health, papers, search, topics
from service.api.deps import provide_connection, provide_engine
from service.api.problems import handle_http_exception, handle_internal_error, handle_unavailable
from service.config import ConfigError, Settings, load_settings
from service.embedded import resolve_database_url
from service.logs import access_log_middleware
from service.search.engine import EngineUnavailableError, SearchEngine
from service.search.fallback import FallbackEngine
from service.search.meili_keys import is_master_key
from service.search.meilisearch import MeilisearchEngine
from service.search.postgres import PostgresEngine

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"


def build_engine(settings: Settings, pool: db.Pool, api_key: str | None) -> SearchEngine:
    """Meilisearch (falling back to PostgreSQL) when MEILI_URL is set, else PostgreSQL."""
    postgres = PostgresEngine(pool)
    if settings.meili_url is None:
        return postgres
    meili = MeilisearchEngine(settings.meili_url, api_key, timeout=settings.meili_timeout_s)
    return FallbackEngine(meili, postgres)


async def refuse_master_key(settings: Settings) -> None:
    """The API process must not hold the master key; stop at start-up if it was given one."""
    if settings.meili_url is None or settings.meili_search_key is None:
        return
    try:
        master = await is_master_key(settings.meili_url, settings.meili_search_key)
    except EngineUnavailableError:
        log.warning("Meilisearch unreachable at start-up: cannot check MEILI_SEARCH_KEY yet")
        return
    if master:
        raise ConfigError(
            "MEILI_SEARCH_KEY is the Meilisearch master key; give the API a search-only key"
        )


def create_app(settings: Settings | None = None) -> Litestar:
    """The API for these settings (default: read from the environment)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await refuse_master_key(settings)
        url, server = await asyncio.to_thread(resolve_database_url, settings)
        pool = await db.create_pool(
            url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        engine = build_engine(settings, pool, settings.meili_search_key)
        app.state.pool, app.state.engine, app.state.embedded = pool, engine, server
        try:
            yield
        finally:
            await engine.close()
            await pool.close()

    exception_handlers: dict[Any, Any] = {
        HTTPException: handle_http_exception,
        EngineUnavailableError: handle_unavailable,
        asyncpg.PostgresConnectionError: handle_unavailable,
        asyncpg.CannotConnectNowError: handle_unavailable,
        ConnectionError: handle_unavailable,
        Exception: handle_internal_error,
    }
    return Litestar(
        route_handlers=[
            papers.get_paper,
            papers.list_papers,
            search.search,
            topics.list_topics,
            health.health,
            health.ready,
        ],
        dependencies={
            "conn": Provide(provide_connection),
            "engine": Provide(provide_engine, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=[access_log_middleware],
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="Papers API",
            version=API_VERSION,
            description=(
                "Search research papers, browse them by topic, and fetch one paper's JSON. "
                "Errors are RFC 9457 problem+json."
            ),
            path="/schema",
            use_handler_docstrings=True,
        ),
        logging_config=None,
        debug=False,
    )
