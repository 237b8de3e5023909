"""Loader throughput and peak memory against the ceiling: a plain COPY of the same rows.

For each corpus size: synthesise papers (`papers synth`), load them with `papers load` in a
child process on a fresh migrated database (timed; peak RSS from the child's rusage), then COPY
the same papers rows into the same `papers` table, with the same indexes, on another fresh
database (timed). Prints papers/second for both, their ratio and the loader's peak memory.

    .venv/bin/python bench/load.py                      # 10k, 100k, 1M
    .venv/bin/python bench/load.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import db, migrate  # noqa: E402
from service.embedded import start_embedded  # noqa: E402
from service.ingest.formats import read_records  # noqa: E402
from service.ingest.loader import content_hash  # noqa: E402
from service.ingest.records import PaperRecord  # noqa: E402
from service.ingest.synth import synthesize  # noqa: E402
from service.ingest.text import slugify, title_key  # noqa: E402

SEED_LISTING = ROOT / "seeds" / "daily-papers-mar-11.txt"
TEMPLATE = "bench_template"


def _copy_rows(path: Path) -> io.BytesIO:
    """The papers rows of a JSONL corpus as COPY text (prepared before the timer starts)."""
    out = io.BytesIO()
    seen: dict[str, int] = {}
    for item in read_records(path, "jsonl"):
        if not isinstance(item, PaperRecord):
            continue
        base = slugify(item.title)
        seen[base] = n = seen.get(base, 0) + 1
        paper_id = base if n == 1 else f"{base}-{n}"
        fields = [
            paper_id, item.title, title_key(item.title), item.abstract,
            "{" + ",".join(msgspec.json.encode(a).decode() for a in item.authors) + "}",
            item.published.isoformat() if item.published else None, item.arxiv_id,
            msgspec.json.encode(item.links).decode(), msgspec.json.encode(item.source).decode(),
            content_hash(item, []), base, str(n),
        ]  # fmt: skip
        out.write(("\t".join(_copy_text(f) for f in fields) + "\n").encode())
    out.seek(0)
    return out


def _copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


async def _fresh_database(admin_url: str, name: str) -> None:
    conn = await db.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    finally:
        await conn.close()


async def _ceiling(url: str, rows: io.BytesIO) -> float:
    conn = await db.connect(url)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_to_table(
                "papers",
                source=rows,
                columns=[
                    "id", "title", "title_key", "abstract", "authors", "published", "arxiv_id",
                    "links", "source", "content_hash", "slug_base", "slug_n",
                ],
            )  # fmt: skip
        return time.perf_counter() - started
    finally:
        await conn.close()


def _load(url: str, path: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and the summary line of `papers load` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEILI_")}
    env |= {"DATABASE_URL": url, "PAPERS_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "service", "load", "--format", "jsonl", str(path)],
            env=env, stdout=out, stderr=err, cwd=ROOT,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        elapsed = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"papers load failed:\n{err.read().decode()}")
        return elapsed, usage.ru_maxrss, out.read().decode().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = start_embedded(work / "pg", delete_on_exit=True)
    admin = str(server.get_uri())
    asyncio.run(_admin(admin, f'CREATE DATABASE "{TEMPLATE}"'))
    migrate.upgrade(str(server.get_uri(database=TEMPLATE)))

    print(f"machine: {os.cpu_count()} cpus; PostgreSQL embedded; seed {args.seed}")
    print(f"{'papers':>9} {'load p/s':>9} {'COPY p/s':>9} {'ratio':>6} {'peak RSS':>9}  summary")
    for size in sizes:
        corpus = work / f"synth-{size}.jsonl"
        with corpus.open("w", encoding="utf-8") as out:
            synthesize(size, args.seed, SEED_LISTING, out)
        asyncio.run(_fresh_database(admin, "bench_load"))
        elapsed, peak_kib, summary = _load(str(server.get_uri(database="bench_load")), corpus)
        rows = _copy_rows(corpus)
        asyncio.run(_fresh_database(admin, "bench_copy"))
        ceiling = asyncio.run(_ceiling(str(server.get_uri(database="bench_copy")), rows))
        load_rate, copy_rate = size / elapsed, size / ceiling
        print(
            f"{size:>9,} {load_rate:>9,.0f} {copy_rate:>9,.0f} {load_rate / copy_rate:>6.2f} "
            f"{peak_kib / 1024:>7,.0f}MB  {summary}",
            flush=True,
        )
        corpus.unlink()
    server.cleanup()


async def _admin(url: str, sql: str) -> None:
    conn = await db.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
