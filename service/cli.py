"""The `papers` command: serve, migrate, load."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import msgspec

from service import db, migrate
from service.config import ConfigError, Settings, load_settings
from service.embedded import resolve_database_url
from service.ingest.loader import LoadSummary
from service.ingest.records import ParseError
from service.ingest.run import load_files
from service.ingest.topics import TaxonomyError
from service.logs import configure_logging

log = logging.getLogger("service.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="papers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="migrate, load seeds/ into an empty database, serve the API")
    commands.add_parser("migrate", help="migrate the database to the newest schema")
    load = commands.add_parser("load", help="load paper files (directories: their .txt files)")
    load.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    load.add_argument("--format", choices=["listing"], default=None, help="skip format detection")
    return parser


def print_summary(summary: LoadSummary) -> None:
    """What a load did, for a person at a terminal."""
    print(summary.describe())
    for rejected in summary.rejected:
        print(
            f"  rejected {rejected.file} #{rejected.position}: {rejected.field}: {rejected.reason}"
        )
    if summary.without_topic:
        print(f"  {len(summary.without_topic)} paper(s) fit no topic:")
        for title in summary.without_topic:
            print(f"    {title}")


async def _load(url: str, settings: Settings, paths: list[Path], fmt: str | None) -> LoadSummary:
    conn = await db.connect(url)
    try:
        return await load_files(conn, paths, settings.taxonomy_path, fmt)
    finally:
        await conn.close()


async def _count(url: str) -> int:
    conn = await db.connect(url)
    try:
        return await db.count_papers(conn)
    finally:
        await conn.close()


def serve(settings: Settings) -> int:
    """Migrate, load the seeds into an empty database, then serve until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the serve command needs the server

    from service.app import create_app  # noqa: PLC0415

    url, server = resolve_database_url(settings)
    migrate.upgrade(url)
    if asyncio.run(_count(url)) == 0:
        log.info("empty database: loading %s", settings.seeds_dir)
        summary = asyncio.run(_load(url, settings, [settings.seeds_dir], None))
        log.info("seeds loaded: %s", summary.describe())
    app = create_app(msgspec.structs.replace(settings, database_url=url))
    print(f"serving on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    del server  # the embedded server stops when its last user exits
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `papers` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"papers: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return _run(args, settings)
    except (ParseError, TaxonomyError, FileNotFoundError) as error:
        print(f"papers: {error}; nothing was loaded", file=sys.stderr)
        return 1


def _run(args: Any, settings: Settings) -> int:
    if args.command == "serve":
        return serve(settings)
    url, server = resolve_database_url(settings)
    if args.command == "migrate":
        migrate.upgrade(url)
        print("database is at the newest schema")
    elif args.command == "load":
        migrate.upgrade(url)
        print_summary(asyncio.run(_load(url, settings, args.paths, args.format)))
    del server
    return 0
