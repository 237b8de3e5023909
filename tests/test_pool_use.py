"""Handlers that call the search engine must not hold a pooled connection meanwhile: the
engine takes its own from the same pool, so holding one deadlocks (until the pool timeout,
then 503) once as many requests as the pool has connections arrive together."""

from __future__ import annotations

import asyncio

from litestar.testing import AsyncTestClient

from service.app import create_app
from service.config import Settings


async def test_more_concurrent_searches_than_pooled_connections(seeded_db: str) -> None:
    settings = Settings(
        database_url=seeded_db, pool_min_size=0, pool_max_size=2, pool_timeout_s=2.0,
        cache_hits=0, rate_limit_enabled=False,
    )  # fmt: skip
    paths = [
        "/v1/search?q=language&topic=alignment",
        "/v1/topics?q=language",
    ] * 8
    async with AsyncTestClient(create_app(settings)) as client:
        answers = await asyncio.gather(*(client.get(path) for path in paths))
    assert [a.status_code for a in answers] == [200] * len(paths)
