"""Every endpoint through the real app and a real database, including its problems."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Litestar]
PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert "Traceback" not in response.text
    if param is not None:
        assert [p["name"] for p in body["invalid_params"]] == [param]
        assert param in body["title"]
    return body


async def test_get_paper(client: Client) -> None:
    response = await client.get("/v1/papers/densing-law-of-llms")
    assert response.status_code == 200
    paper = response.json()
    assert set(paper) == {
        "id", "title", "abstract", "topics", "links", "authors", "published", "arxiv_id",
        "source", "created_at", "updated_at",
    }  # fmt: skip
    assert paper["title"] == "Densing Law of LLMs"
    assert paper["abstract"].startswith("Large Language Models (LLMs) have emerged")
    assert paper["source"] == {
        "file": "daily-papers-mar-11.txt",
        "position": 1,
        "format": "listing",
        "listing_date": "Mar 11",
    }
    assert paper["published"] is None
    assert paper["arxiv_id"] is None
    assert paper["authors"] == []
    assert 1 <= len(paper["topics"]) <= 3
    assert all(set(t) == {"slug", "label", "score", "method"} for t in paper["topics"])
    assert set(paper["links"]) == {"code", "models", "datasets", "project", "pdf"}


async def test_paper_links_come_from_the_abstract(client: Client) -> None:
    paper = (
        await client.get(
            "/v1/papers/longwriter-unleashing-10-000-word-generation-from-long-context-llms"
        )
    ).json()
    assert paper["links"]["code"] == ["https://github.com/THUDM/LongWriter"]


async def test_unknown_paper_is_a_404_problem(client: Client) -> None:
    body = assert_problem(await client.get("/v1/papers/no-such-paper"), 404)
    assert "no-such-paper" in body["detail"]


async def test_list_papers_pages_through_everything_once(client: Client) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/papers", params=params)).json()
        seen.extend(p["id"] for p in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 77
    assert seen == sorted(set(seen))


async def test_list_papers_by_topic(client: Client) -> None:
    page = (await client.get("/v1/papers", params={"topic": "biology", "limit": 100})).json()
    assert page["data"]
    assert page["next_cursor"] is None
    assert page["total"] == len(page["data"])
    assert all("biology" in {t["slug"] for t in p["topics"]} for p in page["data"])
    topics = (await client.get("/v1/topics")).json()["data"]
    assert len(page["data"]) == next(t["count"] for t in topics if t["slug"] == "biology")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"topic": "no-such-topic"}, "topic"),
    ],
)
async def test_list_papers_bad_parameters(
    client: Client, params: dict[str, Any], name: str
) -> None:
    assert_problem(await client.get("/v1/papers", params=params), 400, name)


async def test_search_ranks_kv_cache_papers_first_with_highlights(client: Client) -> None:
    body = (await client.get("/v1/search", params={"q": "kv cache compression"})).json()
    assert body["engine"] == "postgres"
    assert body["query"] == "kv cache compression"
    top = [hit["id"] for hit in body["hits"][:3]]
    assert top[0].startswith("gear-an-efficient-kv-cache-compression")
    assert any(i.startswith("ems-adaptive-evict-then-merge") for i in top)
    assert (
        "<mark>KV</mark> <mark>Cache</mark> <mark>Compression</mark>"
        in body["hits"][0]["highlight"]["title"]
    )
    assert "<mark>" in body["hits"][0]["highlight"]["abstract"]
    assert body["took_ms"] >= 0


async def test_search_tolerates_typos_and_prefixes(client: Client) -> None:
    typo = (await client.get("/v1/search", params={"q": "protien fitness"})).json()
    assert typo["hits"][0]["id"].startswith("tranception")
    assert "<mark>protein</mark>" in typo["hits"][0]["highlight"]["title"]
    prefix = (await client.get("/v1/search", params={"q": "snapk"})).json()
    assert prefix["hits"][0]["id"].startswith("snapkv")


async def test_search_topic_filter_and_facets(client: Client) -> None:
    unfiltered = (await client.get("/v1/search", params={"q": "language", "limit": 0})).json()
    filtered = (await client.get("/v1/search", params={"q": "language", "topic": "biology"})).json()
    assert filtered["total"] == unfiltered["facets"]["topics"]["biology"]
    assert all("biology" in {t["slug"] for t in h["topics"]} for h in filtered["hits"])
    # Disjunctive: selecting a topic does not change the facet counts.
    assert filtered["facets"] == unfiltered["facets"]


async def test_search_several_topics_combine_with_or(client: Client) -> None:
    both = (
        await client.get("/v1/search?topic=biology&topic=distributed-training&limit=100")
    ).json()
    facets = both["facets"]["topics"]
    overlap = sum(
        1
        for h in both["hits"]
        if {"biology", "distributed-training"} <= {t["slug"] for t in h["topics"]}
    )
    assert both["total"] == facets["biology"] + facets["distributed-training"] - overlap
    assert len(both["hits"]) == both["total"]


async def test_empty_query_browses_everything(client: Client) -> None:
    body = (await client.get("/v1/search", params={"limit": 100})).json()
    assert body["total"] == 77
    ids = [h["id"] for h in body["hits"]]
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": -1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"q": "x" * 501}, "q"),
        ({"topic": "nope"}, "topic"),
    ],
)
async def test_search_bad_parameters(client: Client, params: dict[str, Any], name: str) -> None:
    assert_problem(await client.get("/v1/search", params=params), 400, name)


async def test_topics_with_counts(client: Client) -> None:
    topics = (await client.get("/v1/topics")).json()["data"]
    assert len(topics) >= 8
    assert all(set(t) == {"slug", "label", "description", "count"} for t in topics)
    assigned = sum(t["count"] for t in topics)
    assert 77 <= assigned <= 3 * 77


async def test_topics_counts_for_a_query(client: Client) -> None:
    body = (await client.get("/v1/topics", params={"q": "kv cache"})).json()
    assert body["query"] == "kv cache"
    counts = {t["slug"]: t["count"] for t in body["data"]}
    search = (await client.get("/v1/search", params={"q": "kv cache", "limit": 0})).json()
    assert {k: v for k, v in counts.items() if v} == search["facets"]["topics"]
    assert counts["efficient-inference"] >= 3


async def test_health_and_ready(client: Client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "engine:postgres": "ok"}


async def test_request_id_is_echoed_or_generated(client: Client) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32


async def test_openapi_schema_documents_every_route(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert {
        "/v1/papers",
        "/v1/papers/{paper_id}",
        "/v1/papers/batch",
        "/v1/papers/{paper_id}/related",
        "/v1/papers.jsonl",
        "/v1/topics/{slug}/papers",
        "/v1/search",
        "/v1/topics",
        "/health",
        "/ready",
    } <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/v1/search"]["get"]["parameters"]}
    assert {"q", "topic", "limit", "offset"} <= params
    assert "Paper" in spec["components"]["schemas"]
    assert "disjunctive" in spec["paths"]["/v1/search"]["get"]["description"]


async def test_unknown_route_and_wrong_method_are_problems(client: Client) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404)
    assert_problem(await client.post("/v1/papers"), 405)
