"""GET /v1/papers.jsonl: the corpus in the loader's JSON Lines format, streamed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.api.export import export_lines
from service.ingest.run import load_files
from service.models import Paper
from tests.conftest import TAXONOMY, app_for

Client = AsyncTestClient[Litestar]
DERIVED_AT_LOAD = ("created_at", "updated_at")


async def every_paper(conn: db.Connection) -> list[dict[str, Any]]:
    """Each paper as the API's JSON, without the timestamps a load sets."""
    papers = await db.list_papers(conn, after_id="", limit=10_000)
    return [
        {k: v for k, v in msgspec.to_builtins(p).items() if k not in DERIVED_AT_LOAD}
        for p in papers
    ]


async def test_head_answers_the_headers_without_reading_the_papers(
    client: Client, conn: db.Connection
) -> None:
    get = await client.get("/v1/papers.jsonl")
    async with conn.transaction():  # every read of `papers` would wait for this lock
        await conn.execute("LOCK TABLE papers IN ACCESS EXCLUSIVE MODE")
        head = await asyncio.wait_for(client.head("/v1/papers.jsonl"), timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-disposition", "cache-control", "vary", "etag"):
        assert head.headers.get(name) == get.headers.get(name), name
    assert "etag" not in head.headers  # a stream has no validator


async def test_export_is_one_paper_json_per_line(client: Client) -> None:
    response = await client.get("/v1/papers.jsonl")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.content.endswith(b"\n")
    lines = response.content.splitlines()
    assert len(lines) == 77
    papers = [msgspec.json.decode(line, type=Paper) for line in lines]
    ids = [p.id for p in papers]
    assert ids == sorted(ids)
    # Each line is exactly what GET /v1/papers/{id} serves.
    for line in (lines[0], lines[38], lines[-1]):
        paper_id = msgspec.json.decode(line)["id"]
        single = await client.get(f"/v1/papers/{paper_id}")
        assert msgspec.json.decode(line) == single.json()


async def test_export_loads_back_into_an_empty_database(
    client: Client,
    conn: db.Connection,
    empty_db: str,
    empty_conn: db.Connection,
    tmp_path: Path,
) -> None:
    export = tmp_path / "export.jsonl"
    export.write_bytes((await client.get("/v1/papers.jsonl")).content)
    summary = await load_files(empty_conn, [export], TAXONOMY)
    assert summary.rejected_count == 0
    assert await every_paper(empty_conn) == await every_paper(conn)
    # And what is served from the copy exports the same again, timestamps aside.
    async with AsyncTestClient(app_for(empty_db)) as copy:
        again = (await copy.get("/v1/papers.jsonl")).content.splitlines()
    first = export.read_bytes().splitlines()
    assert [without_timestamps(line) for line in again] == [
        without_timestamps(line) for line in first
    ]


def without_timestamps(line: bytes) -> dict[str, Any]:
    return {k: v for k, v in msgspec.json.decode(line).items() if k not in DERIVED_AT_LOAD}


async def test_export_streams_in_bounded_chunks(seeded_db: str) -> None:
    pool = await db.create_pool(seeded_db, min_size=0, max_size=1)
    try:
        chunks = [chunk async for chunk in export_lines(pool, chunk=10)]
        assert [chunk.count(b"\n") for chunk in chunks] == [10] * 7 + [7]
        # The connection went back to the pool: the pool's only one is free again.
        async with pool.acquire(timeout=1) as conn:
            assert await conn.fetchval("SELECT count(*) FROM papers") == 77
    finally:
        await pool.close()


async def test_export_of_an_empty_corpus_is_empty(empty_db: str) -> None:
    async with AsyncTestClient(app_for(empty_db)) as client:
        response = await client.get("/v1/papers.jsonl")
    assert response.status_code == 200
    assert response.content == b""
