"""One embedded PostgreSQL per test session; each test gets a database cloned from a template.

`papers_empty` is migrated; `papers_seeded` is migrated and holds the seed papers. Cloning a
template (CREATE DATABASE … TEMPLATE …) takes milliseconds, so every test starts isolated.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db, migrate
from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.embedded import start_embedded
from service.ingest.listing import parse_listing
from service.ingest.records import PaperRecord
from service.ingest.run import load_files

SEEDS = PROJECT_ROOT / "seeds"
SEED_LISTING = SEEDS / "daily-papers-mar-11.txt"
TAXONOMY = SEEDS / "topics.toml"
EMPTY_TEMPLATE = "papers_empty"
SEEDED_TEMPLATE = "papers_seeded"


class PgServer:
    """The session's PostgreSQL server and how to reach its databases."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def url(self, database: str = "postgres") -> str:
        return str(self.handle.get_uri(database=database))

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser, through psql (no event loop needed)."""
        self.handle.psql(sql)

    def clone(self, template: str) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _load_seeds(url: str) -> None:
    conn = await db.connect(url)
    try:
        await load_files(conn, [SEED_LISTING], TAXONOMY)
        await db.unqueue_all(conn, await db.now(conn))  # as if the index had caught up
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A private embedded PostgreSQL with migrated and seeded template databases."""
    handle = start_embedded(tmp_path_factory.mktemp("pg") / "data", delete_on_exit=True)
    server = PgServer(handle)
    server.admin(f'CREATE DATABASE "{EMPTY_TEMPLATE}"')
    migrate.upgrade(server.url(EMPTY_TEMPLATE))
    server.admin(f'CREATE DATABASE "{SEEDED_TEMPLATE}" TEMPLATE "{EMPTY_TEMPLATE}"')
    asyncio.run(_load_seeds(server.url(SEEDED_TEMPLATE)))
    yield server
    handle.cleanup()


@pytest.fixture
def empty_db(pg: PgServer) -> Iterator[str]:
    """URL of a fresh, migrated, empty database."""
    name = pg.clone(EMPTY_TEMPLATE)
    yield pg.url(name)
    pg.drop(name)


@pytest.fixture
def seeded_db(pg: PgServer) -> Iterator[str]:
    """URL of a fresh database holding the 77 seed papers."""
    name = pg.clone(SEEDED_TEMPLATE)
    yield pg.url(name)
    pg.drop(name)


@pytest.fixture
async def conn(seeded_db: str) -> AsyncIterator[db.Connection]:
    """A connection to a seeded database."""
    connection = await db.connect(seeded_db)
    yield connection
    await connection.close()


@pytest.fixture
async def empty_conn(empty_db: str) -> AsyncIterator[db.Connection]:
    """A connection to an empty, migrated database."""
    connection = await db.connect(empty_db)
    yield connection
    await connection.close()


def app_for(database_url: str) -> Litestar:
    """The real app on a given database, with the test's settings."""
    return create_app(Settings(database_url=database_url, pool_min_size=0, pool_max_size=4))


@pytest.fixture
async def client(seeded_db: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An HTTP client for the real app over a seeded database."""
    async with AsyncTestClient(app_for(seeded_db)) as test_client:
        yield test_client


def seed_paragraphs() -> list[str]:
    """The seed file's paragraphs, split independently of the parser under test."""
    text = SEED_LISTING.read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def write(path: Path, text: str) -> Path:
    """Write a UTF-8 file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


def seed_records() -> list[PaperRecord]:
    """The parsed seed papers (the seed file has no rejected record)."""
    records = [r for r in parse_listing(SEED_LISTING) if isinstance(r, PaperRecord)]
    assert len(records) == 77
    return records
