"""Meilisearch engine without a Meilisearch server: pure functions, plus the engine against a
closed port and against a loopback stand-in that answers with canned Meilisearch payloads."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import pytest
from meilisearch_python_sdk.models.settings import MeilisearchSettings

from service.models import CodeCounts, Links, Paper, SearchHit, Source, TopicRef
from service.search.engine import (
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    EngineUnavailableError,
    ResultTooLargeError,
    SearchQuery,
)
from service.search.meili_keys import (
    admin_key_spec,
    is_master_key,
    provision_keys,
    search_key_spec,
)
from service.search.meilisearch import (
    CROP_MARKER,
    FACETS,
    MAX_TOTAL_HITS,
    SORTS,
    TOPIC_FACET,
    MeilisearchEngine,
    MeilisearchRequestError,
    MeilisearchTaskError,
    document_to_hit,
    facets_of,
    index_settings,
    merge_results,
    page_window,
    paper_to_document,
    quote_filter_value,
    raise_for_task,
    search_filter,
    search_params,
    suggest_params,
    suggestions_of,
    topic_filter,
)


def make_paper(**changes: Any) -> Paper:
    paper = Paper(
        id="scaling-laws-for-kv-caches",
        title="Scaling Laws for KV Caches",
        abstract="We study how the KV cache grows. Code: https://github.com/x/kv",
        topics=[
            TopicRef(
                slug="inference-efficiency",
                label="Inference efficiency",
                score=0.8,
                method="phrases",
            ),
            TopicRef(slug="scaling-laws", label="Scaling laws", score=0.4, method="phrases"),
        ],
        links=Links(code=["https://github.com/x/kv"]),
        authors=["Ada Lovelace", "Alan Turing"],
        published=date(2025, 3, 11),
        arxiv_id="2503.01234",
        source=Source(file="seeds/daily.txt", position=3, format="listing", listing_date="Mar 11"),
        created_at=datetime(2025, 3, 11, 8, 0, tzinfo=UTC),
        updated_at=datetime(2025, 3, 12, 9, 30, tzinfo=UTC),
    )
    return msgspec.structs.replace(paper, **changes)


# --- settings --------------------------------------------------------------------------------


def test_settings_search_what_postgres_searches_and_expose_filters_and_sorts() -> None:
    settings = index_settings()
    # The text PostgreSQL's search_vector holds, title first: `q` means the same on both.
    assert settings["searchableAttributes"] == ["title", "abstract"]
    filterable = set(settings["filterableAttributes"])
    assert {*FACETS, "published_ts", "author_keys", "arxiv_id"} <= filterable
    assert {"id", "title", "published", "updated_at_ts"} == set(settings["sortableAttributes"])
    assert settings["faceting"]["maxValuesPerFacet"] >= 200  # a year per value
    assert settings["pagination"]["maxTotalHits"] == MAX_TOTAL_HITS >= 100_000
    assert settings["typoTolerance"]["enabled"] is True


def test_ranking_rules_sort_first_relevance_next_and_the_id_breaks_ties() -> None:
    rules = index_settings()["rankingRules"]
    assert rules[0] == "sort"  # an explicit sort orders by that alone, as PostgreSQL does
    assert rules[1:5] == ["words", "typo", "proximity", "attribute"]
    assert rules[-1] == "id:asc"  # no two documents tie: pages never overlap
    assert rules.index("exactness") < rules.index("id:asc")


def test_every_api_sort_maps_to_a_sortable_attribute_then_the_id() -> None:
    sortable = set(index_settings()["sortableAttributes"])
    assert SORTS["relevance"] is None
    for name, sort in SORTS.items():
        if sort is None:
            continue
        field, direction = sort[0].split(":")
        assert field in sortable
        assert direction == ("desc" if name.startswith("-") else "asc")
        assert sort[1:] == ["id:asc"]


def test_settings_survive_the_sdk_model_unchanged() -> None:
    payload = index_settings()
    sent = MeilisearchSettings(**payload).model_dump(by_alias=True, exclude_none=True)
    assert sent == payload


def test_derived_fields_are_all_declared_in_the_settings() -> None:
    doc = paper_to_document(make_paper())
    settings = index_settings()
    declared = (
        settings["searchableAttributes"]
        + settings["filterableAttributes"]
        + settings["sortableAttributes"]
    )
    assert set(declared) <= set(doc)


# --- documents and hits ----------------------------------------------------------------------


def test_document_is_the_paper_json_plus_derived_fields() -> None:
    paper = make_paper()
    doc = paper_to_document(paper)
    json.dumps(doc)  # plain JSON, dates as strings
    assert doc["published"] == "2025-03-11"
    assert doc[TOPIC_FACET] == ["inference-efficiency", "scaling-laws"]
    assert doc["has_topics"] is True
    assert doc["author_keys"] == ["ada lovelace", "alan turing"]
    assert doc["has_code"] is True
    assert doc["published_year"] == 2025
    assert doc["published_ts"] == int(datetime(2025, 3, 11, tzinfo=UTC).timestamp())
    assert doc["updated_at_ts"] == paper.updated_at.timestamp()
    assert msgspec.convert(doc, Paper) == paper


def test_unknown_values_stay_null_in_the_document() -> None:
    doc = paper_to_document(make_paper(published=None, links=Links(), topics=[], authors=[]))
    assert doc["published"] is None
    assert doc["has_topics"] is False
    assert doc["author_keys"] == []
    assert doc["published_year"] is None
    assert doc["published_ts"] is None
    assert doc["has_code"] is False
    assert doc[TOPIC_FACET] == []


def test_round_trip_paper_document_hit_keeps_every_paper_field() -> None:
    paper = make_paper()
    hit = paper_to_document(paper)
    hit["_formatted"] = {
        **hit,
        "title": f"Scaling Laws for {HIGHLIGHT_PRE}KV{HIGHLIGHT_POST} Caches",
        "abstract": f"We study how the {HIGHLIGHT_PRE}KV{HIGHLIGHT_POST} cache grows{CROP_MARKER}",
    }
    result = document_to_hit(hit)
    assert isinstance(result, SearchHit)
    for field in Paper.__struct_fields__:
        assert getattr(result, field) == getattr(paper, field), field
    assert result.highlight.title == "Scaling Laws for <mark>KV</mark> Caches"
    assert result.highlight.abstract == "We study how the <mark>KV</mark> cache grows…"


def test_hit_without_formatted_falls_back_to_plain_text() -> None:
    paper = make_paper()
    result = document_to_hit(paper_to_document(paper))
    assert result.highlight.title == paper.title
    assert result.highlight.abstract == paper.abstract


# --- filters ---------------------------------------------------------------------------------


def test_topic_filter_ors_quoted_slugs_once_each() -> None:
    assert topic_filter(["alignment", "scaling-laws", "alignment"]) == [
        ['topic_slugs = "alignment"', 'topic_slugs = "scaling-laws"']
    ]


HOSTILE = [
    'a" OR topics = "b',
    "alignment OR has_code = true",
    'alignment"',
    "a=b",
    "a]",
    "[a",
    "a\\",
    'a\\" OR id EXISTS',
    "alignment) OR (id EXISTS",
    "a'b",
    "OR",
    "Alignment",
    "-alignment",
    "a b",
    "",
    "a\n",
    "x" * 201,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_topic_filter_rejects_anything_but_a_slug(value: str) -> None:
    with pytest.raises(ValueError, match="topic slug"):
        topic_filter(["alignment", value])


def test_topic_filter_in_all_mode_ands_the_topics() -> None:
    assert topic_filter(["alignment", "scaling-laws"], "all") == [
        'topic_slugs = "alignment"',
        'topic_slugs = "scaling-laws"',
    ]


def test_author_keys_ignore_case_accents_and_spacing() -> None:
    doc = paper_to_document(make_paper(authors=["Zoë  Müller", "ŁUKASZ Kaiser", "zoe muller"]))
    assert doc["author_keys"] == ["lukasz kaiser", "zoe muller"]


def test_search_filter_ands_every_filter_and_quotes_author_keys() -> None:
    query = SearchQuery(
        topics=("alignment",),
        has_code=False,
        published_from=date(2024, 1, 1),
        published_to=date(2024, 12, 31),
        authors=('Zoë "Z" Müller', 'ZOE  "z" MULLER', "Ada Lovelace"),
    )
    from_ts = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    to_ts = int(datetime(2024, 12, 31, tzinfo=UTC).timestamp())
    assert search_filter(query) == [
        ['topic_slugs = "alignment"'],
        "has_code = false",
        f"published_ts >= {from_ts}",
        f"published_ts <= {to_ts}",
        [
            "author_keys = " + quote_filter_value('zoe "z" muller'),
            'author_keys = "ada lovelace"',
        ],
    ]
    assert search_filter(query, with_topics=False) == search_filter(query)[1:]  # type: ignore[index]
    assert search_filter(SearchQuery(q="kv", sort="-published")) is None


def test_topic_filter_needs_a_topic() -> None:
    with pytest.raises(ValueError, match="at least one"):
        topic_filter([])


def _meili_read_quoted(literal: str) -> tuple[str, str]:
    """What Meilisearch's filter parser reads from a double-quoted value: (value, rest).

    Mirrors `quoted_by('"')` (the value ends at the first quote not preceded by a backslash),
    then `unescape` of `\\"` and the backslash unescaping that follows, in
    meilisearch/crates/filter-parser/src/value.rs.
    """
    assert literal.startswith('"')
    i = 1
    while i < len(literal):
        if literal[i] == "\\":
            i += 2
            continue
        if literal[i] == '"':
            break
        i += 1
    else:
        raise AssertionError("unterminated literal")
    raw, rest = literal[1:i], literal[i + 1 :]
    raw = raw.replace('\\"', '"')
    out, j = [], 0
    escapes = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    while j < len(raw):
        if raw[j] == "\\" and j + 1 < len(raw):
            out.append(escapes[raw[j + 1]])
            j += 2
        else:
            out.append(raw[j])
            j += 1
    return "".join(out), rest


@pytest.mark.parametrize("value", [*HOSTILE, '\\"', '\\\\"', '"', "\\n", "a\\\\"])
def test_quoted_values_read_back_verbatim_and_end_where_they_should(value: str) -> None:
    quoted = quote_filter_value(value)
    read, rest = _meili_read_quoted(quoted)
    assert read == value
    assert rest == ""


# --- pagination ------------------------------------------------------------------------------


def test_page_window_uses_plain_pages_when_aligned() -> None:
    assert page_window(0, 20) == (20, 1, 0)
    assert page_window(40, 20) == (20, 3, 0)


def test_page_window_covers_any_window_exactly() -> None:
    for limit in range(1, 25):
        for offset in range(200):
            size, page, skip = page_window(offset, limit)
            assert size >= limit
            assert (page - 1) * size + skip == offset
            assert skip + limit <= size


def test_page_window_past_max_total_hits_asks_only_for_totals() -> None:
    size, page, _ = page_window(MAX_TOTAL_HITS + 5, 10)
    assert size == 10
    assert (page - 1) * size >= MAX_TOTAL_HITS


def test_page_window_with_no_limit_asks_for_no_hits() -> None:
    assert page_window(0, 0) == (0, 1, 0)


# --- the multi-search request and its merge ----------------------------------------------------


def _payload(params: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = params.model_dump(by_alias=True)
    return dumped


def test_browse_is_one_query_in_ranking_order_with_exact_totals_and_every_facet() -> None:
    (only,) = [_payload(p) for p in search_params("papers", SearchQuery(limit=10, offset=20))]
    assert only["q"] == ""
    assert only["filter"] is None
    assert only["sort"] is None  # relevance: the ranking rules, ending with id:asc
    assert (only["hitsPerPage"], only["page"]) == (10, 3)
    assert only["facets"] == list(FACETS)


def test_a_sorted_search_sends_the_sort_and_the_id_tie_breaker() -> None:
    query = SearchQuery(q="kv", sort="-published", has_code=True)
    (only,) = [_payload(p) for p in search_params("papers", query)]
    assert only["sort"] == ["published:desc", "id:asc"]
    assert only["filter"] == ["has_code = true"]
    assert only["facets"] == list(FACETS)  # without a topic filter, one query does it all


def test_the_query_text_goes_to_meilisearch_as_typed() -> None:
    q = '"kv cache" -quantization evic'  # phrase, exclusion and prefix: Meilisearch's syntax
    (only,) = [_payload(p) for p in search_params("papers", SearchQuery(q=q))]
    assert only["q"] == q
    assert only["matchingStrategy"] == "all"


def test_search_highlights_title_and_crops_abstract_with_our_tags() -> None:
    (only,) = [_payload(p) for p in search_params("papers", SearchQuery(q="kv cache"))]
    assert only["q"] == "kv cache"
    assert only["attributesToHighlight"] == ["title", "abstract"]
    assert only["attributesToCrop"] == ["abstract"]
    assert only["cropLength"] == 40
    assert only["cropMarker"] == "…"
    assert (only["highlightPreTag"], only["highlightPostTag"]) == ("<mark>", "</mark>")


def test_topics_add_a_facet_query_with_every_other_filter() -> None:
    query = SearchQuery(q="kv", topics=("alignment", "scaling-laws"), has_code=True)
    hits, facets = (_payload(p) for p in search_params("papers", query))
    assert hits["filter"] == [
        ['topic_slugs = "alignment"', 'topic_slugs = "scaling-laws"'],
        "has_code = true",
    ]
    assert hits["facets"] is None
    assert facets["filter"] == ["has_code = true"]
    assert facets["q"] == "kv"
    assert facets["facets"] == list(FACETS)
    assert facets["hitsPerPage"] == 0
    assert facets["sort"] is None


def _hits_result(
    papers: list[Paper],
    total: int,
    facets: dict[str, int],
    more: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    hits = []
    for paper in papers:
        doc = paper_to_document(paper)
        doc["_formatted"] = {**doc, "title": f"<mark>{paper.title}</mark>"}
        hits.append(doc)
    return {
        "indexUid": "papers",
        "hits": hits,
        "query": "kv",
        "processingTimeMs": 3,
        "hitsPerPage": 2,
        "page": 1,
        "totalPages": (total + 1) // 2,
        "totalHits": total,
        "facetDistribution": {TOPIC_FACET: facets, **(more or {})},
        "facetStats": {},
    }


def test_merge_takes_hits_and_total_from_the_filtered_query_and_facets_from_the_other() -> None:
    a, b = make_paper(id="a"), make_paper(id="b")
    filtered = _hits_result([a, b], total=2, facets={"alignment": 2, "scaling-laws": 1})
    unfiltered = _hits_result([], total=9, facets={"alignment": 2, "scaling-laws": 5, "bio": 4})
    result = merge_results(filtered, unfiltered)
    assert result.engine == "meilisearch"
    assert result.total == 2
    assert [hit.id for hit in result.hits] == ["a", "b"]
    assert result.hits[0].highlight.title == f"<mark>{a.title}</mark>"
    assert result.topic_facets == {"alignment": 2, "scaling-laws": 5, "bio": 4}


def test_merge_without_a_facet_query_uses_the_single_result() -> None:
    single = _hits_result([make_paper(id="a")], total=1, facets={"alignment": 1})
    result = merge_results(single)
    assert result.topic_facets == {"alignment": 1}


def test_merge_cuts_the_page_down_to_the_window() -> None:
    papers = [make_paper(id=f"p{i}") for i in range(4)]
    result = merge_results(_hits_result(papers, total=30, facets={}), skip=1, limit=2)
    assert [hit.id for hit in result.hits] == ["p1", "p2"]
    assert result.total == 30


def test_facets_reconcile_with_the_total_they_were_counted_over() -> None:
    result = _hits_result(
        [],
        total=10,
        facets={"alignment": 4},
        more={
            "has_topics": {"true": 7, "false": 3},
            "has_code": {"true": 6, "false": 4},
            "published_year": {"2024": 5, "2021": 2},
        },
    )
    facets = facets_of(result)
    assert facets.topics == {"alignment": 4}
    assert facets.no_topic == 3
    assert facets.has_code == CodeCounts(true=6, false=4)
    assert facets.years == {2021: 2, 2024: 5}
    assert list(facets.years) == [2021, 2024]
    assert facets.undated == 3  # 10 hits, 7 of them with a year


def test_missing_facet_values_count_zero() -> None:
    facets = facets_of(_hits_result([], total=2, facets={}, more={"has_code": {"false": 2}}))
    assert facets.has_code == CodeCounts(true=0, false=2)
    assert (facets.no_topic, facets.years, facets.undated) == (0, {}, 2)


@pytest.mark.parametrize("which", ["hits", "facets"])
def test_a_count_at_max_total_hits_is_too_large_to_be_exact(which: str) -> None:
    small = _hits_result([], total=5, facets={})
    large = _hits_result([], total=MAX_TOTAL_HITS, facets={})
    hits, facets = (large, small) if which == "hits" else (small, large)
    with pytest.raises(ResultTooLargeError, match="maxTotalHits"):
        merge_results(hits, facets)
    merge_results(_hits_result([], total=MAX_TOTAL_HITS - 1, facets={}))


def test_merge_falls_back_to_the_estimate_and_to_no_facets() -> None:
    estimated = {"hits": [], "query": "", "processingTimeMs": 0, "estimatedTotalHits": 7}
    result = merge_results(estimated)
    assert result.total == 7
    assert result.topic_facets == {}
    assert result.facets.undated == 7


# --- suggestions -------------------------------------------------------------------------------


def test_suggest_searches_titles_only_and_returns_little() -> None:
    sent = _payload(suggest_params("papers", "kv cache comp", 10))
    assert sent["q"] == "kv cache comp"
    assert sent["attributesToSearchOn"] == ["title"]
    assert sent["attributesToRetrieve"] == ["id", "title"]
    assert sent["attributesToHighlight"] == ["title"]
    assert (sent["highlightPreTag"], sent["highlightPostTag"]) == ("<mark>", "</mark>")
    assert sent["limit"] == 10
    assert sent["matchingStrategy"] == "all"
    assert set(sent["attributesToSearchOn"]) <= set(index_settings()["searchableAttributes"])


def test_suggestions_take_the_highlight_from_formatted() -> None:
    result = {
        "hits": [
            {
                "id": "a",
                "title": "KV Cache",
                "_formatted": {"id": "a", "title": "<mark>KV</mark> Cache"},
            },
            {"id": "b", "title": "Plain"},
        ]
    }
    a, b = suggestions_of(result)
    assert (a.id, a.title, a.highlight) == ("a", "KV Cache", "<mark>KV</mark> Cache")
    assert (b.id, b.highlight) == ("b", "Plain")


# --- tasks -----------------------------------------------------------------------------------

FAILED_TASK = {
    "uid": 42,
    "batchUid": 7,
    "indexUid": "papers",
    "status": "failed",
    "type": "settingsUpdate",
    "canceledBy": None,
    "details": {"rankingRules": ["words", "bogus"]},
    "error": {
        "message": "`bogus` ranking rule is invalid.",
        "code": "invalid_settings_ranking_rules",
        "type": "invalid_request",
        "link": "https://docs.meilisearch.com/errors#invalid_settings_ranking_rules",
    },
    "duration": "PT0.001S",
    "enqueuedAt": "2025-03-11T08:00:00.000000Z",
    "startedAt": "2025-03-11T08:00:00.001000Z",
    "finishedAt": "2025-03-11T08:00:00.002000Z",
}


def test_failed_task_raises_with_meilisearchs_own_message_and_code() -> None:
    with pytest.raises(MeilisearchTaskError) as caught:
        raise_for_task(FAILED_TASK)
    err = caught.value
    assert "`bogus` ranking rule is invalid." in str(err)
    assert "invalid_settings_ranking_rules" in str(err)
    assert (err.task_uid, err.code, err.task_type) == (
        42,
        "invalid_settings_ranking_rules",
        "settingsUpdate",
    )


def test_succeeded_task_passes_and_canceled_task_fails() -> None:
    raise_for_task({**FAILED_TASK, "status": "succeeded", "error": None})
    with pytest.raises(MeilisearchTaskError, match="canceled"):
        raise_for_task({**FAILED_TASK, "status": "canceled", "error": None})


# --- the engine over the network -------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_closed_port_makes_search_unavailable_quickly_and_ping_false() -> None:
    engine = MeilisearchEngine(f"http://127.0.0.1:{_closed_port()}", "key", timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(EngineUnavailableError):
            await engine.search(SearchQuery(q="kv"))
        assert time.monotonic() - started < 2.0
        assert await engine.ping() is False
    finally:
        await engine.close()


Reply = tuple[int, str, bytes]
HANG: Reply = (0, "", b"")


def _json(status: int, payload: Any) -> Reply:
    return status, "application/json", json.dumps(payload).encode()


class FakeMeilisearch:
    """A loopback HTTP server answering each (method, path) with a canned Meilisearch reply."""

    def __init__(self, routes: Mapping[tuple[str, str], Reply | list[Reply]]) -> None:
        self.routes = {
            key: list(value) if isinstance(value, list) else [value]
            for key, value in routes.items()
        }
        self.requests: list[tuple[str, str, bytes]] = []
        self._release = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> FakeMeilisearch:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        self._server.close()
        await self._server.wait_closed()

    def bodies(self, method: str, path: str) -> list[Any]:
        return [
            json.loads(body)
            for m, target, body in self.requests
            if m == method and target.split("?")[0] == path
        ]

    def _reply(self, method: str, path: str) -> Reply:
        replies = self.routes.get((method, path))
        if not replies:
            return _json(
                404,
                {
                    "message": f"no route {method} {path}",
                    "code": "not_found",
                    "type": "invalid_request",
                    "link": "",
                },
            )
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((method, target, body))
            status, content_type, data = self._reply(method, target.split("?")[0])
            if status == 0:
                await self._release.wait()
                return
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()


def _error(code: str, message: str) -> dict[str, str]:
    return {"message": message, "code": code, "type": "invalid_request", "link": ""}


@asynccontextmanager
async def _engine(fake: FakeMeilisearch, **kwargs: Any) -> AsyncIterator[MeilisearchEngine]:
    engine = MeilisearchEngine(fake.url, "key", **kwargs)
    try:
        yield engine
    finally:
        await engine.close()


async def test_search_sends_one_multi_search_and_merges_the_answer() -> None:
    a, b = make_paper(id="a"), make_paper(id="b")
    filtered = _hits_result([a, b], total=2, facets={"alignment": 2})
    unfiltered = {
        **_hits_result([], total=9, facets={"alignment": 2, "biology": 7}),
        "hitsPerPage": 0,
    }
    routes = {("POST", "/multi-search"): _json(200, {"results": [filtered, unfiltered]})}
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        result = await engine.search(SearchQuery(q="kv", topics=("alignment",), limit=2))
    (sent,) = fake.bodies("POST", "/multi-search")
    assert [q["indexUid"] for q in sent["queries"]] == ["papers", "papers"]
    assert sent["queries"][0]["filter"] == [['topic_slugs = "alignment"']]
    assert sent["queries"][1]["filter"] is None
    assert result.total == 2
    assert [hit.id for hit in result.hits] == ["a", "b"]
    assert result.topic_facets == {"alignment": 2, "biology": 7}


@pytest.mark.parametrize(
    "reply",
    [
        _json(503, _error("too_many_search_requests", "busy")),
        _json(500, _error("internal", "boom")),
        (502, "text/html", b"<html>bad gateway</html>"),
        HANG,
    ],
    ids=["503", "500", "502-html", "timeout"],
)
async def test_server_side_failures_are_unavailable(reply: Reply) -> None:
    routes = {("POST", "/multi-search"): reply}
    async with FakeMeilisearch(routes) as fake, _engine(fake, timeout=0.5) as engine:
        with pytest.raises(EngineUnavailableError):
            await engine.search(SearchQuery(q="kv"))


async def test_our_bad_request_is_a_distinct_error_naming_meilisearchs_code() -> None:
    reply = _json(
        400, _error("invalid_search_filter", "Attribute `topic_slugs` is not filterable.")
    )
    routes = {("POST", "/multi-search"): reply}
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        with pytest.raises(MeilisearchRequestError) as caught:
            await engine.search(SearchQuery(q="kv", topics=("alignment",)))
    assert caught.value.code == "invalid_search_filter"
    assert "is not filterable" in str(caught.value)
    assert not isinstance(caught.value, EngineUnavailableError)


async def test_a_search_meilisearch_cannot_count_exactly_is_too_large() -> None:
    saturated = _hits_result([make_paper(id="a")], total=MAX_TOTAL_HITS, facets={})
    routes = {("POST", "/multi-search"): _json(200, {"results": [saturated]})}
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        with pytest.raises(ResultTooLargeError):
            await engine.search(SearchQuery(q="", offset=MAX_TOTAL_HITS - 10, limit=20))
    (sent,) = fake.bodies("POST", "/multi-search")
    assert sent["queries"][0]["page"] * sent["queries"][0]["hitsPerPage"] >= MAX_TOTAL_HITS


async def test_suggest_sends_one_title_search_and_reads_the_highlights() -> None:
    answer = {
        "indexUid": "papers",
        "hits": [
            {
                "id": "gear",
                "title": "GEAR: KV Cache Compression",
                "_formatted": {"id": "gear", "title": "GEAR: <mark>KV</mark> Cache Compression"},
            }
        ],
        "query": "kv",
        "processingTimeMs": 1,
        "limit": 5,
        "offset": 0,
        "estimatedTotalHits": 1,
    }
    routes = {("POST", "/multi-search"): _json(200, {"results": [answer]})}
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        result = await engine.suggest("kv", 5)
        assert (await engine.suggest("   ")).suggestions == []  # asks nothing
    (sent,) = fake.bodies("POST", "/multi-search")
    (only,) = sent["queries"]
    assert (only["q"], only["limit"], only["attributesToSearchOn"]) == ("kv", 5, ["title"])
    assert result.engine == "meilisearch"
    assert [(s.id, s.highlight) for s in result.suggestions] == [
        ("gear", "GEAR: <mark>KV</mark> Cache Compression")
    ]


async def test_suggest_failures_are_unavailable_like_searches() -> None:
    routes = {("POST", "/multi-search"): _json(503, _error("internal", "busy"))}
    async with FakeMeilisearch(routes) as fake, _engine(fake, timeout=0.5) as engine:
        with pytest.raises(EngineUnavailableError):
            await engine.suggest("kv")


async def test_ping_reads_the_health_endpoint() -> None:
    up = {("GET", "/health"): _json(200, {"status": "available"})}
    async with FakeMeilisearch(up) as fake, _engine(fake) as engine:
        assert await engine.ping() is True
    down = {("GET", "/health"): _json(500, _error("internal", "x"))}
    async with FakeMeilisearch(down) as fake, _engine(fake) as engine:
        assert await engine.ping() is False


def _task_info(uid: int, kind: str) -> Reply:
    return _json(
        202,
        {
            "taskUid": uid,
            "indexUid": "papers",
            "status": "enqueued",
            "type": kind,
            "enqueuedAt": "2025-03-11T08:00:00Z",
        },
    )


def _task(uid: int, kind: str, status: str = "succeeded") -> Reply:
    error = FAILED_TASK["error"] if status == "failed" else None
    return _json(200, {**FAILED_TASK, "uid": uid, "type": kind, "status": status, "error": error})


INDEX_INFO = _json(
    200,
    {
        "uid": "papers",
        "primaryKey": "id",
        "createdAt": "2025-03-11T08:00:00Z",
        "updatedAt": "2025-03-11T08:00:00Z",
    },
)


async def test_a_failed_settings_task_raises_meilisearchs_error() -> None:
    routes = {
        ("GET", "/indexes/papers"): INDEX_INFO,
        ("PATCH", "/indexes/papers/settings"): _task_info(5, "settingsUpdate"),
        ("GET", "/tasks/5"): _task(5, "settingsUpdate", "failed"),
    }
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        with pytest.raises(MeilisearchTaskError, match="ranking rule is invalid"):
            await engine.ensure_index()
    (sent,) = fake.bodies("PATCH", "/indexes/papers/settings")
    assert sent == index_settings()


async def test_ensure_index_creates_a_missing_index_with_the_id_primary_key() -> None:
    routes = {
        ("GET", "/indexes/papers"): _json(
            404, _error("index_not_found", "Index `papers` not found.")
        ),
        ("POST", "/indexes"): _task_info(1, "indexCreation"),
        ("GET", "/tasks/1"): _task(1, "indexCreation"),
        ("PATCH", "/indexes/papers/settings"): _task_info(2, "settingsUpdate"),
        ("GET", "/tasks/2"): _task(2, "settingsUpdate"),
    }
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        await engine.ensure_index()
    assert fake.bodies("POST", "/indexes") == [{"uid": "papers", "primaryKey": "id"}]


async def test_index_papers_sends_documents_in_batches_and_waits() -> None:
    papers = [make_paper(id=f"p{i}") for i in range(1001)]
    routes: dict[tuple[str, str], Reply | list[Reply]] = {
        ("GET", "/indexes/papers"): INDEX_INFO,
        ("PATCH", "/indexes/papers/settings"): _task_info(1, "settingsUpdate"),
        ("GET", "/tasks/1"): _task(1, "settingsUpdate"),
        ("POST", "/indexes/papers/documents"): [
            _task_info(2, "documentAdditionOrUpdate"),
            _task_info(3, "documentAdditionOrUpdate"),
        ],
        ("GET", "/tasks/2"): _task(2, "documentAdditionOrUpdate"),
        ("GET", "/tasks/3"): _task(3, "documentAdditionOrUpdate", "failed"),
    }
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        with pytest.raises(MeilisearchTaskError):
            await engine.index_papers(papers)
    batches = fake.bodies("POST", "/indexes/papers/documents")
    assert [len(batch) for batch in batches] == [1000, 1]
    assert batches[1][0]["id"] == "p1000"


def _failed(uid: int, kind: str, code: str, message: str) -> Reply:
    error = {"message": message, "code": code, "type": "invalid_request", "link": ""}
    return _json(200, {**FAILED_TASK, "uid": uid, "type": kind, "error": error})


async def test_reindex_builds_new_index_swaps_and_drops_the_old_one() -> None:
    not_found = _json(404, _error("index_not_found", "Index `papers_new` not found."))
    routes: dict[tuple[str, str], Reply | list[Reply]] = {
        ("DELETE", "/indexes/papers_new"): [
            _task_info(10, "indexDeletion"),
            _task_info(16, "indexDeletion"),
        ],
        ("GET", "/tasks/10"): _failed(10, "indexDeletion", "index_not_found", "not found"),
        ("GET", "/indexes/papers_new"): not_found,
        ("POST", "/indexes"): _task_info(11, "indexCreation"),
        ("GET", "/tasks/11"): _task(11, "indexCreation"),
        ("PATCH", "/indexes/papers_new/settings"): _task_info(12, "settingsUpdate"),
        ("GET", "/tasks/12"): _task(12, "settingsUpdate"),
        ("POST", "/indexes/papers_new/documents"): [
            _task_info(13, "documentAdditionOrUpdate"),
            _task_info(14, "documentAdditionOrUpdate"),
        ],
        ("GET", "/tasks/13"): _task(13, "documentAdditionOrUpdate"),
        ("GET", "/tasks/14"): _task(14, "documentAdditionOrUpdate"),
        ("GET", "/indexes/papers"): INDEX_INFO,
        ("POST", "/swap-indexes"): _task_info(15, "indexSwap"),
        ("GET", "/tasks/15"): _task(15, "indexSwap"),
        ("GET", "/tasks/16"): _task(16, "indexDeletion"),
    }

    async def batches() -> AsyncIterator[list[Paper]]:
        yield [make_paper(id="a"), make_paper(id="b")]
        yield [make_paper(id="c")]

    seen: list[int] = []
    async with FakeMeilisearch(routes) as fake, _engine(fake) as engine:
        count = await engine.reindex(batches(), seen.append)
    assert count == 3
    assert seen == [2, 3]
    steps = [(m, t.split("?")[0]) for m, t, _ in fake.requests if not t.startswith("/tasks/")]
    assert steps == [
        ("DELETE", "/indexes/papers_new"),
        ("GET", "/indexes/papers_new"),
        ("POST", "/indexes"),
        ("PATCH", "/indexes/papers_new/settings"),
        ("POST", "/indexes/papers_new/documents"),
        ("POST", "/indexes/papers_new/documents"),
        ("GET", "/indexes/papers"),
        ("POST", "/swap-indexes"),
        ("DELETE", "/indexes/papers_new"),
    ]
    assert fake.bodies("POST", "/swap-indexes") == [[{"indexes": ["papers", "papers_new"]}]]
    assert fake.bodies("POST", "/indexes") == [{"uid": "papers_new", "primaryKey": "id"}]


# --- keys ------------------------------------------------------------------------------------


def test_key_specs_are_least_privilege() -> None:
    assert search_key_spec().actions == ("search",)
    assert search_key_spec().indexes == ("papers",)
    admin = admin_key_spec()
    assert set(admin.actions) == {"documents.*", "indexes.*", "settings.*", "tasks.*", "search"}
    assert admin.indexes == ("papers*",)


def _key(name: str, key: str, actions: list[str], indexes: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": None,
        "key": key,
        "uid": f"uid-{key}",
        "actions": actions,
        "indexes": indexes,
        "expiresAt": None,
        "createdAt": "2025-03-11T08:00:00Z",
        "updatedAt": "2025-03-11T08:00:00Z",
    }


async def test_provision_keys_finds_existing_keys_by_name() -> None:
    existing = [
        _key(
            "papers-admin",
            "ADMIN",
            ["documents.*", "indexes.*", "settings.*", "tasks.*", "search"],
            ["papers*"],
        ),
        _key("papers-search", "SEARCH", ["search"], ["papers"]),
        _key("Default Admin API Key", "OTHER", ["*"], ["*"]),
    ]
    routes = {
        ("GET", "/keys"): _json(200, {"results": existing, "offset": 0, "limit": 100, "total": 3})
    }
    async with FakeMeilisearch(routes) as fake:
        assert await provision_keys(fake.url, "master") == ("SEARCH", "ADMIN")
    assert not fake.bodies("POST", "/keys")


async def test_provision_keys_creates_missing_and_replaces_stale_keys() -> None:
    stale = _key("papers-search", "OLD", ["search", "documents.add"], ["*"])
    routes: dict[tuple[str, str], Reply | list[Reply]] = {
        ("GET", "/keys"): _json(200, {"results": [stale], "offset": 0, "limit": 100, "total": 1}),
        ("DELETE", "/keys/uid-OLD"): (204, "application/json", b""),
        ("POST", "/keys"): [
            _json(201, _key("papers-search", "SEARCH", ["search"], ["papers"])),
            _json(201, _key("papers-admin", "ADMIN", ["search"], ["papers*"])),
        ],
    }
    async with FakeMeilisearch(routes) as fake:
        assert await provision_keys(fake.url, "master") == ("SEARCH", "ADMIN")
    created = fake.bodies("POST", "/keys")
    assert [body["name"] for body in created] == ["papers-search", "papers-admin"]
    assert created[0]["actions"] == ["search"]
    assert created[0]["expiresAt"] is None


async def test_is_master_key_is_true_only_when_keys_can_be_listed() -> None:
    listing = _json(200, {"results": [], "offset": 0, "limit": 1, "total": 0})
    async with FakeMeilisearch({("GET", "/keys"): listing}) as fake:
        assert await is_master_key(fake.url, "master") is True
    forbidden = _json(403, _error("invalid_api_key", "The provided API key is invalid."))
    async with FakeMeilisearch({("GET", "/keys"): forbidden}) as fake:
        assert await is_master_key(fake.url, "search") is False
    with pytest.raises(EngineUnavailableError):
        await is_master_key(f"http://127.0.0.1:{_closed_port()}", "key")
