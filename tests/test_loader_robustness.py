"""Loader options and failure modes, with real processes where the issue asks for them:
dry run, strict, prune, the load lock, SIGKILL at any moment, and two loads at once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service import db
from service.ingest.loader import LoadOptions, LoadRejectedError
from service.ingest.run import load_files
from tests.conftest import SEED_LISTING, TAXONOMY, write

WORDS = [
    "alignment", "preference", "scaling", "laws", "distributed", "training", "pipeline",
    "parallelism", "kv", "cache", "compression", "multilingual", "translation", "benchmark",
    "evaluation", "protein", "genomic", "long", "context", "instruction", "tuning", "data",
    "selection", "reasoning", "code", "retrieval", "attention", "transformer",
]  # fmt: skip


def listing(path: Path, numbers: range, seed: int = 0) -> Path:
    """A listing file with one synthetic paper per number (titles unique by number)."""
    parts = ["new", "Mar 12"]
    for n in numbers:
        rng = random.Random(seed * 1_000_003 + n)  # noqa: S311 - a paper's text depends on n only
        title = f"Study {n}: {' '.join(rng.choice(WORDS) for _ in range(6)).title()}"
        abstract = " ".join(rng.choice(WORDS) for _ in range(160)) + "."
        parts += [title, abstract.capitalize()]
    return write(path, "\n\n".join(parts) + "\n")


async def _count(conn: db.Connection) -> tuple[int, int]:
    row = await conn.fetchrow("SELECT count(*) AS n, count(DISTINCT title_key) AS k FROM papers")
    assert row is not None
    return row["n"], row["k"]


async def test_dry_run_reports_and_writes_nothing(empty_conn: db.Connection) -> None:
    summary = await load_files(
        empty_conn, [SEED_LISTING], TAXONOMY, options=LoadOptions(dry_run=True)
    )
    assert (summary.inserted, summary.dry_run) == (77, True)
    assert "dry run" in summary.describe()
    assert await db.count_papers(empty_conn) == 0
    assert await empty_conn.fetchval("SELECT count(*) FROM topics") == 0


async def test_strict_fails_on_any_reject_and_writes_nothing(
    empty_conn: db.Connection, tmp_path: Path
) -> None:
    path = listing(tmp_path / "dup.txt", range(3))
    text = path.read_text()
    first_pair = "\n\n".join(text.split("\n\n")[2:4])
    write(path, text + "\n" + first_pair + "\n")  # the first paper again: one is superseded
    with pytest.raises(LoadRejectedError, match=r"1 record\(s\) rejected.*dup\.txt #1"):
        await load_files(empty_conn, [path], TAXONOMY, options=LoadOptions(strict=True))
    assert await db.count_papers(empty_conn) == 0
    lenient = await load_files(empty_conn, [path], TAXONOMY)
    assert (lenient.inserted, lenient.rejected_count) == (3, 1)


async def test_prune_removes_what_the_source_no_longer_has(
    empty_conn: db.Connection, tmp_path: Path
) -> None:
    await load_files(empty_conn, [listing(tmp_path / "feed.txt", range(5))], TAXONOMY)
    await load_files(empty_conn, [SEED_LISTING], TAXONOMY)
    await empty_conn.execute("DELETE FROM search_outbox")
    smaller = listing(tmp_path / "feed.txt", range(1, 5))  # paper 0 dropped from the same file
    kept = await load_files(empty_conn, [smaller], TAXONOMY)
    assert (kept.pruned, await db.count_papers(empty_conn)) == (0, 82)  # without --prune: kept
    summary = await load_files(empty_conn, [smaller], TAXONOMY, options=LoadOptions(prune=True))
    assert summary.pruned == 1
    assert await db.count_papers(empty_conn) == 81  # the seed papers, from another file, stay
    assert not await empty_conn.fetchval("SELECT count(*) FROM papers WHERE title LIKE 'Study 0:%'")
    queued = [r["paper_id"] for r in await empty_conn.fetch("SELECT paper_id FROM search_outbox")]
    assert len(queued) == 1
    assert queued[0].startswith("study-0-")


def _papers(*args: str, database_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEILI_")}
    env |= {"DATABASE_URL": database_url, "PAPERS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_held_lock_makes_a_load_wait_or_give_up(
    empty_db: str, empty_conn: db.Connection, tmp_path: Path
) -> None:
    path = listing(tmp_path / "few.txt", range(3))
    holder = await db.connect(empty_db)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await db.lock_for_load(holder)
        gave_up = _papers("load", "--no-wait", str(path), database_url=empty_db)
        _, err = gave_up.communicate(timeout=60)
        assert gave_up.returncode == 1
        assert "another load is running (PostgreSQL backend pid" in err
        waiting = _papers("load", str(path), database_url=empty_db)
        await asyncio.sleep(3)
        assert waiting.poll() is None  # still waiting for the lock
        await transaction.rollback()
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert "waiting for it to finish" in err
        assert "inserted 3" in out
    finally:
        await holder.close()
    assert await db.count_papers(empty_conn) == 3


async def test_sigkill_at_any_moment_then_a_rerun_loses_and_duplicates_nothing(
    empty_db: str, empty_conn: db.Connection, tmp_path: Path
) -> None:
    path = listing(tmp_path / "big.txt", range(15_000))
    for delay in (0.5, 2.0, 4.0):
        victim = _papers("load", str(path), database_url=empty_db)
        await asyncio.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        # The load is one transaction: killed before commit, it left nothing behind.
        assert await _count(empty_conn) in {(0, 0), (15_000, 15_000)}
    rerun = _papers("load", str(path), database_url=empty_db)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert await _count(empty_conn) == (15_000, 15_000)
    ids = await empty_conn.fetchval("SELECT count(DISTINCT id) FROM papers")
    assert ids == 15_000
    again = _papers("load", str(path), database_url=empty_db)
    out, err = again.communicate(timeout=600)
    assert "inserted 0, updated 0, unchanged 15000" in out, err


async def test_two_loads_at_once_neither_corrupt_nor_duplicate(
    empty_db: str, empty_conn: db.Connection, tmp_path: Path
) -> None:
    first = listing(tmp_path / "a.txt", range(6000))
    second = listing(tmp_path / "b.txt", range(3000, 9000))  # 3000 papers in common
    loads = [_papers("load", str(p), database_url=empty_db) for p in (first, second)]
    results = [load.communicate(timeout=600) for load in loads]
    assert [load.returncode for load in loads] == [0, 0], [err for _, err in results]
    assert any("waiting for it to finish" in err for _, err in results)
    assert await _count(empty_conn) == (9000, 9000)
    inserted = sorted(int(out.split("inserted ")[1].split(",")[0]) for out, _ in results)
    assert inserted == [3000, 6000]


async def test_bulk_load_into_an_empty_table_still_finds_repeats_across_batches(
    empty_conn: db.Connection, tmp_path: Path
) -> None:
    stem = "Efficient Training of Extremely Large Language Models Across Thousands of Accelerators"
    numbers = range(6000)  # two batches
    path = listing(tmp_path / "repeat.txt", numbers)
    paragraphs = path.read_text().split("\n\n")
    title, abstract = paragraphs[2], paragraphs[3]
    head = "\n\n".join(paragraphs[:2])
    rest = "\n\n".join(paragraphs[2:])
    # Batch one: a long title. Batch two: the first paper again, revised, and another long
    # title whose slug is the same once cut to 80 characters.
    write(
        path,
        f"{head}\n\n{stem} Part One\n\n{abstract}\n\n{rest}\n"
        f"{title}\n\n{abstract} Revised.\n\n{stem} Part Two\n\n{abstract}\n",
    )
    summary = await load_files(empty_conn, [path], TAXONOMY)
    assert (summary.inserted, summary.updated) == (6002, 1)
    assert await _count(empty_conn) == (6002, 6002)
    revised = await empty_conn.fetchval("SELECT abstract FROM papers WHERE title = $1", title)
    assert revised.endswith("Revised.")
    ids = [
        await empty_conn.fetchval("SELECT id FROM papers WHERE title = $1", f"{stem} Part {n}")
        for n in ("One", "Two")
    ]
    assert ids[1] == f"{ids[0]}-2"
