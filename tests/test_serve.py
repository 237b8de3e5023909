"""`papers serve` under each server it supports, with several worker processes."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from service.config import ConfigError, load_settings
from tests.conftest import PgServer
from tests.test_processes import _free_port, _get, finish, papers, wait_until_healthy


@pytest.fixture
def blank_db(pg: PgServer) -> Iterator[str]:
    name = pg.clone("template0")
    yield pg.url(name)
    pg.drop(name)


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_serve_prepares_the_database_once_then_starts_the_workers(
    blank_db: str, server: str
) -> None:
    port = _free_port()
    env = {
        "DATABASE_URL": blank_db,
        "PAPERS_PORT": str(port),
        "PAPERS_SERVER": server,
        "PAPERS_WORKERS": "2",
    }
    process = papers("serve", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base)
        # Several requests, so that both workers answer some: each sees the seeded database.
        totals = {_get(f"{base}/v1/search?limit=0")["total"] for _ in range(20)}
        assert totals == {77}
    finally:
        process.send_signal(signal.SIGTERM)
        code, out, err = finish(process, timeout=30)
    assert code in {0, -signal.SIGTERM}, err
    assert "Traceback" not in err
    assert out.count("empty database: loading") == 1  # once, before the workers start
    assert f"({server}, 2 worker(s))" in out


def test_server_and_workers_settings_are_checked() -> None:
    assert load_settings({"PAPERS_SERVER": "Uvicorn"}).server == "uvicorn"
    assert load_settings({"PAPERS_WORKERS": "3"}).workers == 3
    assert load_settings({}).workers >= 1
    with pytest.raises(ConfigError, match="PAPERS_SERVER"):
        load_settings({"PAPERS_SERVER": "gunicorn"})
    with pytest.raises(ConfigError, match="PAPERS_WORKERS"):
        load_settings({"PAPERS_WORKERS": "0"})
