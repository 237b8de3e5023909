"""The Litestar application, wired explicitly: nothing is built at import time."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide

from service import db, metrics
from service.api import export, health, http, limits, papers, problems, search, suggest, topics
from service.api import metrics as metrics_api
from service.api.cursor import cursor_codec
from service.api.deps import provide_connection, provide_engine
from service.api.openapi import AnyOfUnions, ProblemResponses, openapi_config
from service.api.ratelimit import RateLimiter, parse_networks, rate_limit
from service.cache import CorpusCache
from service.config import ConfigError, Settings, load_settings
from service.embedded import resolve_database_url
from service.logs import access_log_middleware
from service.models import Topic
from service.search.engine import EngineUnavailableError, SearchEngine
from service.search.fallback import FallbackEngine
from service.search.meili_keys import is_master_key
from service.search.meilisearch import MeilisearchEngine
from service.search.postgres import PostgresEngine

log = logging.getLogger(__name__)

API_VERSION = "1.1.0"  # CHANGELOG.md


def build_engine(settings: Settings, pool: db.Pool, api_key: str | None) -> SearchEngine:
    """Meilisearch (falling back to PostgreSQL) when MEILI_URL is set, else PostgreSQL."""
    postgres = PostgresEngine(pool, CorpusCache(settings.cache_hits))
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
            url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
        engine = build_engine(settings, pool, settings.meili_search_key)
        app.state.pool, app.state.engine, app.state.embedded = pool, engine, server
        app.state.pool_timeout_s = settings.pool_timeout_s
        app.state.topics_cache = CorpusCache[list[Topic]](1 if settings.cache_hits else 0)
        app.state.cursor_codec = await cursor_codec(
            pool, settings.cursor_secret, settings.cursor_ttl_s
        )
        # What exists now lives as long as the app. Frozen, the cyclic collector's full passes
        # no longer walk it: they stalled requests for tens of ms (p99, bench/RESULTS.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await engine.close()
            await pool.close()

    app = Litestar(
        route_handlers=[
            papers.get_paper,
            papers.list_papers,
            papers.batch_papers,
            papers.related_papers,
            export.export_papers,
            topics.topic_papers,
            search.search,
            suggest.suggest,
            topics.list_topics,
            health.health,
            health.ready,
            problems.get_problem_type,
            metrics_api.get_metrics,
        ],
        dependencies={
            "conn": Provide(provide_connection),
            "engine": Provide(provide_engine, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=[http.route_middleware],
        before_request=http.require_json_body,
        cors_config=http.cors_config(settings.cors_origins),
        exception_handlers={**problems.exception_handlers(), **limits.exception_handlers()},
        request_max_body_size=limits.MAX_BODY_BYTES,
        openapi_config=openapi_config(API_VERSION),
        response_headers=http.DOCUMENTED_HEADERS,
        plugins=[ProblemResponses(), AnyOfUnions()],
        logging_config=None,
        debug=False,
    )
    app = http.install(app, settings.cors_origins)
    return _outer_layers(app, settings)


def _outer_layers(app: Litestar, settings: Settings) -> Litestar:
    """Around everything, outermost first: security headers, request id and access log,
    metrics, rate limit, overload refusal; so refusals are counted, logged and carry the
    request id and the security headers too."""
    handler = limits.limit_in_flight(app.asgi_handler, settings.max_in_flight)
    if settings.rate_limit_enabled:
        limiter = RateLimiter(
            settings.rate_limit_burst,
            settings.rate_limit_per_s,
            settings.rate_limit_quota,
            settings.rate_limit_window_s,
        )
        handler = rate_limit(handler, limiter, parse_networks(settings.trusted_proxies))
    app.asgi_handler = http.security_headers(access_log_middleware(metrics.observe(handler)))
    return app
