"""Answers kept until the corpus changes: the version the triggers bump (migration 0006), the
cache itself, and the API answering from it only while nothing was written."""

from __future__ import annotations

import asyncio

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.cache import CorpusCache

Client = AsyncTestClient[Litestar]


async def test_every_writing_transaction_bumps_the_version_once(conn: db.Connection) -> None:
    start = await db.corpus_version(conn)
    await conn.fetch("SELECT * FROM papers")
    assert await db.corpus_version(conn) == start  # reads leave it

    async with conn.transaction():  # several writes, one transaction: one bump
        await conn.execute(
            "UPDATE papers SET title = title || '!' WHERE id = 'densing-law-of-llms'"
        )
        await conn.execute("DELETE FROM paper_topics WHERE paper_id = 'densing-law-of-llms'")
    assert await db.corpus_version(conn) == start + 1

    await conn.execute("UPDATE topics SET label = label || '!'")
    assert await db.corpus_version(conn) == start + 2

    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM papers")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert await db.corpus_version(conn) == start + 2  # a rolled-back write bumps nothing


def test_cache_keeps_one_version_within_its_weight() -> None:
    cache = CorpusCache[str](max_weight=3)
    cache.put(1, "a", "A", weight=2)
    cache.put(1, "b", "B", weight=1)
    assert cache.get(1, "a") == "A"  # now the most recently used
    cache.put(1, "c", "C", weight=1)  # over the weight: the least recently used goes
    assert (cache.get(1, "a"), cache.get(1, "b"), cache.get(1, "c")) == ("A", None, "C")
    cache.put(1, "huge", "H", weight=4)  # heavier than the whole cache: not kept
    assert cache.get(1, "huge") is None
    assert cache.get(2, "a") is None  # another version: everything older is gone
    assert cache.get(1, "a") is None
    disabled = CorpusCache[str](max_weight=0)
    disabled.put(1, "a", "A")
    assert disabled.get(1, "a") is None


async def test_a_missing_entry_is_computed_once_for_every_caller_meanwhile() -> None:
    cache = CorpusCache[str](max_weight=10)
    release = asyncio.Event()
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return f"answer {calls}"

    waiting = [asyncio.ensure_future(cache.get_or_compute(1, "q", compute, len)) for _ in range(16)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["answer 1"] * 16
    assert calls == 1
    assert cache.get(1, "q") == "answer 1"  # kept for the next callers
    assert await cache.get_or_compute(2, "q", compute, len) == "answer 2"  # a new version


async def test_a_caller_going_away_leaves_the_computation_to_the_others() -> None:
    cache = CorpusCache[str](max_weight=10)
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "answer"

    first = asyncio.ensure_future(cache.get_or_compute(1, "q", compute, len))
    second = asyncio.ensure_future(cache.get_or_compute(1, "q", compute, len))
    await asyncio.sleep(0)
    first.cancel()  # the client that started it disconnects
    release.set()
    assert await second == "answer"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert cache.get(1, "q") == "answer"


async def test_a_failed_computation_reaches_every_caller_and_is_not_kept() -> None:
    cache = CorpusCache[str](max_weight=10)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise TimeoutError("statement timeout")

    results = await asyncio.gather(
        *(cache.get_or_compute(1, "q", failing, len) for _ in range(4)), return_exceptions=True
    )
    assert [type(r) for r in results] == [TimeoutError] * 4
    assert calls == 1
    assert cache.get(1, "q") is None
    with pytest.raises(TimeoutError):  # asked again: computed again
        await cache.get_or_compute(1, "q", failing, len)
    assert calls == 2


async def test_a_disabled_cache_computes_every_time() -> None:
    cache = CorpusCache[str](max_weight=0)
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        return "answer"

    for _ in range(3):
        assert await cache.get_or_compute(1, "q", compute, len) == "answer"
    assert calls == 3


async def test_search_and_topics_follow_writes_made_outside_the_api(
    client: Client, conn: db.Connection
) -> None:
    async def answers() -> tuple[int, int, dict[str, int]]:
        search = (await client.get("/v1/search", params={"q": "densing law"})).json()
        browse = (await client.get("/v1/search", params={"limit": 0})).json()
        topics = (await client.get("/v1/topics")).json()["data"]
        return search["total"], browse["total"], {t["slug"]: t["count"] for t in topics}

    before = await answers()
    assert before == await answers()  # asked twice, answered the same (from the cache)
    assert before[0] >= 1
    carried = await conn.fetch(
        "SELECT topic_slug FROM paper_topics WHERE paper_id = 'densing-law-of-llms'"
    )
    assert carried

    # psql-style writes, no load: no Last-Modified stamp, but the triggers bump the version.
    await conn.execute("DELETE FROM papers WHERE id = 'densing-law-of-llms'")
    search_total, browse_total, counts = await answers()
    assert search_total == before[0] - 1
    assert browse_total == before[1] - 1
    for record in carried:
        slug = record["topic_slug"]
        assert counts[slug] == before[2][slug] - 1
