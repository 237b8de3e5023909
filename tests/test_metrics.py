"""Observability through the real app: /metrics (parsed with Prometheus' own parser), load runs
recorded by real `papers load` processes, search fallbacks, and request ids in answers and logs.

Counters are process-wide (one registry, as in production), so tests compare a scrape taken
before with one taken after."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Scope
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.logs import JsonFormatter, request_id
from tests.conftest import write
from tests.test_limits import running

Client = AsyncTestClient[Litestar]
PAPER = "/v1/papers/densing-law-of-llms"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def app_with(url: str, **overrides: Any) -> Litestar:
    return create_app(
        Settings(**{"database_url": url, "pool_min_size": 0, "pool_max_size": 4, **overrides})
    )


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.headers["cache-control"] == "no-store"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, route: str, status: str, method: str = "GET") -> float:
    return value(samples, "papers_http_requests_total", method=method, route=route, status=status)


async def test_requests_are_counted_by_route_template_and_status(client: Client) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(PAPER)).status_code == 200
    assert (await client.get("/v1/papers/no-such-paper")).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404
    assert (await client.head(PAPER)).status_code == 200
    after = await scrape(client)
    route = "/v1/papers/{paper_id}"
    assert requests(after, route, "200") - requests(before, route, "200") == 3
    assert requests(after, route, "404") - requests(before, route, "404") == 1
    assert requests(after, route, "200", "HEAD") - requests(before, route, "200", "HEAD") == 1
    assert requests(after, "(unrouted)", "404") - requests(before, "(unrouted)", "404") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert "/v1/papers/densing-law-of-llms" not in routes  # never a raw path
    labels = {"method": "GET", "route": route, "status": "200"}
    count = value(after, "papers_http_request_duration_seconds_count", **labels)
    assert count - value(before, "papers_http_request_duration_seconds_count", **labels) == 3
    assert value(after, "papers_http_request_duration_seconds_bucket", **labels, le="+Inf") == count
    assert value(after, "papers_http_request_duration_seconds_sum", **labels) > 0


async def test_the_pool_is_reported_at_scrape_time(client: Client) -> None:
    assert (await client.get(PAPER)).status_code == 200  # its connection is back in the pool
    samples = await scrape(client)
    assert value(samples, "papers_db_pool_max_connections") == 4  # app_for's pool
    assert value(samples, "papers_db_pool_connections", state="in_use") == 0
    assert 1 <= value(samples, "papers_db_pool_connections", state="idle") <= 4
    assert value(samples, "process_resident_memory_bytes") > 0


async def test_refusals_are_counted_by_reason(seeded_db: str) -> None:
    # Behind a trusted proxy (loopback), so that the scraper and the client are told apart.
    async with running(
        seeded_db, rate_limit_burst=2, rate_limit_per_s=0.01, trusted_proxies=("127.0.0.1",)
    ) as client:
        scraper = {"X-Forwarded-For": "192.0.2.100"}
        before = await scrape(client, **scraper)
        statuses = [
            (await client.get(PAPER, headers={"X-Forwarded-For": "198.51.100.1"})).status_code
            for _ in range(3)
        ]
        after = await scrape(client, **scraper)
    assert statuses == [200, 200, 429]
    name = "papers_http_rejected_total"
    burst = value(after, name, reason="rate-limit-burst")
    assert burst - value(before, name, reason="rate-limit-burst") == 1
    assert requests(after, "(unrouted)", "429") - requests(before, "(unrouted)", "429") == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Log lines as production writes them (JSON, formatted when emitted)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def test_fallbacks_are_counted_and_logged_with_the_request_id(
    seeded_db: str, json_log: io.StringIO
) -> None:
    app = app_with(seeded_db, meili_url=f"http://127.0.0.1:{closed_port()}")
    async with AsyncTestClient(app) as client:
        before = await scrape(client)
        response = await client.get("/v1/search?q=scaling", headers={"X-Request-ID": "fb-1"})
        after = await scrape(client)
    assert response.status_code == 200
    assert response.json()["engine"] == "postgres"
    name = "papers_search_fallbacks_total"
    labels = {"primary": "meilisearch", "fallback": "postgres"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1
    lines = [msgspec.json.decode(line) for line in json_log.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "fb-1"]
    assert {line["logger"] for line in mine} >= {"service.access", "service.search.fallback"}
    warning = next(line for line in mine if line["logger"] == "service.search.fallback")
    assert warning["level"] == "WARNING"


async def test_a_sane_request_id_is_echoed_and_anything_else_replaced(client: Client) -> None:
    kept = ["abc-123", "4bf92f3577b34da6a3ce929d0e0e4736", "00-trace:span/1+x=y@z~"]
    for rid in kept:
        response = await client.get("/health", headers={"X-Request-ID": rid})
        assert response.headers["x-request-id"] == rid
    for bad in ["", "x" * 129, "has space", 'quote"d', "back\\slash", "ünïcode", "<script>"]:
        response = await client.get("/health", headers=[(b"X-Request-ID", bad.encode())])
        replaced = response.headers["x-request-id"]
        assert replaced != bad
        assert len(replaced) == 32
        int(replaced, 16)


def test_new_request_ids_differ_between_processes_forked_from_one() -> None:
    """`papers serve` imports the id source before the server forks its workers: each worker
    must draw its own prefix, or two workers would hand out the same ids."""
    no_id = cast("Scope", {"type": "http", "headers": []})
    parent = [request_id(no_id) for _ in range(2)]
    assert parent[0] != parent[1]
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one new id, leave at once
        os.write(writer, request_id(no_id).encode())
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 100).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child[:16] != parent[0][:16]  # another prefix
    assert child not in parent


async def test_every_answer_carries_one_request_id(client: Client) -> None:
    answers = [
        await client.get(PAPER),
        await client.get("/v1/papers/no-such-paper"),
        await client.get("/no/such/route"),
        await client.delete(PAPER),
        await client.get("/v1/papers?limit=1000"),
        await client.post("/v1/papers/batch", content=b"{", headers={"content-type": "text/plain"}),
        await client.get("/metrics"),
    ]
    for response in answers:
        assert len(response.headers.get_list("x-request-id")) == 1, response.status_code


# --- load runs ---------------------------------------------------------------------------------


async def papers_load(database_url: str, *args: str) -> tuple[int, str]:
    """Run `papers load` as its own process, as an operator would."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PAPERS_SEEDS_DIR": str(PROJECT_ROOT / "seeds"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "load", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


def counts(output: str) -> dict[str, int]:
    """`read 2, inserted 1, updated 0, unchanged 0, rejected 1` as a dict."""
    line = next(line for line in output.splitlines() if line.startswith("read "))
    pairs = (part.strip().split(" ")[:2] for part in line.split("(")[0].split(","))
    return {name: int(number) for name, number in pairs}


async def test_load_runs_are_exported(empty_db: str, tmp_path: Path) -> None:
    good = write(
        tmp_path / "papers.jsonl",
        '{"title": "A paper on scaling laws", "abstract": "We fit scaling laws to models."}\n'
        '{"title": "", "abstract": "A record without a title is rejected."}\n'
        '{"title": "Another paper", "abstract": "KV cache compression for inference."}\n',
    )
    bad = write(tmp_path / "broken.json", '[{"title": "cut off", "abstract": ')
    code, ok_output = await papers_load(empty_db, str(good))
    assert code == 0, ok_output
    code, dry_output = await papers_load(empty_db, "--dry-run", str(good))
    assert code == 0, dry_output
    code, failed_output = await papers_load(empty_db, str(bad))
    assert code == 1, failed_output
    async with AsyncTestClient(app_with(empty_db)) as client:
        samples = await scrape(client)
    assert value(samples, "papers_loader_stats_up") == 1
    for outcome in ("ok", "dry-run", "failed"):
        assert value(samples, "papers_loader_runs_total", outcome=outcome) == 1
        assert value(samples, "papers_loader_last_run_timestamp_seconds", outcome=outcome) > 0
    loaded = counts(ok_output)
    assert loaded["rejected"] == 1
    for result, number in loaded.items():
        assert value(samples, "papers_loader_records_total", result=result) == number
