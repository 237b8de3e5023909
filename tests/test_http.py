"""HTTP behaviour through the real app and database: validators and 304s, Cache-Control,
compression, HEAD, CORS, and problem+json for every error status."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from litestar import Litestar, get
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from litestar.types import HTTPRequestEvent, Message

from service import db
from service.api.http import CACHE_CONTROL, http_date
from service.api.problems import PROBLEM_TYPES
from service.app import create_app
from service.config import PROJECT_ROOT, ConfigError, Settings, load_settings
from service.ingest.run import load_files
from service.search.engine import EngineUnavailableError
from tests.conftest import TAXONOMY, PgServer, app_for, write

Client = AsyncTestClient[Litestar]
PROBLEM = "application/problem+json"
PAPER = "/v1/papers/densing-law-of-llms"
ORIGIN = "https://reader.example"
# GET endpoints whose answer is a stable function of the data, so its ETag is too.
CACHED = [PAPER, "/v1/papers?limit=5", "/v1/topics", "/v1/topics?q=kv+cache"]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """A problem+json answer with a stable type and code, that caches must not store."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"/problems/{code}"
    assert "Traceback" not in response.text
    return body


def blake2b_tag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


# --- validators and 304 ---------------------------------------------------------------------


@pytest.mark.parametrize("url", CACHED)
async def test_strong_etag_is_the_hash_of_the_uncompressed_body(client: Client, url: str) -> None:
    response = await client.get(url, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["etag"] == blake2b_tag(response.content)
    compressed = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert compressed.headers["etag"] == response.headers["etag"]


@pytest.mark.parametrize("url", CACHED)
async def test_if_none_match_answers_304_with_the_validators_and_no_body(
    client: Client, url: str
) -> None:
    fresh = await client.get(url)
    tag = fresh.headers["etag"]
    for header in [tag, f"W/{tag}", f'"other", {tag}', "*"]:
        cached = await client.get(url, headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        for name in ["etag", "cache-control", "vary", "last-modified"]:
            assert cached.headers.get(name) == fresh.headers.get(name), name
        assert "content-type" not in cached.headers
    other = await client.get(url, headers={"If-None-Match": '"not-this-one"'})
    assert other.status_code == 200
    assert other.content == fresh.content


async def test_topics_carry_last_modified_of_the_latest_paper_change(
    client: Client, conn: db.Connection
) -> None:
    latest = await conn.fetchval("SELECT changed_at FROM corpus_state")  # stamped by loads
    response = await client.get("/v1/topics")
    assert response.headers["last-modified"] == http_date(latest)
    assert parsedate_to_datetime(response.headers["last-modified"]) <= latest


async def test_if_modified_since_answers_304_until_a_load_changes_papers(
    client: Client, conn: db.Connection, tmp_path: Path
) -> None:
    # Age the seeds by a day, so the load below lands in a later second than they did.
    await conn.execute("UPDATE papers SET updated_at = updated_at - interval '1 day'")
    before = await client.get("/v1/topics")
    modified = before.headers["last-modified"]
    since = {"If-Modified-Since": modified}
    assert (await client.get("/v1/topics", headers=since)).status_code == 304
    earlier = http_date(parsedate_to_datetime(modified) - timedelta(seconds=1))
    assert (
        await client.get("/v1/topics", headers={"If-Modified-Since": earlier})
    ).status_code == 200
    assert (
        await client.get("/v1/topics", headers={"If-Modified-Since": "yesterday"})
    ).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 section 13.2.2).
    mismatch = {**since, "If-None-Match": '"stale"'}
    assert (await client.get("/v1/topics", headers=mismatch)).status_code == 200

    paper = {
        "title": "Sparse Attention Kernels for Long-Context Protein Language Models",
        "abstract": "We compress the KV cache of protein language models with sparse attention.",
    }
    source = write(tmp_path / "new.jsonl", msgspec.json.encode(paper).decode() + "\n")
    await load_files(conn, [source], TAXONOMY)

    after = await client.get("/v1/topics", headers=since)
    assert after.status_code == 200
    assert parsedate_to_datetime(after.headers["last-modified"]) > parsedate_to_datetime(modified)
    assert after.headers["etag"] != before.headers["etag"]
    stale = await client.get("/v1/topics", headers={"If-None-Match": before.headers["etag"]})
    assert stale.status_code == 200


async def test_errors_and_other_statuses_get_no_validators(client: Client) -> None:
    missing = await client.get("/v1/papers/no-such-paper")
    assert "etag" not in missing.headers
    again = await client.get("/v1/papers/no-such-paper", headers={"If-None-Match": "*"})
    assert_problem(again, 404, "not-found")


# --- Cache-Control --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "route"),
    [
        (PAPER, "/v1/papers/{}"),
        ("/v1/papers", "/v1/papers"),
        ("/v1/topics", "/v1/topics"),
        ("/v1/search?q=kv", "/v1/search"),
        ("/health", "/health"),
        ("/ready", "/ready"),
        ("/problems/not-found", "/problems/{}"),
    ],
)
async def test_cache_control_follows_the_route_table(client: Client, url: str, route: str) -> None:
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["cache-control"] == CACHE_CONTROL[route]


