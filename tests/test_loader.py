"""The loader against a real database: idempotency, updates, atomicity, ids, topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest

from service import db
from service.ingest.records import ParseError
from service.ingest.run import load_files
from tests.conftest import SEED_LISTING, TAXONOMY, seed_paragraphs, write


async def _snapshot(conn: db.Connection) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        """SELECT p.id, p.title, p.abstract, p.content_hash, p.created_at, p.updated_at,
                  array(SELECT topic_slug FROM paper_topics WHERE paper_id = p.id ORDER BY rank) AS topics
           FROM papers p ORDER BY p.id"""
    )
    return [tuple(r) for r in rows]


def _edited_seed(tmp_path: Path, name: str, old: str, new: str, tail: str = "") -> Path:
    text = SEED_LISTING.read_text(encoding="utf-8")
    assert old in text
    return write(tmp_path / name, text.replace(old, new, 1) + tail)


async def test_first_load_inserts_all_seed_papers(empty_conn: db.Connection) -> None:
    summary = await load_files(empty_conn, [SEED_LISTING], TAXONOMY)
    assert (summary.read, summary.inserted, summary.updated, summary.unchanged) == (77, 77, 0, 0)
    assert summary.rejected == []
    paragraphs = seed_paragraphs()
    stored = {
        r["title"]: r["abstract"]
        for r in await empty_conn.fetch("SELECT title, abstract FROM papers")
    }
    assert stored == dict(zip(paragraphs[5::2], paragraphs[6::2], strict=True))


async def test_every_seed_paper_has_one_to_three_topics(conn: db.Connection) -> None:
    counts = await conn.fetch(
        """SELECT p.title, count(pt.topic_slug) AS n FROM papers p
           LEFT JOIN paper_topics pt ON pt.paper_id = p.id GROUP BY p.id"""
    )
    assert len(counts) == 77
    assert all(1 <= r["n"] <= 3 for r in counts), [
        r["title"] for r in counts if not 1 <= r["n"] <= 3
    ]


async def test_second_load_changes_nothing(conn: db.Connection) -> None:
    before = await _snapshot(conn)
    summary = await load_files(conn, [SEED_LISTING], TAXONOMY)
    assert (summary.read, summary.inserted, summary.updated, summary.unchanged) == (77, 0, 0, 77)
    assert await _snapshot(conn) == before


async def test_changed_abstract_updates_one_paper_and_moves_only_its_updated_at(
    conn: db.Connection, tmp_path: Path
) -> None:
    before = {row[0]: row for row in await _snapshot(conn)}
    edited = _edited_seed(
        tmp_path,
        SEED_LISTING.name,
        "the capacity density of LLMs doubles approximately every three months",
        "the capacity density of LLMs doubles approximately every hundred days",
    )
    summary = await load_files(conn, [edited], TAXONOMY)
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 76)
    after = {row[0]: row for row in await _snapshot(conn)}
    changed = [pid for pid in after if after[pid] != before[pid]]
    assert changed == ["densing-law-of-llms"]
    old, new = before["densing-law-of-llms"], after["densing-law-of-llms"]
    assert new[4] == old[4]  # created_at kept
    assert cast("datetime", new[5]) > cast("datetime", old[5])  # updated_at moved
    assert "every hundred days" in str(new[2])


async def test_failure_midway_leaves_database_as_it_was(
    conn: db.Connection, tmp_path: Path
) -> None:
    before = await _snapshot(conn)
    # Every paper parses and is written before the broken tail is reached.
    broken = _edited_seed(
        tmp_path,
        "broken.txt",
        "Densing Law of LLMs",
        "Densing Law of LLMs, Revised",
        tail="\n\nA title with no abstract\n",
    )
    with pytest.raises(ParseError) as caught:
        await load_files(conn, [broken], TAXONOMY)
    assert caught.value.line == 319
    assert "has no abstract" in str(caught.value)
    assert await _snapshot(conn) == before


async def test_failure_in_second_file_rolls_back_the_first(
    empty_conn: db.Connection, tmp_path: Path
) -> None:
    bad = write(tmp_path / "bad.txt", "new\n\nSubscribe\n\nOnly a title\n")
    with pytest.raises(ParseError, match=r"bad\.txt:5"):
        await load_files(empty_conn, [SEED_LISTING, bad], TAXONOMY)
    assert await db.count_papers(empty_conn) == 0


async def test_same_title_twice_is_one_paper(empty_conn: db.Connection, tmp_path: Path) -> None:
    abstract = "We study retrieval for long documents and report what helps. " * 4
    path = write(
        tmp_path / "dup.txt",
        f"new\n\nMar 12\n\nRetrieval Study\n\n{abstract}\n\nretrieval   study!\n\n{abstract} More.\n",
    )
    summary = await load_files(empty_conn, [path], TAXONOMY)
    assert summary.inserted == 1
    assert [r.position for r in summary.rejected] == [1]
    rows = await empty_conn.fetch("SELECT id, abstract FROM papers")
    assert [r["id"] for r in rows] == ["retrieval-study"]
    assert rows[0]["abstract"].endswith("More.")


async def test_colliding_slugs_get_a_suffix(empty_conn: db.Connection, tmp_path: Path) -> None:
    stem = "Efficient Training of Extremely Large Language Models Across Thousands of Accelerators"
    abstract = "We describe a system for distributed training and measure its throughput. " * 3
    path = write(
        tmp_path / "long.txt",
        f"new\n\n{stem} Part One\n\n{abstract}\n\n{stem} Part Two\n\n{abstract}\n",
    )
    await load_files(empty_conn, [path], TAXONOMY)
    ids = sorted(r["id"] for r in await empty_conn.fetch("SELECT id FROM papers"))
    assert len(ids) == 2
    assert ids[1] == ids[0] + "-2"
    # A reload keeps both ids: identity is the title, not the slug.
    summary = await load_files(empty_conn, [path], TAXONOMY)
    assert summary.unchanged == 2


@pytest.mark.parametrize("together", [True, False], ids=["one-load", "two-loads"])
async def test_a_title_that_slugs_like_a_numbered_id_gets_its_own_id(
    empty_conn: db.Connection, tmp_path: Path, together: bool
) -> None:
    # The second "Foo" is foo-2, which is also the first id of the title "Foo 2".
    abstract = "We describe a system for distributed training and measure its throughput. " * 3

    def line(title: str, arxiv_id: str) -> str:
        return json.dumps({"title": title, "abstract": abstract, "arxiv_id": arxiv_id}) + "\n"

    first = line("Foo", "2401.00001") + line("Foo 2", "2401.00002")
    second = line("Foo", "2401.00003")
    if together:
        await load_files(empty_conn, [write(tmp_path / "all.jsonl", first + second)], TAXONOMY)
    else:
        await load_files(empty_conn, [write(tmp_path / "a.jsonl", first)], TAXONOMY)
        await load_files(empty_conn, [write(tmp_path / "b.jsonl", second)], TAXONOMY)
    rows = await empty_conn.fetch("SELECT id, title FROM papers ORDER BY id")
    assert len(rows) == 3
    assert len({r["id"] for r in rows}) == 3
    assert {r["id"] for r in rows} <= {"foo", "foo-2", "foo-3", "foo-2-2"}


async def test_paper_fitting_no_topic_gets_none_and_is_reported(
    empty_conn: db.Connection, tmp_path: Path
) -> None:
    abstract = (
        "We bake sourdough bread with a long cold fermentation and compare crumb structure. " * 2
    )
    path = write(tmp_path / "bread.txt", f"new\n\nSourdough Crumb Study\n\n{abstract}\n")
    summary = await load_files(empty_conn, [path], TAXONOMY)
    assert summary.without_topic == ["Sourdough Crumb Study"]
    assert await empty_conn.fetchval("SELECT count(*) FROM paper_topics") == 0


def _papers_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "PAPERS_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_load_prints_summary_and_is_idempotent(empty_db: str) -> None:
    first = _papers_cli("load", str(SEED_LISTING), database_url=empty_db)
    assert first.returncode == 0, first.stderr
    assert "read 77, inserted 77, updated 0, unchanged 0, rejected 0" in first.stdout
    second = _papers_cli("load", str(SEED_LISTING.parent), database_url=empty_db)
    assert second.returncode == 0, second.stderr
    assert "read 77, inserted 0, updated 0, unchanged 77, rejected 0" in second.stdout


def test_cli_load_of_a_bad_file_fails_naming_file_and_line(empty_db: str, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.txt", "new\n\nSubscribe\n\nOnly a title\n")
    result = _papers_cli("load", str(bad), database_url=empty_db)
    assert result.returncode == 1
    assert f"{bad}:5: the title 'Only a title' has no abstract" in result.stderr
    assert "nothing was loaded" in result.stderr
