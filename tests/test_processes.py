"""The `papers` command as real processes: embedded PostgreSQL lifecycle and `papers serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PgServer


def papers(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `papers …` with exactly these settings on top of a clean environment."""
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MEILI_URL"}}
    return subprocess.Popen(
        [sys.executable, "-m", "service", *args],
        env={**base, "PAPERS_LOG_LEVEL": "WARNING", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_until_healthy(process: subprocess.Popen[str], base: str, timeout: float = 60) -> None:
    """Poll `base`/health until the server says ok; raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _get(f"{base}/health")["status"] == "ok":
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_embedded_server_is_started_shared_and_keeps_its_data(tmp_path: Path) -> None:
    env = {"PAPERS_DATA_DIR": str(tmp_path / "data")}
    code, out, err = finish(papers("migrate", env=env))
    assert code == 0, err
    assert (tmp_path / "data" / "pg" / "PG_VERSION").exists()

    # Two loads at once share one server; the advisory lock makes one of them wait.
    first = papers("load", "seeds", env=env)
    second = papers("load", "seeds", env=env)
    results = [finish(first), finish(second)]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    summaries = sorted(out.strip().splitlines()[0] for _, out, _ in results)
    assert summaries == [
        "read 77, inserted 0, updated 0, unchanged 77, rejected 0",
        "read 77, inserted 77, updated 0, unchanged 0, rejected 0",
    ]

    # Every process has exited, so the server stopped; a new command finds the data again.
    code, out, err = finish(papers("load", "seeds", env=env))
    assert code == 0, err
    assert out.startswith("read 77, inserted 0, updated 0, unchanged 77")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return json.load(response)


@pytest.fixture
def blank_db(pg: PgServer) -> Iterator[str]:
    name = pg.clone("template0")
    yield pg.url(name)
    pg.drop(name)


def test_serve_migrates_loads_seeds_and_answers(blank_db: str) -> None:
    port = _free_port()
    server = papers("serve", env={"DATABASE_URL": blank_db, "PAPERS_PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, base)
        assert _get(f"{base}/v1/search?limit=0")["total"] == 77
        assert _get(f"{base}/v1/search?q=snapk")["hits"][0]["id"].startswith("snapkv")
        assert _get(f"{base}/ready")["status"] == "ok"
    finally:
        server.send_signal(signal.SIGTERM)
        code, _, err = finish(server, timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught to its default handler.
    assert code in {0, -signal.SIGTERM}, err
    assert "Traceback" not in err
