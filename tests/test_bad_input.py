"""Bad input against the real database: the message names the place, and nothing changes.

Record-level problems reject the record (the rest loads, or nothing with --strict); file-level
problems fail the whole load. Either way a failed load leaves the database exactly as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service import db
from service.ingest.loader import LoadOptions, LoadRejectedError
from service.ingest.records import ParseError
from service.ingest.run import load_files
from tests.conftest import TAXONOMY

DATA = Path(__file__).parent / "data"


async def snapshot(conn: db.Connection) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        """SELECT p.id, p.content_hash, p.updated_at,
                  array(SELECT topic_slug FROM paper_topics WHERE paper_id = p.id) AS topics
           FROM papers p ORDER BY p.id"""
    )
    terms = await conn.fetchval("SELECT count(*) FROM search_terms")
    return [*(tuple(r) for r in rows), ("terms", terms)]


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("papers_truncated.jsonl", r"papers_truncated\.jsonl:\d+: "),
        ("papers_truncated.json", r"papers_truncated\.json:\d+: .*record"),
        ("hf_daily_truncated.json", r"hf_daily_truncated\.json:\d+: .*record"),
        ("arxiv_truncated.atom", r"arxiv_truncated\.atom:\d+: "),
        ("arxiv_doctype.atom", r"arxiv_doctype\.atom:\d+: refused: DTDForbidden"),
    ],
)
async def test_unparseable_file_fails_with_its_position_and_changes_nothing(
    conn: db.Connection, sample: str, message: str
) -> None:
    before = await snapshot(conn)
    with pytest.raises(ParseError, match=message):
        await load_files(conn, [DATA / "papers_sample.jsonl", DATA / sample], TAXONOMY)
    assert await snapshot(conn) == before


@pytest.mark.parametrize(
    ("sample", "rejected"),
    [
        ("papers_invalid.jsonl", {"title", "abstract", "line", "authors", "published", "arxiv_id"}),
        ("papers_bad_line.jsonl", {"line"}),
        ("hf_daily_invalid.json", None),
        ("arxiv_invalid.atom", None),
    ],
)
async def test_invalid_records_are_reported_and_strict_changes_nothing(
    conn: db.Connection, sample: str, rejected: set[str] | None
) -> None:
    before = await snapshot(conn)
    with pytest.raises(LoadRejectedError, match=rf"rejected and --strict given; first: {sample}"):
        await load_files(conn, [DATA / sample], TAXONOMY, options=LoadOptions(strict=True))
    assert await snapshot(conn) == before

    summary = await load_files(conn, [DATA / sample], TAXONOMY)
    assert summary.rejected_count == len(summary.rejected) > 0
    assert all(r.file == sample and r.position > 0 and r.reason for r in summary.rejected)
    if rejected is not None:
        assert {r.field for r in summary.rejected} == rejected
    assert summary.inserted + summary.updated + summary.unchanged > 0  # the good records loaded
    stored = await conn.fetch(
        "SELECT title, abstract FROM papers WHERE source->>'file' = $1", sample
    )
    for row in stored:  # markup stripped, no control characters kept
        assert "<" not in row["title"]
        assert not any(ord(c) < 32 for c in row["title"] + row["abstract"])
