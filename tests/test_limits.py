"""Limits through the real app and database: body size, statement and pool timeouts, and the
in-flight limit. Slow requests are slow for real: a test transaction holds an exclusive lock
on `papers`, so the API's statements wait on PostgreSQL until it is released or they time out.

Concurrent requests need a real server (Litestar's test client answers one request at a time):
`serving` runs the app under uvicorn on a loopback port, in the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.api.limits import MAX_BODY_BYTES
from service.app import create_app
from service.config import ConfigError, Settings, load_settings

Client = AsyncTestClient[Litestar]
Live = httpx.AsyncClient
PAPER = "/v1/papers/densing-law-of-llms"
PROBLEM = "application/problem+json"


def settings(url: str, **overrides: Any) -> Settings:
    return Settings(**{"database_url": url, "pool_min_size": 0, "pool_max_size": 4, **overrides})


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app served by uvicorn on 127.0.0.1, and an HTTP client for it."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        ws="none",
        log_config=None,
        access_log=False,
        proxy_headers=False,  # as `papers serve` runs it
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # start-up failed: raise its error
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running(url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on `url` with these settings, served on loopback."""
    async with serving(create_app(settings(url, **overrides))) as client:
        yield client


@asynccontextmanager
async def papers_locked(url: str) -> AsyncIterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on `papers`: every API read of it waits."""
    conn = await db.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE papers IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"], body["type"]) == (status, code, f"/problems/{code}")
    return body


async def test_a_body_over_the_limit_is_a_413_problem(client: Client) -> None:
    ids = ["a" * 200] * (MAX_BODY_BYTES // 200 + 10)
    body = msgspec.json.encode({"ids": ids})
    assert len(body) > MAX_BODY_BYTES
    response = await client.post(
        "/v1/papers/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")
    ok = await client.post("/v1/papers/batch", json={"ids": ["densing-law-of-llms"]})
    assert ok.status_code == 200


async def test_the_statement_timeout_is_set_on_api_connections_only(seeded_db: str) -> None:
    app = create_app(settings(seeded_db, statement_timeout_ms=1234))
    async with serving(app):
        pool: db.Pool = app.state.pool
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "1234ms"
    loader = await db.connect(seeded_db)  # what `papers load` uses
    try:
        assert await loader.fetchval("SHOW statement_timeout") == "0"
    finally:
        await loader.close()


async def test_a_statement_timeout_is_a_503_with_retry_after(seeded_db: str) -> None:
    async with running(seeded_db, statement_timeout_ms=300) as client:
        async with papers_locked(seeded_db):
            started = time.perf_counter()
            response = await client.get(PAPER)
            elapsed = time.perf_counter() - started
        body = assert_problem(response, 503, "unavailable")
        assert response.headers["retry-after"] == "5"
        assert "in time" in body["detail"]
        assert 0.25 < elapsed < 5
        assert (await client.get(PAPER)).status_code == 200  # the lock is gone: served again


async def test_no_free_connection_in_time_is_a_503_with_retry_after(seeded_db: str) -> None:
    async with running(
        seeded_db, pool_max_size=1, pool_timeout_s=0.2, statement_timeout_ms=5000
    ) as client:
        async with papers_locked(seeded_db):
            holder = asyncio.create_task(client.get(PAPER))  # takes the only connection, waits
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            response = await client.get(PAPER)
            elapsed = time.perf_counter() - started
            assert not holder.done()
        body = assert_problem(response, 503, "unavailable")
        assert response.headers["retry-after"] == "1"
        assert "busy" in body["detail"]
        assert elapsed < 2
        assert (await holder).status_code == 200  # the lock released, the first one is served


async def test_overload_is_refused_at_once_and_probes_still_answer(seeded_db: str) -> None:
    async with running(seeded_db, max_in_flight=1, statement_timeout_ms=5000) as client:
        async with papers_locked(seeded_db):
            slow = asyncio.create_task(client.get(PAPER))
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            refused = await asyncio.gather(*(client.get("/v1/topics") for _ in range(5)))
            elapsed = time.perf_counter() - started
            health = await client.get("/health")
            metrics = await client.get("/metrics")
            assert not slow.done()
        assert elapsed < 1  # answered without waiting for the slow request
        for response in refused:
            body = assert_problem(response, 503, "overloaded")
            assert response.headers["retry-after"] == "1"
            assert "1 requests are in progress" in body["detail"]
        assert len({r.headers["x-request-id"] for r in refused}) == 5
        assert (health.status_code, metrics.status_code) == (200, 200)
        assert (await slow).status_code == 200
        assert (await client.get("/v1/topics")).status_code == 200  # a free slot again


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAPERS_STATEMENT_TIMEOUT_MS", "10"),
        ("PAPERS_STATEMENT_TIMEOUT_MS", "soon"),
        ("PAPERS_POOL_TIMEOUT_S", "0"),
        ("PAPERS_MAX_IN_FLIGHT", "0"),
    ],
)
def test_a_bad_limit_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_limit_settings_are_read() -> None:
    loaded = load_settings(
        {
            "PAPERS_STATEMENT_TIMEOUT_MS": "2500",
            "PAPERS_POOL_TIMEOUT_S": "0.5",
            "PAPERS_MAX_IN_FLIGHT": "7",
        }
    )
    assert (loaded.statement_timeout_ms, loaded.pool_timeout_s, loaded.max_in_flight) == (
        2500,
        0.5,
        7,
    )
