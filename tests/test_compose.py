"""The deployment files hold together: docker-compose.yml and the Dockerfile, read as data."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("postgres", "meilisearch", "setup", "api")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$|MASTER_KEY")
PASSWORD_IN_URL = re.compile(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@/\s]*)@")
INTERPOLATION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment must be a mapping"
    return {str(key): str(value) for key, value in env.items()}


def _command_text(service: dict[str, Any]) -> str:
    parts: list[str] = []
    for field in ("entrypoint", "command"):
        value = service.get(field)
        parts.extend(value if isinstance(value, list) else [value] if value else [])
    return " ".join(str(part) for part in parts)


def test_the_four_services_exist(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(compose["services"])


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    assert _service(compose, "postgres")["image"] == "postgres:18"
    meili = _service(compose, "meilisearch")["image"]
    assert re.fullmatch(r"getmeili/meilisearch:v1\.\d+(\.\d+)?", meili), meili
    for name, service in compose["services"].items():
        image = service.get("image")
        if image is None:
            assert service.get("build"), f"{name} has neither image nor build"
            continue
        assert ":" in image, f"{name}: untagged image {image}"
        assert not image.endswith(":latest"), f"{name}: {image}"


@pytest.mark.parametrize("name", ["postgres", "meilisearch", "api"])
def test_long_running_services_have_healthchecks(compose: dict[str, Any], name: str) -> None:
    check = _service(compose, name)["healthcheck"]
    assert check["test"], name
    assert not check.get("disable", False)
    assert {"interval", "timeout", "retries"} <= set(check)


def test_postgres_healthcheck_uses_pg_isready(compose: dict[str, Any]) -> None:
    assert "pg_isready" in " ".join(_service(compose, "postgres")["healthcheck"]["test"])


def test_meilisearch_healthcheck_hits_health(compose: dict[str, Any]) -> None:
    assert "/health" in " ".join(_service(compose, "meilisearch")["healthcheck"]["test"])


def test_api_healthcheck_hits_health(compose: dict[str, Any]) -> None:
    assert "127.0.0.1:8000/health" in " ".join(_service(compose, "api")["healthcheck"]["test"])


def test_setup_waits_for_healthy_databases(compose: dict[str, Any]) -> None:
    depends = _service(compose, "setup")["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["meilisearch"]["condition"] == "service_healthy"


def test_api_waits_for_setup_to_succeed(compose: dict[str, Any]) -> None:
    depends = _service(compose, "api")["depends_on"]
    assert depends["setup"]["condition"] == "service_completed_successfully"


def test_setup_migrates_provisions_keys_then_loads(compose: dict[str, Any]) -> None:
    setup = _service(compose, "setup")
    assert setup.get("build")
    text = _command_text(setup)
    steps = ["papers migrate", "papers meili-keys --write /keys/meili.env", "papers load seeds/"]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)
    # The master key is gone before the loader runs; the loader gets the admin key.
    assert text.index("unset MEILI_MASTER_KEY") < text.index("papers load")
    assert setup.get("restart") == "no"


def test_api_serves_with_the_search_key_only(compose: dict[str, Any]) -> None:
    api = _service(compose, "api")
    text = _command_text(api)
    assert ". /keys/meili.env" in text
    assert "unset MEILI_ADMIN_KEY" in text
    assert text.rstrip().endswith("exec papers serve")
    assert "MEILI_MASTER_KEY" not in _environment(api)
    assert "8000:8000" in [str(port) for port in api["ports"]]
    assert "keys:/keys:ro" in api["volumes"]


def test_app_services_reach_postgres_and_meilisearch(compose: dict[str, Any]) -> None:
    for name in ("setup", "api"):
        env = _environment(_service(compose, name))
        assert env["MEILI_URL"] == "http://meilisearch:7700"
        url = env["DATABASE_URL"]
        assert url.startswith("postgresql://papers:${POSTGRES_PASSWORD")
        assert url.endswith("@postgres:5432/papers")


def test_meilisearch_runs_in_production_mode(compose: dict[str, Any]) -> None:
    assert _environment(_service(compose, "meilisearch"))["MEILI_ENV"] == "production"


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(value), f"{name}.{key} must come from ${{...}}"
                assert ":?" in value, f"{name}.{key} must be required, with no default"
            for password in PASSWORD_IN_URL.findall(value):
                assert INTERPOLATION.fullmatch(password), f"{name}.{key} embeds a password"


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    assert {"pgdata", "meili_data", "keys"} <= declared
    used = {
        str(volume).split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
    }
    assert used <= declared
    assert "pgdata:/var/lib/postgresql" in _service(compose, "postgres")["volumes"]
    assert "meili_data:/meili_data" in _service(compose, "meilisearch")["volumes"]


def test_dockerfile_is_multi_stage_on_python_slim(dockerfile: list[str]) -> None:
    stages = [line for line in dockerfile if line.upper().startswith("FROM ")]
    assert len(stages) >= 2
    assert stages[0].startswith("FROM python:3.11-slim AS builder")
    assert stages[-1] == "FROM python:3.11-slim"
    assert any(line.startswith("COPY --from=builder") for line in dockerfile)


def test_dockerfile_runs_as_a_non_root_user(dockerfile: list[str]) -> None:
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users, "no USER instruction"
    assert users[-1] not in {"root", "0", "0:0"}


def test_dockerfile_has_healthcheck_and_papers_entrypoint(dockerfile: list[str]) -> None:
    checks = [line for line in dockerfile if line.startswith("HEALTHCHECK")]
    assert checks
    assert "http://127.0.0.1:8000/health" in checks[-1]
    assert 'ENTRYPOINT ["papers"]' in dockerfile
    assert 'CMD ["serve"]' in dockerfile


def test_dockerfile_copies_what_the_service_needs_and_listens_everywhere(
    dockerfile: list[str],
) -> None:
    runtime = dockerfile[max(i for i, line in enumerate(dockerfile) if line.startswith("FROM ")) :]
    copied = " ".join(line for line in runtime if line.startswith("COPY "))
    for path in ("service/", "migrations/", "seeds/", "pyproject.toml", "README.md"):
        assert path in copied, path
    assert "PAPERS_HOST=0.0.0.0" in " ".join(runtime)


def test_every_papers_command_in_compose_exists_in_the_cli(compose: dict[str, Any]) -> None:
    text = json.dumps(compose)
    invocations = re.findall(r"papers ([a-z][a-z-]*(?: [^;\"\\\\]*)?)", text)
    assert {i.split()[0] for i in invocations} >= {"migrate", "meili-keys", "load", "serve"}
    parser = build_parser()
    for invocation in invocations:
        parser.parse_args(shlex.split(invocation))  # exits (fails the test) on an unknown command


def test_the_api_gets_longer_to_stop_than_its_shutdown_grace(compose: dict[str, Any]) -> None:
    grace = Settings().shutdown_grace_s
    stop = compose["services"]["api"]["stop_grace_period"]
    assert stop.endswith("s")
    assert int(stop[:-1]) > grace