async def test_health_is_never_stored_and_papers_are_public(client: Client) -> None:
    assert (await client.get("/health")).headers["cache-control"] == "no-store"
    assert (await client.get(PAPER)).headers["cache-control"].startswith("public, max-age=")


# --- compression ----------------------------------------------------------------------------


async def test_large_answers_are_gzipped_small_ones_are_not(client: Client) -> None:
    large = await client.get("/v1/papers?limit=50", headers={"Accept-Encoding": "gzip"})
    assert large.headers["content-encoding"] == "gzip"
    assert int(large.headers["content-length"]) < len(large.content)  # httpx inflated it
    assert msgspec.json.decode(large.content)["data"]
    small = await client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    plain = await client.get("/v1/papers?limit=50", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == large.content
    for response in [large, small, plain]:
        assert [v.strip() for v in response.headers["vary"].split(",")] == ["Accept-Encoding"]


# --- HEAD -----------------------------------------------------------------------------------

PATH_VALUES = {
    "paper_id": "densing-law-of-llms",
    "slug": "biology",
    "code": "not-found",
    "path": "no-such-page",  # Litestar's catch-all under /schema
}


def get_urls(app: Litestar) -> list[str]:
    """Every GET route of the app, with path parameters filled in."""
    urls = []
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "GET" in route.methods:
            values = {name: PATH_VALUES[name] for name in route.path_parameters}
            urls.append(route.path_format.format(**values))
    return sorted(urls)


async def test_head_answers_every_get_endpoint_with_its_headers_and_no_body(
    client: Client,
) -> None:
    urls = get_urls(client.app)
    assert {PAPER, "/v1/topics", "/health", "/schema/openapi.json"} <= set(urls)
    for url in urls:
        first, second = await client.get(url), await client.get(url)
        head = await client.head(url)
        assert head.status_code == first.status_code, url
        assert head.content == b"", url
        assert head.headers.get("content-type") == first.headers.get("content-type"), url
        assert head.headers.get("cache-control") == first.headers.get("cache-control"), url
        if first.headers.get("etag") == second.headers.get("etag"):  # not e.g. took_ms
            assert head.headers.get("etag") == first.headers.get("etag"), url
            assert head.headers.get("content-length") == first.headers.get("content-length"), url


def raw_request(client: Client, method: str, path: str) -> tuple[int, bytes]:
    """Status and body bytes as the app sends them (the test client drops HEAD bodies), run
    on the client's event loop like its own requests (the pool's connections live there)."""
    return client.blocking_portal.call(_raw_request, client.app, method, path)


async def _raw_request(app: Litestar, method: str, path: str) -> tuple[int, bytes]:
    messages: list[Message] = []

    async def receive() -> HTTPRequestEvent:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"accept-encoding", b"gzip")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return status, body


async def test_head_sends_no_body_bytes(client: Client) -> None:
    for path in [PAPER, "/v1/papers", "/v1/papers/no-such-paper"]:
        get_status, get_body = raw_request(client, "GET", path)
        head_status, head_body = raw_request(client, "HEAD", path)
        assert get_body
        assert (head_status, head_body) == (get_status, b"")


