"""Answers kept until the corpus changes: the version the triggers bump (migration 0006), the
cache itself, and the API answering from it only while nothing was written."""

from __future__ import annotations

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
