"""Engines under contract: PostgreSQL always, Meilisearch when MEILI_URL reaches a live server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest

from service import db
from service.ingest.loader import load_records
from service.ingest.records import PaperRecord
from service.ingest.topics import load_taxonomy
from service.models import Links, Source
from service.search.engine import SearchEngine
from service.search.meilisearch import MeilisearchEngine
from service.search.postgres import PostgresEngine
from service.search.sync import rebuild_index
from tests.conftest import TAXONOMY

CODE = Links(code=["https://github.com/example/code"])
FILLER = (
    "We describe the experimental setup in detail and report results on several standard "
    "benchmarks with careful ablations of every component of the method. "
)


def _record(
    n: int,
    title: str,
    abstract: str,
    *,
    authors: tuple[str, ...] = (),
    published: date | None = None,
    code: bool = False,
    arxiv_id: str | None = None,
) -> PaperRecord:
    return PaperRecord(
        title=title,
        abstract=abstract,
        links=CODE if code else Links(),
        source=Source(file="crafted.jsonl", position=n, format="jsonl"),
        authors=authors,
        published=published,
        arxiv_id=arxiv_id,
    )


def crafted_records() -> list[PaperRecord]:
    """A small corpus with what the seed listing lacks: dates (two on one day, and on the
    boundaries of a year), authors spelled with and without accents, code links, papers
    without any topic, two papers with the same title, and a match deep in a long abstract."""
    return [
        _record(
            1,
            "Phrase Match: KV Cache Eviction for Long Prompts",
            "We evict entries from the KV cache of a transformer during decoding. " + FILLER,
            authors=("Zoë Müller", "Ada Lovelace"),
            published=date(2024, 3, 11),
            code=True,
        ),
        _record(
            2,
            "Cache Lines and KV Stores",
            "A cache for KV stores, where the two words never touch as a phrase. " + FILLER,
            authors=("José García",),
            published=date(2023, 6, 1),
        ),
        _record(
            3,
            "Quantization without Eviction",
            "Quantization of weights and activations keeps every cache entry. " + FILLER,
            authors=("ada  LOVELACE",),
            published=date(2023, 12, 31),
            code=True,
        ),
        _record(4, "Undated Widget Study", "Widgets are studied here. " + FILLER),
        _record(
            5,
            "Another Undated Gadget Paper",
            "Gadgets are studied here, with code. " + FILLER,
            authors=("Jose Garcia",),
            code=True,
        ),
        _record(
            6,
            "Protein Folding with Language Models",
            "Protein language models predict protein structure from sequence. " + FILLER,
            authors=("Zoe Muller",),
            published=date(2022, 1, 1),
        ),
        _record(
            7,
            "Zeta: Early Work on Caching",
            "Caching the results of expensive computations. " + FILLER,
            published=date(2024, 3, 11),
        ),
        _record(
            8,
            "Alpha Study",
            "The first alpha study of widgets. " + FILLER,
            published=date(2021, 5, 5),
            arxiv_id="2105.00001",
        ),
        _record(
            9,
            "ALPHA STUDY",
            "The second alpha study of gadgets. " + FILLER,
            published=date(2021, 5, 5),
            arxiv_id="2105.00002",
        ),
        _record(
            10,
            "A Long Abstract",
            FILLER * 6 + "Only here, near the end, do we mention zanzibar. " + FILLER * 2,
            published=date(2020, 2, 29),
        ),
    ]


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
    """A Meilisearch engine on a private index filled from the database, or skip."""
    url, key = meili_settings()
    engine = MeilisearchEngine(url, key, index=f"papers_test_{uuid.uuid4().hex[:8]}", timeout=10)
    if not await engine.ping():
        await engine.close()
        pytest.skip(f"MEILI_URL={url} does not answer")
    await rebuild_index(conn, engine, None)
    return engine


async def _engine(kind: str, database_url: str) -> AsyncIterator[SearchEngine]:
    pool = await db.create_pool(database_url, min_size=1, max_size=4)
    conn = await db.connect(database_url)
    try:
        if kind == "postgres":
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


@pytest.fixture(params=["postgres", "meilisearch"])
async def engine(request: pytest.FixtureRequest, seeded_db: str) -> AsyncIterator[SearchEngine]:
    """Each engine in turn, holding the 77 seed papers."""
    async for each in _engine(request.param, seeded_db):
        yield each


async def load_crafted(database_url: str) -> None:
    """Load `crafted_records()` into a database."""
    conn = await db.connect(database_url)
    try:
        summary = await load_records(conn, crafted_records(), load_taxonomy(TAXONOMY))
        assert summary.rejected_count == 0
        await db.unqueue_all(conn, await db.now(conn))
    finally:
        await conn.close()


@pytest.fixture(params=["postgres", "meilisearch"])
async def crafted_engine(
    request: pytest.FixtureRequest, empty_db: str
) -> AsyncIterator[SearchEngine]:
    """Each engine in turn, holding `crafted_records()`."""
    await load_crafted(empty_db)
    async for each in _engine(request.param, empty_db):
        yield each
