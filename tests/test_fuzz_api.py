"""schemathesis against our own OpenAPI document, with a bounded number of cases.

`papers serve` runs on a loopback port over a seeded database (rate limiting off, so that
the fuzzer is never refused for speed). For every operation in the document, schemathesis
generates requests that fit the schema and requests that break it, sends them, and checks
each answer: no 5xx, the status code is documented, the content type and the body fit the
documented response, the documented headers fit their schemas, and a request that breaks the
schema is refused with a 4xx.

Left out on purpose: `positive_data_acceptance`. The document cannot list the valid topic
slugs or `fields` names (they are data), so a schema-valid but unknown one is a documented
400 naming the parameter, not a failure.

`PAPERS_FUZZ_CASES` (default 100) sets the cases per operation; with `-s` the total is printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any, Final

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks

from service.app import create_app
from service.config import Settings
from tests.conftest import PgServer
from tests.test_faults import Served, free_port, launch, stop
from tests.test_hostile_input import fingerprint

CASES_PER_OPERATION: Final = int(os.environ.get("PAPERS_FUZZ_CASES", "100"))
CHECKS: Final = [
    schemathesis.checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]
CASES: dict[str, int] = {}
# Operations whose documented request schema allows more than the API takes, so that valid
# cases need not include an accepted one. Known gap, not hidden: Litestar drops the `pattern`
# and `maxLength` of the `ids` items, and does not say that unknown body keys are refused.
INCOMPLETE_REQUEST_SCHEMA: Final = frozenset({"POST /v1/papers/batch"})


def labels() -> list[str]:
    """`METHOD /path` of every operation, from the document the app generates."""
    doc = create_app(Settings(database_url="postgresql://unused")).openapi_schema.to_schema()
    return [
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.fixture(scope="module")
def fuzz_db(pg: PgServer) -> Iterator[str]:
    """A clone of the seeded template, for the whole module."""
    name = pg.clone("papers_seeded")
    yield pg.url(name)
    pg.drop(name)


@pytest.fixture(scope="module")
def api(fuzz_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`papers serve` over that database (rate limiting off: see `launch`)."""
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz") / "serve.log"
    served = Served(launch(fuzz_db, port, log, {}), f"http://127.0.0.1:{port}", port, log)
    try:
        deadline = time.monotonic() + 90
        while not _healthy(served.base):
            if served.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"papers serve did not start:\n{served.logs()}")
            time.sleep(0.1)
        yield served
    finally:
        stop(served)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def schema(api: Served) -> Any:
    return schemathesis.openapi.from_url(f"{api.base}/schema/openapi.json")


@pytest.mark.parametrize("label", labels())
def test_every_answer_conforms_to_the_schema(
    api: Served, schema: Any, label: str, record_property: Any
) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    statuses: list[int] = []

    @hypothesis.settings(
        max_examples=CASES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure is reproducible
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(base_url=api.base, checks=CHECKS, timeout=30)
        statuses.append(response.status_code)

    fuzz()
    CASES[label] = len(statuses)
    record_property("fuzz_cases", len(statuses))
    assert api.process.poll() is None, api.logs()
    if operation.definition.raw.get("parameters") or "requestBody" in operation.definition.raw:
        # Both kinds of case ran: some were answered, some refused.
        assert len(statuses) >= min(CASES_PER_OPERATION, 20), statuses
        assert any(400 <= s < 500 for s in statuses), statuses
        if label not in INCOMPLETE_REQUEST_SCHEMA:
            assert any(200 <= s < 300 for s in statuses), statuses
    else:  # nothing to vary: one case says it all
        assert statuses, label


async def test_fuzzing_left_the_data_intact(api: Served, fuzz_db: str, pg: PgServer) -> None:
    """After the fuzzing (file order), the corpus is still the seeded template's."""
    assert await fingerprint(fuzz_db) == await fingerprint(pg.url("papers_seeded"))
    assert api.process.poll() is None, api.logs()
    if CASES:
        print(f"\nschemathesis: {sum(CASES.values())} cases over {len(CASES)} operations")
