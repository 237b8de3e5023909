"""Meilisearch unreachable (a closed loopback port, for real): the API falls back to PostgreSQL,
/ready says degraded, and a load keeps the index changes queued for the next run."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.app import create_app, refuse_master_key
from service.config import ConfigError, Settings
from tests.conftest import SEED_LISTING


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def degraded_client(
    seeded_db: str, closed_port_url: str
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database_url=seeded_db,
        meili_url=closed_port_url,
        meili_search_key="search-key",
        meili_timeout_s=0.5,
        pool_min_size=0,
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


async def test_search_falls_back_to_postgres_and_says_so(
    degraded_client: AsyncTestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.search.fallback"):
        response = await degraded_client.get("/v1/search", params={"q": "snapk"})
    assert response.status_code == 200
    body = response.json()
    assert body["engine"] == "postgres"
    assert body["hits"][0]["id"].startswith("snapkv")
    assert any("meilisearch unavailable" in r.getMessage() for r in caplog.records)


async def test_topics_with_query_fall_back_too(degraded_client: AsyncTestClient[Litestar]) -> None:
    response = await degraded_client.get("/v1/topics", params={"q": "kv cache"})
    assert response.status_code == 200
    assert any(t["count"] for t in response.json()["data"])


async def test_ready_reports_degraded(degraded_client: AsyncTestClient[Litestar]) -> None:
    response = await degraded_client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "engine:meilisearch": "unavailable"},
    }


def _load(database_url: str, meili_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEILI_")}
    env |= {"DATABASE_URL": database_url, "PAPERS_LOG_LEVEL": "WARNING"}
    if meili_url:
        env |= {"MEILI_URL": meili_url, "MEILI_ADMIN_KEY": "admin-key"}
    return subprocess.run(
        [sys.executable, "-m", "service", "load", str(SEED_LISTING)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def test_load_with_meilisearch_down_fails_and_keeps_changes_queued(
    empty_db: str, closed_port_url: str
) -> None:
    failed = _load(empty_db, closed_port_url)
    assert failed.returncode == 1
    assert "read 77, inserted 77" in failed.stdout
    assert "saved in PostgreSQL, but the search index was not updated" in failed.stderr
    conn = await db.connect(empty_db)
    try:
        assert await db.count_papers(conn) == 77
        assert await conn.fetchval("SELECT count(*) FROM search_outbox") == 77
        # The next load has no paper to change, yet it settles what is still queued (here on
        # the PostgreSQL engine, which searches the tables themselves).
        repaired = _load(empty_db, None)
        assert repaired.returncode == 0, repaired.stderr
        assert "unchanged 77" in repaired.stdout
        assert await conn.fetchval("SELECT count(*) FROM search_outbox") == 0
    finally:
        await conn.close()


async def test_api_refuses_to_start_with_the_master_key(seeded_db: str) -> None:
    from tests.test_meilisearch_unit import FakeMeilisearch, _error, _json  # noqa: PLC0415

    listing = _json(200, {"results": [], "offset": 0, "limit": 1, "total": 0})
    async with FakeMeilisearch({("GET", "/keys"): listing}) as fake:
        settings = Settings(database_url=seeded_db, meili_url=fake.url, meili_search_key="master")
        with pytest.raises(ConfigError, match="MEILI_SEARCH_KEY is the Meilisearch master key"):
            await refuse_master_key(settings)
    forbidden = _json(403, _error("invalid_api_key", "The provided API key is invalid."))
    async with FakeMeilisearch({("GET", "/keys"): forbidden}) as fake:
        settings = Settings(database_url=seeded_db, meili_url=fake.url, meili_search_key="search")
        await refuse_master_key(settings)  # a search-only key is accepted