async def test_head_is_logged_as_head(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.access"):
        await client.head(PAPER, headers={"X-Request-ID": "head-1"})
    [entry] = [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == "head-1"]
    fields: dict[str, Any] = entry.fields  # type: ignore[attr-defined]
    assert (fields["method"], fields["status"]) == ("HEAD", 200)


async def test_head_of_a_missing_paper_is_a_bodiless_404(client: Client) -> None:
    response = await client.head("/v1/papers/no-such-paper")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.content == b""


async def test_allow_lists_head_beside_get(client: Client) -> None:
    options = await client.options("/v1/topics")
    assert {"GET", "HEAD"} <= {m.strip() for m in options.headers["allow"].split(",")}
    wrong = await client.delete("/v1/topics")
    assert_problem(wrong, 405, "method-not-allowed")
    assert {"GET", "HEAD"} <= {m.strip() for m in wrong.headers["allow"].split(",")}


# --- CORS -----------------------------------------------------------------------------------


@pytest.fixture
async def cors_client(seeded_db: str) -> AsyncIterator[Client]:
    """The app with one allowed browser origin."""
    settings = Settings(
        database_url=seeded_db, pool_min_size=0, pool_max_size=2, cors_origins=(ORIGIN,)
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


async def test_cors_allows_listed_origins_only(cors_client: Client) -> None:
    allowed = await cors_client.get(PAPER, headers={"Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in allowed.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "last-modified", "link", "x-request-id"} <= exposed
    other = await cors_client.get(PAPER, headers={"Origin": "https://elsewhere.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    for response in [allowed, other, await cors_client.get(PAPER)]:
        vary = {v.strip() for v in response.headers["vary"].split(",")}
        assert vary == {"Origin", "Accept-Encoding"}


async def test_cors_preflight(cors_client: Client) -> None:
    request = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "If-None-Match",
    }
    ok = await cors_client.options("/v1/search", headers={"Origin": ORIGIN, **request})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in ok.headers["access-control-allow-methods"]
    assert "if-none-match" in ok.headers["access-control-allow-headers"].lower()
    assert int(ok.headers["access-control-max-age"]) > 0
    refused = await cors_client.options(
        "/v1/search", headers={"Origin": "https://elsewhere.example", **request}
    )
    body = assert_problem(refused, 400, "cors-rejected")
    assert "PAPERS_CORS_ORIGINS" in body["detail"]
    assert "access-control-allow-origin" not in refused.headers


async def test_no_cors_headers_without_configured_origins(client: Client) -> None:
    response = await client.get(PAPER, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]
    preflight = await client.options(
        "/v1/search", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert not [h for h in preflight.headers if h.startswith("access-control-")]


def test_cors_origins_setting() -> None:
    settings = load_settings({"PAPERS_CORS_ORIGINS": " https://a.example, http://localhost:3000/ "})
    assert settings.cors_origins == ("https://a.example", "http://localhost:3000")
    assert load_settings({}).cors_origins == ()
    for bad in ["ftp://a.example", "https://a.example/path", "a.example"]:
        with pytest.raises(ConfigError, match="PAPERS_CORS_ORIGINS"):
            load_settings({"PAPERS_CORS_ORIGINS": bad})


# --- problems -------------------------------------------------------------------------------


async def test_unknown_route_is_a_not_found_problem(client: Client) -> None:
    body = assert_problem(await client.get("/v2/nothing"), 404, "not-found")
    assert body["instance"] == "/v2/nothing"


def post_route(app: Litestar) -> str | None:
    """A POST route that reads a JSON body, if the app has one."""
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "POST" in route.methods and not route.path_parameters:
            handler = route.route_handler_map["POST"][0]
            if "data" in handler.parsed_fn_signature.parameters:
                return route.path
    return None


async def test_body_in_another_media_type_is_415(client: Client) -> None:
    path = post_route(client.app)
    if path is None:
        pytest.skip("no POST route with a body yet")
    for content_type in ["text/plain", "application/x-www-form-urlencoded", None]:
        headers = {"Content-Type": content_type} if content_type else {}
        response = await client.post(path, content=b'{"ids": ["x"]}', headers=headers)
        body = assert_problem(response, 415, "unsupported-media-type")
        assert "application/json" in body["detail"]


async def test_malformed_json_is_400_and_a_body_failing_its_schema_is_422(client: Client) -> None:
    path = post_route(client.app)
    if path is None:
        pytest.skip("no POST route with a body yet")
    json = {"Content-Type": "application/json"}
    assert_problem(await client.post(path, content=b'{"ids": [', headers=json), 400, "bad-request")
    body = assert_problem(
        await client.post(path, json={"ids": "not-a-list"}), 422, "validation-failed"
    )
    assert body["invalid_params"][0]["name"] == "ids"


async def test_unexpected_error_is_a_500_without_internals(
    seeded_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    @get("/test/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret: /etc/passwd line 3")

    app = app_for(seeded_db)
    app.register(boom)
    async with AsyncTestClient(app) as test_client:
        with caplog.at_level(logging.ERROR, logger="service.api.problems"):
            response = await test_client.get("/test/boom")
    body = assert_problem(response, 500, "internal-error")
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text
    assert body["instance"] == "/test/boom"
    assert any("secret" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_engine_unavailable_is_a_503_with_retry_after(seeded_db: str) -> None:
    @get("/test/engine-down", sync_to_thread=False)
    def engine_down() -> None:
        raise EngineUnavailableError("meilisearch at 10.0.0.1:7700 refused")

    app = app_for(seeded_db)
    app.register(engine_down)
    async with AsyncTestClient(app) as test_client:
        response = await test_client.get("/test/engine-down")
    assert_problem(response, 503, "unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert "10.0.0.1" not in response.text


async def test_database_gone_makes_ready_a_503_problem(pg: PgServer, seeded_db: str) -> None:
    async with AsyncTestClient(app_for(seeded_db)) as test_client:
        pg.drop(urlsplit(seeded_db).path.lstrip("/"))
        response = await test_client.get("/ready")
    body = assert_problem(response, 503, "unavailable")
    assert body["checks"]["database"] == "unavailable"


async def test_bad_parameters_are_named(client: Client) -> None:
    body = assert_problem(
        await client.get("/v1/papers", params={"limit": 0}), 400, "invalid-parameter"
    )
    assert [p["name"] for p in body["invalid_params"]] == ["limit"]


async def test_every_problem_type_is_documented_at_its_type_uri(client: Client) -> None:
    for kind in PROBLEM_TYPES:
        response = await client.get(kind.type)
        assert response.status_code == 200
        assert response.json() == msgspec.to_builtins(kind)
    assert (await client.get("/problems/too-many-requests")).json()["status"] == 429
    assert_problem(await client.get("/problems/no-such-type"), 404, "not-found")


def test_readme_lists_every_problem_type() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    for kind in PROBLEM_TYPES:
        assert f"| {kind.status} | `{kind.code}` |" in readme, kind.code


async def test_post_answers_are_not_stored(client: Client) -> None:
    path = post_route(client.app)
    if path is None:
        pytest.skip("no POST route with a body yet")
    response = await client.post(path, json={"ids": ["densing-law-of-llms"]})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "etag" not in response.headers


async def test_every_answer_carries_the_security_headers(seeded_db: str) -> None:
    settings = Settings(
        database_url=seeded_db, pool_min_size=0, pool_max_size=2, rate_limit_burst=3,
        rate_limit_per_s=0.01,
    )  # fmt: skip
    async with AsyncTestClient(create_app(settings)) as client:
        answers = [
            await client.get("/v1/topics"),  # 200
            await client.get("/v1/papers/no-such-paper"),  # 404 problem
            await client.delete("/v1/topics"),  # 405 problem
        ]
        answers.append(await client.get("/v1/topics"))  # the burst is spent: 429
        assert [a.status_code for a in answers] == [200, 404, 405, 429]
        docs = await client.get("/schema")
    for answer in [*answers, docs]:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
    for answer in answers:
        assert (
            answer.headers["content-security-policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
    assert "content-security-policy" not in docs.headers  # Swagger UI loads its scripts
