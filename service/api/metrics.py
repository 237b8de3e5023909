"""GET /metrics: Prometheus text exposition of the API's counters, pool and load runs."""

from __future__ import annotations

import logging

import asyncpg
from litestar import Response, get
from litestar.datastructures import State

from service import db, metrics

log = logging.getLogger(__name__)

SCRAPE_DB_TIMEOUT_S = 2.0


async def _load_runs(pool: db.Pool) -> list[db.LoadRunTotals] | None:
    try:
        async with pool.acquire(timeout=SCRAPE_DB_TIMEOUT_S) as conn:
            return await db.load_run_totals(conn)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("metrics: load runs unreadable: %s", error)
        return None


@get(
    "/metrics",
    summary="Metrics (Prometheus)",
    tags=["health"],
    media_type=metrics.CONTENT_TYPE,
    include_in_schema=True,
)
async def get_metrics(state: State) -> Response[bytes]:
    """Prometheus text format (0.0.4), for this process:

    - `papers_http_requests_total` and `papers_http_request_duration_seconds` (histogram) by
      `method`, `route` (the route template, e.g. `/v1/papers/{paper_id}`; `(unrouted)` for
      unknown paths and requests refused before routing) and `status`;
      `papers_http_requests_in_flight`; `papers_http_rejected_total` by `reason`
      (`overloaded`, `rate-limit-burst`, `rate-limit-quota`);
    - `papers_db_pool_connections` by `state` (`in_use`, `idle`),
      `papers_db_pool_max_connections`, `papers_db_timeouts_total` by `kind`;
    - `papers_search_fallbacks_total` by `primary` and `fallback` engine;
    - `papers_loader_runs_total` by `outcome`, `papers_loader_records_total` by `result`
      (read, inserted, updated, unchanged, pruned, rejected) and
      `papers_loader_last_run_timestamp_seconds`, read from the runs `papers load` records in
      PostgreSQL (`papers_loader_stats_up` is 0 when it could not be read);
    - `process_*`: CPU, memory and open files of the process.
    """
    pool: db.Pool = state.pool
    pool_state = metrics.PoolState(pool.get_size(), pool.get_idle_size(), pool.get_max_size())
    body = metrics.render(pool_state, await _load_runs(pool))
    return Response(body, media_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})
