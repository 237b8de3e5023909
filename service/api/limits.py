"""Limits that keep the API answering under load: it refuses quickly rather than queueing.

- Request bodies: at most `MAX_BODY_BYTES` (413 `payload-too-large`).
- Requests in progress: at most PAPERS_MAX_IN_FLIGHT per process; one more is answered at
  once with 503 `overloaded` and `Retry-After`, without touching the database.
- PostgreSQL: each statement of the API is cancelled by the server after
  PAPERS_STATEMENT_TIMEOUT_MS (set on the pool's connections only; loads are not limited),
  and waiting for a pooled connection gives up after PAPERS_POOL_TIMEOUT_S. Both are 503
  `unavailable` with `Retry-After`, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from service import metrics
from service.api.problems import PROBLEM_JSON, build_problem, problem_response
from service.models import Problem

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1 << 20
"""1 MiB: a batch of 500 ids with `fields` needs about a tenth of it."""

OVERLOAD_RETRY_AFTER_S: Final = 1
POOL_RETRY_AFTER_S: Final = 1
TIMEOUT_RETRY_AFTER_S: Final = 5
NOT_LIMITED: Final = frozenset({"/health", "/ready", "/metrics"})
"""Probes and scrapes must still answer when the API is saturated: that is when they matter."""


class PoolTimeoutError(TimeoutError):
    """No pooled PostgreSQL connection became free within PAPERS_POOL_TIMEOUT_S."""


async def send_problem(
    scope: Scope, send: Send, status: int, code: str, detail: str, headers: dict[str, str]
) -> None:
    """Answer with a problem+json straight from ASGI middleware (outside Litestar's routing)."""
    body = msgspec.json.encode(build_problem(status, None, detail, scope["path"], code=code))
    raw = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    head = scope.get("method") == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


def limit_in_flight(app: ASGIApp, max_in_flight: int) -> ASGIApp:
    """At most `max_in_flight` requests in progress; beyond that, 503 `overloaded` at once.

    Waiting would only move the queue from the socket into memory and make every request
    slower; a quick 503 with `Retry-After` lets clients and load balancers back off.
    """
    in_flight = 0

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal in_flight
        if scope["type"] != ScopeType.HTTP or scope["path"] in NOT_LIMITED:
            await app(scope, receive, send)
            return
        if in_flight >= max_in_flight:
            metrics.REJECTED.labels("overloaded").inc()
            await send_problem(
                scope,
                send,
                503,
                "overloaded",
                f"{max_in_flight} requests are in progress, the most this server takes; "
                f"retry after {OVERLOAD_RETRY_AFTER_S} second(s)",
                {"Retry-After": str(OVERLOAD_RETRY_AFTER_S)},
            )
            return
        in_flight += 1
        try:
            await app(scope, receive, send)
        finally:
            in_flight -= 1

    return middleware


def _too_slow(
    request: Request[Any, Any, Any], kind: str, detail: str, retry_after: int, exc: Exception
) -> Response[Problem]:
    metrics.DB_TIMEOUTS.labels(kind).inc()
    log.warning("%s timeout on %s %s: %s", kind, request.method, request.url.path, exc)
    return problem_response(
        503,
        None,
        detail,
        request.url.path,
        headers={"Retry-After": str(retry_after)},
        code="unavailable",
    )


def handle_statement_timeout(
    request: Request[Any, Any, Any], exc: asyncpg.QueryCanceledError
) -> Response[Problem]:
    """PostgreSQL cancelled a statement that ran past PAPERS_STATEMENT_TIMEOUT_MS."""
    detail = "The database did not answer in time; retry shortly."
    return _too_slow(request, "statement", detail, TIMEOUT_RETRY_AFTER_S, exc)


def handle_pool_timeout(
    request: Request[Any, Any, Any], exc: PoolTimeoutError
) -> Response[Problem]:
    """Every pooled connection stayed busy for PAPERS_POOL_TIMEOUT_S."""
    detail = "Every database connection is busy; retry shortly."
    return _too_slow(request, "pool", detail, POOL_RETRY_AFTER_S, exc)


def handle_timeout(request: Request[Any, Any, Any], exc: TimeoutError) -> Response[Problem]:
    """Any other timeout (asyncpg's client-side command timeout): a backing service is slow."""
    detail = "A backing service did not answer in time; retry shortly."
    return _too_slow(request, "command", detail, TIMEOUT_RETRY_AFTER_S, exc)


def exception_handlers() -> dict[Any, Any]:
    """Timeouts as 503 problems with `Retry-After` (merged over problems.exception_handlers)."""
    return {
        asyncpg.QueryCanceledError: handle_statement_timeout,
        PoolTimeoutError: handle_pool_timeout,
        TimeoutError: handle_timeout,
    }
