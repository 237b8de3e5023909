"""Several sources, one paper: formats load through the real loader into the real database."""

from __future__ import annotations

from pathlib import Path

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.ingest.run import load_files
from tests.conftest import SEED_LISTING, TAXONOMY, write

DATA = Path(__file__).parent / "data"
TRANCEPTION = "tranception-protein-fitness-prediction-with-autoregressive-transformers-and"


async def test_every_format_loads_its_samples(empty_conn: db.Connection) -> None:
    for sample in (
        "papers_sample.jsonl",
        "papers_sample.json",
        "hf_daily_sample.json",
        "arxiv_sample.atom",
    ):
        summary = await load_files(empty_conn, [DATA / sample], TAXONOMY)
        assert summary.read >= 2, sample
        assert summary.rejected_count == 0, (sample, summary.rejected)
    formats = {r["f"] for r in await empty_conn.fetch("SELECT source->>'format' AS f FROM papers")}
    assert formats == {"jsonl", "json", "hf-daily", "arxiv-atom"}


async def test_one_paper_from_three_sources_is_one_row(empty_conn: db.Connection) -> None:
    await load_files(empty_conn, [SEED_LISTING], TAXONOMY)
    listing_row = await empty_conn.fetchrow("SELECT * FROM papers WHERE id LIKE 'tranception%'")
    assert listing_row is not None
    assert listing_row["arxiv_id"] is None

    hf = await load_files(empty_conn, [DATA / "hf_daily_sample.json"], TAXONOMY)
    assert hf.updated >= 1
    atom = await load_files(empty_conn, [DATA / "arxiv_sample.atom"], TAXONOMY)
    assert atom.read >= 3

    rows = await empty_conn.fetch(
        "SELECT * FROM papers WHERE title_key = $1", listing_row["title_key"]
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == listing_row["id"] == TRANCEPTION
    assert row["arxiv_id"] == "2205.13760"
    assert row["created_at"] == listing_row["created_at"]
    assert row["authors"]  # the listing had none; the API sources do
    assert "https://arxiv.org/pdf/2205.13760" in row["links"]["pdf"]


async def test_a_served_paper_loads_back_unchanged(
    client: AsyncTestClient[Litestar], seeded_db: str, tmp_path: Path
) -> None:
    served = (await client.get("/v1/papers/densing-law-of-llms")).content
    exported = write(tmp_path / "export.jsonl", served.decode() + "\n")
    conn = await db.connect(seeded_db)
    try:
        summary = await load_files(conn, [exported], TAXONOMY)
    finally:
        await conn.close()
    assert (summary.read, summary.unchanged, summary.updated, summary.inserted) == (1, 1, 0, 0)
    again = (await client.get("/v1/papers/densing-law-of-llms")).content
    assert msgspec.json.decode(again) == msgspec.json.decode(served)
