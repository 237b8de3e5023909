"""Handlers that call the search engine must not hold a pooled connection meanwhile: the
engine takes its own from the same pool, so holding one deadlocks (until the pool timeout,
then 503) once as many requests as the pool has connections arrive together."""

from __future__ import annotations

import asyncio

from litestar.testing import AsyncTestClient

from service import db
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


async def test_connections_go_back_to_the_pool_as_they_came(
    seeded_db: str, conn: db.Connection
) -> None:
    """The pool runs no reset statement on release (db.create_pool): that holds only while no
    request leaves a transaction open. Every kind of request goes through the pool's one
    connection here, then the connection is looked at."""
    settings = Settings(
        database_url=seeded_db, pool_min_size=1, pool_max_size=1,
        rate_limit_enabled=False,
    )  # fmt: skip
    app = create_app(settings)
    expected = {
        "/v1/papers.jsonl": 200,  # a server-side cursor, in a transaction
        "/v1/papers/densing-law-of-llms": 200,
        "/v1/papers/arxiv:2412.04315": 404,  # the seeds carry no arXiv ids
        "/v1/papers/no-such-paper": 404,
        "/v1/papers?limit=5": 200,
        "/v1/search?q=scaling&topic=alignment": 200,
        "/v1/suggest?q=dens": 200,
        "/v1/topics": 200,
        "/v1/papers/densing-law-of-llms/related": 200,
        "/ready": 200,
        "/metrics": 200,
    }
    async with AsyncTestClient(app) as client:
        statuses = {path: (await client.get(path)).status_code for path in expected}
        assert statuses == expected
        batch = await client.post("/v1/papers/batch", json={"ids": ["densing-law-of-llms"]})
        assert batch.status_code == 200
        # The app's one pooled connection, seen from the server (the client runs the app on
        # an event loop of its own).
        sessions = await conn.fetch(
            """SELECT state, xact_start FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend'"""
        )
        assert [(s["state"], s["xact_start"]) for s in sessions] == [("idle", None)]
