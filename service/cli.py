"""The `papers` command: serve, migrate, load, synth, reindex, meili-keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
from litestar import Litestar

from service import db, migrate
from service.config import ConfigError, Settings, load_settings
from service.embedded import resolve_database_url
from service.ingest.formats import PARSERS, count_records, expand_paths
from service.ingest.loader import LoadLockedError, LoadOptions, LoadRejectedError, LoadSummary
from service.ingest.records import ParseError
from service.ingest.run import load_files
from service.ingest.synth import synthesize
from service.ingest.topics import TaxonomyError
from service.logs import configure_logging
from service.progress import Progress
from service.search.engine import EngineUnavailableError
from service.search.meili_keys import provision_keys
from service.search.meilisearch import (
    MeilisearchEngine,
    MeilisearchRequestError,
    MeilisearchTaskError,
)
from service.search.sync import drain_outbox, rebuild_index

log = logging.getLogger("service.cli")


class CommandError(RuntimeError):
    """A command failed in a way the user can act on; the message says how."""


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per job."""
    parser = argparse.ArgumentParser(prog="papers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="migrate, load seeds/ into an empty database, serve the API")
    commands.add_parser("migrate", help="migrate the database to the newest schema")
    load = commands.add_parser("load", help="load paper files (directories: their paper files)")
    load.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    load.add_argument(
        "--format", choices=sorted(PARSERS), default=None, help="skip format detection"
    )
    load.add_argument(
        "--dry-run", action="store_true", help="parse, validate, classify; write nothing"
    )
    load.add_argument(
        "--strict", action="store_true", help="fail the load if any record is rejected"
    )
    load.add_argument(
        "--prune",
        action="store_true",
        help="delete papers an earlier load of the same file had and this one lacks",
    )
    load.add_argument("--no-wait", action="store_true", help="give up if another load is running")
    synth = commands.add_parser("synth", help="write a synthetic corpus as JSON Lines")
    synth.add_argument("--count", type=_non_negative, required=True, help="how many papers")
    synth.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    synth.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    commands.add_parser(
        "reindex", help="rebuild the Meilisearch index from PostgreSQL and swap it in"
    )
    keys = commands.add_parser(
        "meili-keys", help="create the search and admin keys from MEILI_MASTER_KEY"
    )
    keys.add_argument("--write", type=Path, required=True, metavar="FILE", help="env file to write")
    return parser


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def print_summary(summary: LoadSummary) -> None:
    """What a load did, for a person at a terminal."""
    print(summary.describe())
    for rejected in summary.rejected:
        where = f"{rejected.file}:{rejected.line}" if rejected.line else rejected.file
        print(f"  rejected {where} record {rejected.position}: {rejected.field}: {rejected.reason}")
    if summary.rejected_count > len(summary.rejected):
        print(f"  … and {summary.rejected_count - len(summary.rejected)} more rejected")
    if summary.without_topic_count:
        print(f"  {summary.without_topic_count} paper(s) fit no topic:")
        for title in summary.without_topic:
            print(f"    {title}")


def _announce_wait(pid: int | None) -> None:
    print(
        f"another load is running (PostgreSQL backend pid {pid}); waiting for it to finish…",
        file=sys.stderr,
        flush=True,
    )


def _admin_engine(settings: Settings) -> MeilisearchEngine | None:
    if settings.meili_url is None:
        return None
    return MeilisearchEngine(settings.meili_url, settings.meili_admin_key, timeout=30)


async def _sync_index(conn: db.Connection, settings: Settings) -> str:
    meili = _admin_engine(settings)
    if meili is None:
        # The PostgreSQL engine searches the tables themselves: nothing to send.
        await db.unqueue_all(conn, await db.now(conn))
        return "search index (postgres): up to date"
    try:
        indexed, deleted = await drain_outbox(conn, meili)
    except (EngineUnavailableError, MeilisearchRequestError, MeilisearchTaskError) as error:
        raise CommandError(
            f"the papers are saved in PostgreSQL, but the search index was not updated: {error}. "
            "The next `papers load` or `papers reindex` sends them again."
        ) from error
    finally:
        await meili.close()
    return f"search index ({meili.name}): {indexed} indexed, {deleted} deleted"


async def _load(
    url: str,
    settings: Settings,
    paths: list[Path],
    fmt: str | None,
    options: LoadOptions | None = None,
    *,
    wait: bool = True,
) -> None:
    # Changes are queued for Meilisearch only when there is one to send them to.
    options = msgspec.structs.replace(
        options or LoadOptions(), queue_for_index=settings.meili_url is not None
    )
    conn = await db.connect(url)
    progress = Progress(total=count_records(expand_paths(paths)))
    try:
        started = datetime.now(UTC)
        try:
            summary = await load_files(
                conn, paths, settings.taxonomy_path, fmt, options,
                progress=progress, on_wait=_announce_wait, wait=wait,
            )  # fmt: skip
        except Exception as error:
            await _record_run(conn, started, paths, None, error)
            raise
        await _record_run(conn, started, paths, summary)
        progress.close()
        print_summary(summary)
        if not summary.dry_run:
            print(await _sync_index(conn, settings))
    finally:
        await conn.close()


async def _record_run(
    conn: db.Connection,
    started: datetime,
    paths: list[Path],
    summary: LoadSummary | None,
    error: Exception | None = None,
) -> None:
    """Record the run in `load_runs` for the API's /metrics; a failure to do so is only logged."""
    if summary is None:
        outcome, counts = "failed", None
    else:
        outcome = "dry-run" if summary.dry_run else "ok"
        counts = {name: getattr(summary, name) for name in db.LOAD_RUN_COUNTS if name != "rejected"}
        counts["rejected"] = summary.rejected_count
    try:
        await db.record_load_run(
            conn,
            started_at=started,
            outcome=outcome,
            files=[str(p) for p in paths],
            counts=counts,
            error=None if error is None else str(error)[:1000],
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as failure:
        log.warning("could not record the load run: %s", failure)


async def _reindex(url: str, settings: Settings) -> None:
    meili = _admin_engine(settings)
    if meili is None:
        print(
            "MEILI_URL is not set: the PostgreSQL engine searches the tables themselves; nothing to rebuild"
        )
        return
    conn = await db.connect(url)
    try:
        total = await db.count_papers(conn)
        count = await rebuild_index(
            conn, meili, lambda n: print(f"  {n}/{total} papers sent", flush=True)
        )
    except (EngineUnavailableError, MeilisearchRequestError, MeilisearchTaskError) as error:
        raise CommandError(f"reindex failed, the live index is unchanged: {error}") from error
    finally:
        await conn.close()
        await meili.close()
    print(f"reindexed: {count} documents in {meili.index_name!r}")


def _meili_keys(settings: Settings, target: Path) -> None:
    master = os.environ.get("MEILI_MASTER_KEY")
    if settings.meili_url is None or not master:
        raise CommandError("meili-keys needs MEILI_URL and MEILI_MASTER_KEY")
    search_key, admin_key = asyncio.run(provision_keys(settings.meili_url, master))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600)
    target.write_text(f"MEILI_SEARCH_KEY={search_key}\nMEILI_ADMIN_KEY={admin_key}\n")
    print(f"wrote the search and admin keys to {target}")


async def _count(url: str) -> int:
    conn = await db.connect(url)
    try:
        return await db.count_papers(conn)
    finally:
        await conn.close()


def serve(settings: Settings) -> int:
    """Migrate, load the seeds into an empty database, then serve until interrupted.

    The database is prepared once, here, before the server forks its PAPERS_WORKERS worker
    processes; each builds its own app (`worker_app`), with its own pool and limits.
    """
    url, server = resolve_database_url(settings)
    migrate.upgrade(url)
    if asyncio.run(_count(url)) == 0:
        print(f"empty database: loading {settings.seeds_dir}", flush=True)
        asyncio.run(_load(url, settings, [settings.seeds_dir], None))
    # The workers read their settings from the environment: point them at this database
    # (the embedded server, when there is one, lives as long as this process).
    os.environ["DATABASE_URL"] = url
    print(
        f"serving on http://{settings.host}:{settings.port} "
        f"({settings.server}, {settings.workers} worker(s))",
        flush=True,
    )
    if settings.server == "granian":
        _serve_granian(settings)
    else:
        _serve_uvicorn(settings)
    del server  # the embedded server stops when its last user exits
    return 0


WORKER_APP = "service.cli:worker_app"


def worker_app() -> Litestar:
    """The app of one server worker process, from the environment `serve` prepared."""
    from service.app import create_app  # noqa: PLC0415 - only the serve command needs the app

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _serve_granian(settings: Settings) -> None:
    from granian.constants import Interfaces, Loops  # noqa: PLC0415
    from granian.log import LogLevels  # noqa: PLC0415
    from granian.server import Server  # noqa: PLC0415

    Server(
        WORKER_APP,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        factory=True,
        websockets=False,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,  # ours, service/logs.py, carries the request id
        workers_kill_timeout=settings.shutdown_grace_s,
    ).serve()


def _serve_uvicorn(settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415

    # proxy_headers off: X-Forwarded-For is believed only from PAPERS_TRUSTED_PROXIES (ratelimit.py).
    uvicorn.run(
        WORKER_APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `papers` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"papers: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return _run(args, settings)
    except (ParseError, TaxonomyError, FileNotFoundError, LoadRejectedError) as error:
        print(f"papers: {error}; nothing was loaded", file=sys.stderr)
        return 1
    except (CommandError, LoadLockedError) as error:
        print(f"papers: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return serve(settings)
    if args.command == "synth":
        seed_listing = settings.seeds_dir / "daily-papers-mar-11.txt"
        if args.out is None:
            synthesize(args.count, args.seed, seed_listing, sys.stdout)
        else:
            with args.out.open("w", encoding="utf-8", newline="\n") as out:
                synthesize(args.count, args.seed, seed_listing, out)
        return 0
    if args.command == "meili-keys":
        _meili_keys(settings, args.write)
        return 0
    url, server = resolve_database_url(settings)
    migrate.upgrade(url)
    if args.command == "migrate":
        print("database is at the newest schema")
    elif args.command == "load":
        options = LoadOptions(dry_run=args.dry_run, strict=args.strict, prune=args.prune)
        asyncio.run(_load(url, settings, args.paths, args.format, options, wait=not args.no_wait))
    elif args.command == "reindex":
        asyncio.run(_reindex(url, settings))
    del server
    return 0
