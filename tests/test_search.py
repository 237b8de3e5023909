"""GET /v1/search and GET /v1/suggest through the real app and a real database: query syntax,
sorts and paging, filters, facets, parameter problems, and the query reading shared with
Meilisearch (pure functions of the PostgreSQL engine)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.app import create_app
from service.config import Settings
from service.ingest.run import load_files
from service.ingest.synth import synthesize
from service.search.engine import author_key
from service.search.meilisearch import MAX_TOTAL_HITS
from service.search.postgres import (
    Term,
    mark_cuts,
    parse_query,
    tsquery_text,
    typo_alternatives,
    typo_budget,
    typo_cost,
)
from tests.conftest import SEED_LISTING, TAXONOMY, app_for
from tests.contract.conftest import load_crafted
from tests.test_api import assert_problem
from tests.test_meilisearch_unit import FakeMeilisearch, _error, _hits_result, _json, make_paper

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def crafted_client(empty_db: str) -> AsyncIterator[Client]:
    """An HTTP client over a database holding the contract suite's crafted papers."""
    await load_crafted(empty_db)
    async with AsyncTestClient(app_for(empty_db)) as client:
        yield client


async def search(client: Client, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def next_link(response: Any) -> str | None:
    match = re.search(r'<([^>]+)>; rel="next"', response.headers.get("link", ""))
    return match.group(1) if match else None


# --- the response ------------------------------------------------------------------------------


async def test_search_response_carries_every_facet(client: Client) -> None:
    body = await search(client, q="language", limit=3)
    assert set(body) == {"query", "engine", "total", "limit", "offset", "hits", "facets", "took_ms"}
    facets = body["facets"]
    assert set(facets) == {"topics", "no_topic", "has_code", "years", "undated"}
    assert facets["has_code"]["true"] + facets["has_code"]["false"] == body["total"]
    assert sum(facets["years"].values()) + facets["undated"] == body["total"]
    assert facets["undated"] == body["total"]  # the seed listing has no dates
    assert len(body["hits"]) == 3


async def test_facets_reconcile_over_every_hit(crafted_client: Client) -> None:
    body = await search(crafted_client, limit=100)
    hits, facets = body["hits"], body["facets"]
    assert facets["years"] == {"2020": 1, "2021": 2, "2022": 1, "2023": 2, "2024": 2}
    assert facets["undated"] == sum(1 for h in hits if h["published"] is None) == 2
    assert facets["no_topic"] == sum(1 for h in hits if not h["topics"]) > 0
    assert facets["has_code"] == {"true": 3, "false": 7}


async def test_query_syntax_through_the_api(crafted_client: Client) -> None:
    phrase = await search(crafted_client, q='"kv cache"')
    assert [h["id"] for h in phrase["hits"]] == ["phrase-match-kv-cache-eviction-for-long-prompts"]
    assert phrase["query"] == '"kv cache"'
    excluded = await search(crafted_client, q="cache -eviction")
    assert excluded["total"] > 0
    assert all("eviction" not in h["title"].lower() for h in excluded["hits"])
    typing = await search(crafted_client, q="quantization evic")
    assert typing["total"] == 1
    done = await search(crafted_client, q="quantization evic ")
    assert done["total"] == 0


async def test_highlights_crop_the_abstract_around_the_match(crafted_client: Client) -> None:
    (hit,) = (await search(crafted_client, q="zanzibar"))["hits"]
    snippet = hit["highlight"]["abstract"]
    assert "<mark>zanzibar</mark>" in snippet
    assert snippet.startswith("… ")  # the match is near the end: the start is cut
    assert len(snippet) < len(hit["abstract"]) / 2


# --- sorting and paging ------------------------------------------------------------------------


async def test_following_next_links_returns_every_paper_once(client: Client) -> None:
    everything = await search(client, q="model", sort="-updated", limit=100)
    assert everything["total"] > 30
    seen: list[str] = []
    response = await client.get(
        "/v1/search", params={"q": "model", "sort": "-updated", "limit": 13}
    )
    for _ in range(20):
        seen += [h["id"] for h in response.json()["hits"]]
        link = next_link(response)
        if link is None:
            break
        assert "offset=" in link
        response = await client.get(link)
    assert seen == [h["id"] for h in everything["hits"]]
    assert len(set(seen)) == everything["total"]


async def test_link_header_has_prev_and_next(client: Client) -> None:
    response = await client.get("/v1/search", params={"q": "language", "limit": 5, "offset": 5})
    link = response.headers["link"]
    assert 'offset=10>; rel="next"' in link
    assert 'offset=0>; rel="prev"' in link
    assert "q=language" in link
    last = await client.get("/v1/search", params={"limit": 100})
    assert "link" not in last.headers  # one page holds everything


@pytest.mark.parametrize("sort", ["title", "-title", "published", "-published"])
async def test_sort_orders_through_the_api(crafted_client: Client, sort: str) -> None:
    hits = (await search(crafted_client, sort=sort, limit=100))["hits"]
    if sort.endswith("title"):
        keys = [(h["title"].lower().encode(), h["id"]) for h in hits]
        expected = sorted(keys, key=lambda k: k[0], reverse=sort.startswith("-"))
        assert [k[0] for k in keys] == [k[0] for k in expected]
    else:
        dates = [h["published"] for h in hits]
        dated = [d for d in dates if d is not None]
        assert dates[len(dated) :] == [None, None]  # undated last, either way
        assert dated == sorted(dated, reverse=sort.startswith("-"))


async def test_deep_offsets_are_not_capped(empty_db: str, tmp_path: Path) -> None:
    # More than 10,000 papers: the pages past the 10,000th hit still come back, in order.
    corpus = tmp_path / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as out:
        synthesize(10_030, 5, SEED_LISTING, out)
    conn = await db.connect(empty_db)
    try:
        total = (await load_files(conn, [corpus], TAXONOMY)).inserted
    finally:
        await conn.close()
    assert total > 10_000
    async with AsyncTestClient(app_for(empty_db)) as client:
        before = await search(client, sort="title", offset=9_900, limit=100)
        deep = await search(client, sort="title", offset=10_000, limit=100)
    assert deep["total"] == before["total"] == total
    assert len(deep["hits"]) == total - 10_000
    assert not {h["id"] for h in deep["hits"]} & {h["id"] for h in before["hits"]}
    last, first = before["hits"][-1]["title"].lower(), deep["hits"][0]["title"].lower()
    assert last.encode() <= first.encode()


# --- filters -----------------------------------------------------------------------------------


async def test_filters_through_the_api(crafted_client: Client) -> None:
    coded = await search(crafted_client, has_code="true", limit=100)
    assert coded["total"] == 3
    assert all(h["links"]["code"] for h in coded["hits"])
    dated = await search(
        crafted_client, published_from="2023-12-31", published_to="2024-03-11", limit=100
    )
    assert sorted(h["published"] for h in dated["hits"]) == [
        "2023-12-31",
        "2024-03-11",
        "2024-03-11",
    ]
    response = await crafted_client.get(
        "/v1/search", params=[("author", "ZOË MULLER"), ("author", "josé   garcía")]
    )
    assert response.json()["total"] == 4


async def test_topic_mode_all(client: Client) -> None:
    params: dict[str, Any] = {"topic": ["efficient-inference", "long-context"], "limit": 100}
    any_of = (await client.get("/v1/search", params=params)).json()
    all_of = (await client.get("/v1/search", params={**params, "topic_mode": "all"})).json()
    assert 0 < all_of["total"] < any_of["total"]
    for hit in all_of["hits"]:
        assert {"efficient-inference", "long-context"} <= {t["slug"] for t in hit["topics"]}


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"sort": "relevant"}, "sort"),
        ({"sort": "-relevance"}, "sort"),
        ({"topic_mode": "some"}, "topic_mode"),
        ({"has_code": "maybe"}, "has_code"),
        ({"published_from": "2024-13-01"}, "published_from"),
        ({"published_to": "yesterday"}, "published_to"),
        ({"published_from": "2024-02-01", "published_to": "2024-01-31"}, "published_from"),
        ({"author": "   "}, "author"),
        ({"author": "x" * 301}, "author"),
        ({"offset": 1_000_000_001}, "offset"),
    ],
)
async def test_bad_search_parameters_are_named(
    client: Client, params: dict[str, Any], name: str
) -> None:
    assert_problem(await client.get("/v1/search", params=params), 400, name)


