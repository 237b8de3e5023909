"""Alembic: upgrade -> downgrade -> upgrade on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from service import migrate
from tests.conftest import PgServer

TABLES = {
    "papers",
    "topics",
    "paper_topics",
    "search_terms",
    "search_outbox",
    "api_secrets",
    "corpus_state",
    "load_runs",
}


@pytest.fixture
def blank_db(pg: PgServer) -> Iterator[str]:
    name = pg.clone("template0")
    yield pg.url(name)
    pg.drop(name)


def _tables(url: str) -> set[str]:
    async def fetch() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_upgrade_downgrade_upgrade(blank_db: str) -> None:
    migrate.upgrade(blank_db)
    assert _tables(blank_db) == TABLES
    migrate.downgrade(blank_db, "base")
    assert _tables(blank_db) == set()
    migrate.upgrade(blank_db)
    assert _tables(blank_db) == TABLES


def test_upgrade_is_idempotent(blank_db: str) -> None:
    migrate.upgrade(blank_db)
    migrate.upgrade(blank_db)
    assert _tables(blank_db) == TABLES
