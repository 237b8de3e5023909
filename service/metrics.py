"""Prometheus metrics: what the API process counts as it answers, and what /metrics reads when
it is scraped (the pool's state, and the load runs recorded in the database).

Counters live in one process-wide registry, as Prometheus clients do: with several worker
processes, each exposes its own and Prometheus sums them. Label values are bounded: routes
are templates (`/v1/papers/{paper_id}`), never raw paths; a request that matched no route
(unknown paths, and requests refused before routing) is counted under `UNROUTED`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from service import db

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
UNROUTED: Final = "(unrouted)"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a cached paper (~1 ms) to a statement timeout (10 s).
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REGISTRY: Final = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

REQUESTS: Final = Counter(
    "papers_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY: Final = Histogram(
    "papers_http_request_duration_seconds",
    "Time from receiving a request to the end of its answer, by method, route and status.",
    ["method", "route", "status"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT: Final = Gauge(
    "papers_http_requests_in_flight", "HTTP requests being answered now.", registry=REGISTRY
)
REJECTED: Final = Counter(
    "papers_http_rejected",
    "Requests refused before reaching a handler: `overloaded` (PAPERS_MAX_IN_FLIGHT), "
    "`rate-limit-burst` or `rate-limit-quota`.",
    ["reason"],
    registry=REGISTRY,
)
DB_TIMEOUTS: Final = Counter(
    "papers_db_timeouts",
    "Requests answered 503 because PostgreSQL was too slow: `statement` (statement timeout), "
    "`pool` (no free connection in time) or `command` (no answer at all).",
    ["kind"],
    registry=REGISTRY,
)
FALLBACKS: Final = Counter(
    "papers_search_fallbacks",
    "Searches and suggestions answered by the fallback engine because the primary failed.",
    ["primary", "fallback"],
    registry=REGISTRY,
)


def record_fallback(primary: str, fallback: str) -> None:
    """Count one answer given by `fallback` because `primary` could not give it."""
    FALLBACKS.labels(primary, fallback).inc()


def observe(app: ASGIApp) -> ASGIApp:
    """Count every HTTP request and time it, by method, route template and status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500  # unless a response starts

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        IN_FLIGHT.inc()
        try:
            await app(scope, receive, send_with_status)
        finally:
            IN_FLIGHT.dec()
            labels = (method, scope.get("path_template") or UNROUTED, status)
            children = _children.get(labels)
            if children is None:
                children = _children[labels] = _labelled(*labels)
            children[0].inc()
            children[1].observe(time.perf_counter() - started)

    return middleware


# The labelled series by (method, route template, status): bounded by the routes, and
# looked up here rather than through `labels()`, which takes a lock and builds a key each time.
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _labelled(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route, str(status))


class PoolState:
    """The connection pool's size when scraped."""

    def __init__(self, size: int, idle: int, max_size: int) -> None:
        self.size = size
        self.idle = idle
        self.max_size = max_size


class _Scraped(Collector):
    """Values read at scrape time rather than counted in process."""

    def __init__(self, pool: PoolState | None, loads: Sequence[db.LoadRunTotals] | None) -> None:
        self.pool = pool
        self.loads = loads

    def collect(self) -> Iterable[Metric]:
        if self.pool is not None:
            connections = GaugeMetricFamily(
                "papers_db_pool_connections",
                "Connections of the API's PostgreSQL pool, by state.",
                labels=["state"],
            )
            connections.add_metric(["in_use"], self.pool.size - self.pool.idle)
            connections.add_metric(["idle"], self.pool.idle)
            yield connections
            yield GaugeMetricFamily(
                "papers_db_pool_max_connections",
                "The pool's maximum size (PAPERS_POOL_MAX_SIZE).",
                value=self.pool.max_size,
            )
        yield GaugeMetricFamily(
            "papers_loader_stats_up",
            "1 when the load runs below could be read from PostgreSQL for this scrape, else 0.",
            value=0 if self.loads is None else 1,
        )
        if self.loads is not None:
            yield from _load_families(self.loads)


def _load_families(loads: Sequence[db.LoadRunTotals]) -> Iterable[Metric]:
    runs = CounterMetricFamily(
        "papers_loader_runs",
        "`papers load` runs recorded in the database, by outcome (ok, dry-run, failed).",
        labels=["outcome"],
    )
    records = CounterMetricFamily(
        "papers_loader_records",
        "Records of successful (`ok`) load runs, by what became of them; `rejected` records "
        "were not stored.",
        labels=["result"],
    )
    last = GaugeMetricFamily(
        "papers_loader_last_run_timestamp_seconds",
        "When the last load run with this outcome finished (Unix time).",
        labels=["outcome"],
    )
    for total in loads:
        runs.add_metric([total.outcome], total.runs)
        last.add_metric([total.outcome], total.last_finished_at.timestamp())
        if total.outcome == "ok":
            for name in db.LOAD_RUN_COUNTS:
                records.add_metric([name], getattr(total, name))
    yield from (runs, records, last)


def render(pool: PoolState | None, loads: Sequence[db.LoadRunTotals] | None) -> bytes:
    """The exposition: the process-wide counters, then the values read for this scrape
    (`loads` None: PostgreSQL could not be read)."""
    return generate_latest(REGISTRY) + generate_latest(_Scraped(pool, loads))