async def test_offsets_past_ten_thousand_are_accepted(client: Client) -> None:
    body = await search(client, offset=10_001, limit=10)
    assert (body["total"], body["hits"], body["offset"]) == (77, [], 10_001)


# --- suggest -----------------------------------------------------------------------------------


async def test_suggest_returns_title_completions(client: Client) -> None:
    response = await client.get("/v1/suggest", params={"q": "kv cache comp"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "engine", "suggestions", "took_ms"}
    assert (body["query"], body["engine"]) == ("kv cache comp", "postgres")
    first = body["suggestions"][0]
    assert set(first) == {"id", "title", "highlight"}
    assert first["id"].startswith("gear-an-efficient-kv-cache-compression")
    assert "<mark>KV</mark> <mark>Cache</mark> <mark>Compression</mark>" in first["highlight"]
    paper = (await client.get(f"/v1/papers/{first['id']}")).json()
    assert paper["title"] == first["title"]


async def test_suggest_limits_and_typos(client: Client) -> None:
    few = (await client.get("/v1/suggest", params={"q": "lang", "limit": 2})).json()
    assert len(few["suggestions"]) == 2
    typo = (await client.get("/v1/suggest", params={"q": "protien"})).json()
    assert any(s["id"].startswith("tranception") for s in typo["suggestions"])
    assert all("<mark>protein</mark>" in s["highlight"].lower() for s in typo["suggestions"])
    blank = (await client.get("/v1/suggest", params={"q": "  "})).json()
    assert blank["suggestions"] == []


@pytest.mark.parametrize(
    ("params", "name"),
    [({"q": ""}, "q"), ({"q": "x" * 201}, "q"), ({"q": "a", "limit": 11}, "limit")],
)
async def test_bad_suggest_parameters_are_named(
    client: Client, params: dict[str, Any], name: str
) -> None:
    assert_problem(await client.get("/v1/suggest", params=params), 400, name)


async def test_suggest_needs_q(client: Client) -> None:
    body = assert_problem(await client.get("/v1/suggest"), 400, "q")
    assert body["invalid_params"][0]["reason"] == "required query parameter"


async def test_openapi_documents_search_and_suggest(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    operation = spec["paths"]["/v1/search"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {
        "q", "topic", "topic_mode", "has_code", "published_from", "published_to", "author",
        "sort", "limit", "offset",
    } <= set(params)  # fmt: skip
    assert "maxTotalHits" in operation["description"]
    assert "sum(years) + undated" in operation["description"]
    assert "/v1/suggest" in spec["paths"]
    assert "SearchFacets" in spec["components"]["schemas"]
    assert "Suggestion" in spec["components"]["schemas"]


# --- Meilisearch in front ------------------------------------------------------------------------


@pytest.fixture
def meili_fake() -> Iterator[FakeMeilisearch]:
    """A stand-in Meilisearch whose every search matches MAX_TOTAL_HITS papers.

    It runs on its own event loop in a thread: the test client blocks the test's loop while
    the app handles a request.
    """
    saturated = _hits_result([make_paper(id="a")], total=MAX_TOTAL_HITS, facets={})
    routes = {
        ("GET", "/keys"): _json(403, _error("invalid_api_key", "not the master key")),
        ("POST", "/multi-search"): _json(200, {"results": [saturated]}),
    }
    fake = FakeMeilisearch(routes)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(timeout=5)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


async def test_a_search_too_large_for_meilisearch_is_answered_by_postgres(
    seeded_db: str, meili_fake: FakeMeilisearch
) -> None:
    settings = Settings(
        database_url=seeded_db, meili_url=meili_fake.url, meili_search_key="k", pool_min_size=0
    )
    async with AsyncTestClient(create_app(settings)) as client:
        body = await search(client, limit=5)
    assert meili_fake.bodies("POST", "/multi-search")  # Meilisearch was asked first
    assert (body["engine"], body["total"]) == ("postgres", 77)


async def test_suggest_falls_back_when_meilisearch_is_down(seeded_db: str) -> None:
    settings = Settings(
        database_url=seeded_db,
        meili_url="http://127.0.0.1:9",
        meili_search_key="k",
        meili_timeout_s=0.5,
        pool_min_size=0,
    )
    async with AsyncTestClient(create_app(settings)) as client:
        body = (await client.get("/v1/suggest", params={"q": "snapk"})).json()
    assert body["engine"] == "postgres"
    assert body["suggestions"][0]["id"].startswith("snapkv")


# --- reading a query as Meilisearch does ------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "terms"),
    [
        ("kv cache", [Term(("kv",)), Term(("cache",), prefix=True)]),
        ("kv cache ", [Term(("kv",)), Term(("cache",))]),
        ('"KV cache" comp', [Term(("kv", "cache"), phrase=True), Term(("comp",), prefix=True)]),
        ('"kv cache', [Term(("kv", "cache"), phrase=True)]),
        ("-rlhf dpo", [Term(("rlhf",), excluded=True), Term(("dpo",), prefix=True)]),
        ('a -"b c"', [Term(("a",)), Term(("b", "c"), phrase=True, excluded=True)]),
        ("gpt-4 - x", [Term(("gpt",)), Term(("4",)), Term(("x",), prefix=True)]),
        ("Protéine", [Term(("protéine",), prefix=True)]),
        ('  "" ', []),
    ],
)
def test_queries_read_as_meilisearch_reads_them(q: str, terms: list[Term]) -> None:
    assert parse_query(q) == terms


def test_typo_budget_and_cost_follow_meilisearch() -> None:
    assert [typo_budget(w) for w in ("kv", "rlhf", "cache", "protein", "alignment")] == [
        0, 0, 1, 1, 2,
    ]  # fmt: skip
    assert typo_cost("protien", "protein") == 1  # a swap is one typo
    assert typo_cost("cahce", "cache") == 1
    assert typo_cost("xache", "cache") == 2  # a wrong first letter counts twice
    assert typo_cost("alignmnet", "alignment") == 1
    assert typo_alternatives("protien", ["protein", "proteins", "protien", "patient"]) == [
        "protein"
    ]
    assert typo_alternatives("rlhf", ["rlaif"]) == []


def test_tsquery_text_quotes_everything() -> None:
    terms = parse_query('o\'neil "kv cache" -x comp')
    assert tsquery_text(terms, None) == "'o' & 'neil' & ('kv' <-> 'cache') & !'x' & 'comp'"
    expanded = tsquery_text(terms, {"comp": ["compress"], "neil": ["neill"]})
    assert expanded == (
        "('o') & ('neil' | 'neill') & ('kv' <-> 'cache') & !'x' & ('comp':* | 'compress')"
    )
    assert tsquery_text([], None) is None


def test_snippets_say_where_they_were_cut() -> None:
    text = "one two three four five six seven eight"
    assert mark_cuts("three <mark>four</mark> five", text) == "… three <mark>four</mark> five …"
    assert mark_cuts("one <mark>two</mark> three", text) == "one <mark>two</mark> three …"
    assert mark_cuts("six seven <mark>eight</mark>", text) == "… six seven <mark>eight</mark>"
    assert mark_cuts(text, text) == text


def test_author_keys_fold_case_accents_and_spaces() -> None:
    assert author_key("  Zoë   MÜLLER ") == author_key("zoe muller") == "zoe muller"
    assert author_key("Łukasz Kaiser") == "lukasz kaiser"
    assert author_key("José García") != author_key("Jose Garcias")


async def test_fields_select_what_each_hit_carries(client: Client) -> None:
    whole = (await client.get("/v1/search", params={"q": "kv cache", "limit": 3})).json()
    response = await client.get(
        "/v1/search", params={"q": "kv cache", "limit": 3, "fields": "id,highlight.title"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == whole["total"]
    assert body["facets"] == whole["facets"]
    assert [list(hit) for hit in body["hits"]] == [["id", "highlight"]] * len(whole["hits"])
    assert [hit["id"] for hit in body["hits"]] == [hit["id"] for hit in whole["hits"]]
    assert [hit["highlight"] for hit in body["hits"]] == [
        {"title": hit["highlight"]["title"]} for hit in whole["hits"]
    ]


async def test_an_unknown_hit_field_is_a_problem_naming_it(client: Client) -> None:
    response = await client.get("/v1/search", params={"q": "kv", "fields": "id,highlight.nope"})
    assert_problem(response, 400, "fields")
    assert "highlight.nope" in response.json()["invalid_params"][0]["reason"]
