"""Engines under contract: PostgreSQL always, Meilisearch when MEILI_URL reaches a live server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from service import db
from service.search.engine import SearchEngine
from service.search.meilisearch import MeilisearchEngine
from service.search.postgres import PostgresEngine
from service.search.sync import rebuild_index


def meili_settings() -> tuple[str, str]:
    """MEILI_URL and a key allowed to write, or skip with the reason."""
    url = os.environ.get("MEILI_URL")
    if not url:
        pytest.skip("MEILI_URL is not set: no live Meilisearch to run the contract against")
    key = os.environ.get("MEILI_ADMIN_KEY") or os.environ.get("MEILI_MASTER_KEY")
    if not key:
        pytest.skip("MEILI_URL is set but neither MEILI_ADMIN_KEY nor MEILI_MASTER_KEY is")
    return url, key


async def live_meili_engine(conn: db.Connection) -> MeilisearchEngine:
    """A Meilisearch engine on a private index filled from the seeded database, or skip."""
    url, key = meili_settings()
    engine = MeilisearchEngine(url, key, index=f"papers_test_{uuid.uuid4().hex[:8]}", timeout=10)
    if not await engine.ping():
        await engine.close()
        pytest.skip(f"MEILI_URL={url} does not answer")
    await rebuild_index(conn, engine, None)
    return engine


@pytest.fixture(params=["postgres", "meilisearch"])
async def engine(request: pytest.FixtureRequest, seeded_db: str) -> AsyncIterator[SearchEngine]:
    """Each engine in turn, holding the 77 seed papers."""
    pool = await db.create_pool(seeded_db, min_size=1, max_size=4)
    conn = await db.connect(seeded_db)
    try:
        if request.param == "postgres":
            yield PostgresEngine(pool)
        else:
            meili = await live_meili_engine(conn)
            try:
                yield meili
            finally:
                await meili.drop()
                await meili.close()
    finally:
        await conn.close()
        await pool.close()
