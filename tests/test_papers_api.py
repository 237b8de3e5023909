"""Per-paper endpoints, batch, related papers and keyset listings, through the real app."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import db
from service.api.cursor import CursorCodec
from service.api.fields import FieldSelectionError, select_fields
from service.app import create_app
from service.config import ConfigError, Settings, load_settings
from service.ingest.run import load_files
from service.models import Paper, SearchHit
from tests.conftest import TAXONOMY, app_for
from tests.test_api import assert_problem

Client = AsyncTestClient[Litestar]
GEAR = "gear-an-efficient-kv-cache-compression-recipefor-near-lossless-generative"
DENSING = "densing-law-of-llms"
SECRET = "s" * 40


def assert_body_problem(response: Any, field: str) -> None:
    """A 422 problem naming exactly this body field."""
    body = assert_problem(response, 422)
    assert body["code"] == "validation-failed"
    assert [p["name"] for p in body["invalid_params"]] == [field]


async def set_arxiv_id(conn: db.Connection, paper_id: str, arxiv_id: str) -> None:
    await conn.execute("UPDATE papers SET arxiv_id = $2 WHERE id = $1", paper_id, arxiv_id)


async def all_ids(conn: db.Connection) -> list[str]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM papers ORDER BY id")]


# --- one paper ------------------------------------------------------------------------------


async def test_topics_carry_score_and_method(client: Client, conn: db.Connection) -> None:
    paper = (await client.get(f"/v1/papers/{GEAR}")).json()
    stored = await conn.fetch(
        "SELECT topic_slug, score, method FROM paper_topics WHERE paper_id = $1 ORDER BY rank",
        GEAR,
    )
    assert stored
    assert [list(t) for t in paper["topics"]] == [["slug", "label", "score", "method"]] * len(
        stored
    )
    assert [t["slug"] for t in paper["topics"]] == [r["topic_slug"] for r in stored]
    assert [t["method"] for t in paper["topics"]] == [r["method"] for r in stored]
    assert [t["score"] for t in paper["topics"]] == pytest.approx([r["score"] for r in stored])
    assert all(0 < t["score"] <= 1 for t in paper["topics"])


async def test_paper_by_arxiv_id_with_or_without_version(
    client: Client, conn: db.Connection
) -> None:
    await set_arxiv_id(conn, DENSING, "2412.04315")
    await set_arxiv_id(conn, GEAR, "2403.05527v3")
    for key, expected in [
        ("arxiv:2412.04315", DENSING),
        ("arxiv:2412.04315v2", DENSING),
        ("arxiv:2403.05527", GEAR),
        ("arxiv:2403.05527v1", GEAR),
        ("arxiv:2403.05527v3", GEAR),
    ]:
        response = await client.get(f"/v1/papers/{key}")
        assert response.status_code == 200, key
        assert response.json()["id"] == expected, key
    for missing in ["arxiv:2412.99999", "arxiv:not-an-id", "arxiv:"]:
        body = assert_problem(await client.get(f"/v1/papers/{missing}"), 404)
        assert missing in body["detail"]


async def test_paper_has_last_modified(client: Client) -> None:
    response = await client.get(f"/v1/papers/{DENSING}")
    modified = email.utils.parsedate_to_datetime(response.headers["last-modified"])
    updated = msgspec.json.decode(response.content, type=Paper).updated_at
    assert modified == updated.replace(microsecond=0)


async def test_fields_select_top_level_and_nested_fields(client: Client) -> None:
    full = (await client.get(f"/v1/papers/{GEAR}")).json()
    response = await client.get(f"/v1/papers/{GEAR}", params={"fields": "topics.label, title"})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["title", "topics"]  # the type's order, not the order asked
    assert body == {
        "title": full["title"],
        "topics": [{"label": t["label"]} for t in full["topics"]],
    }
    whole = (await client.get(f"/v1/papers/{GEAR}?fields=links,links.code,id")).json()
    assert whole == {"id": full["id"], "links": full["links"]}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ("nope", "'nope'"),
        ("title,topics.nme", "'topics.nme'"),
        ("title.length", "'title'"),
        ("title,,id", "empty"),
        ("", "empty"),
        ("highlight", "'highlight'"),
    ],
)
async def test_unknown_field_is_a_400_naming_it(client: Client, fields: str, named: str) -> None:
    body = assert_problem(
        await client.get(f"/v1/papers/{GEAR}", params={"fields": fields}), 400, "fields"
    )
    assert named in body["invalid_params"][0]["reason"]


def test_field_selection_works_on_search_hits() -> None:
    paper = msgspec.json.decode(
        json.dumps(
            {
                "id": "p", "title": "T", "abstract": "A", "authors": [], "published": None,
                "arxiv_id": None, "links": {}, "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-02T00:00:00Z",
                "source": {"file": "f", "position": 1, "format": "jsonl"},
                "topics": [{"slug": "s", "label": "L", "score": 0.5, "method": "phrases"}],
                "highlight": {"title": "<mark>T</mark>", "abstract": "A"},
            }
        ),
        type=SearchHit,
    )  # fmt: skip
    selection = select_fields("highlight.title,id,topics.score", SearchHit)
    assert selection.project(paper) == {
        "id": "p",
        "topics": [{"score": 0.5}],
        "highlight": {"title": "<mark>T</mark>"},
    }
    with pytest.raises(FieldSelectionError) as error:
        select_fields("highlight.title", Paper)
    assert error.value.path == "highlight"


# --- batch ----------------------------------------------------------------------------------


async def test_batch_answers_in_request_order_with_reasons(
    client: Client, conn: db.Connection
) -> None:
    await set_arxiv_id(conn, DENSING, "2412.04315")
    ids = [GEAR, "no-such-paper", "arxiv:2412.04315v1", GEAR, "arxiv:1999.00001"]
    response = await client.post("/v1/papers/batch", json={"ids": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p and p["id"] for p in body["data"]] == [GEAR, None, DENSING, GEAR, None]
    assert body["errors"] == [
        {"index": 1, "id": "no-such-paper", "reason": "not-found"},
        {"index": 4, "id": "arxiv:1999.00001", "reason": "not-found"},
    ]
    single = (await client.get(f"/v1/papers/{GEAR}")).json()
    assert body["data"][0] == single


async def test_batch_with_fields(client: Client) -> None:
    body = (
        await client.post(
            "/v1/papers/batch", json={"ids": [DENSING, "nope-x"], "fields": "id,topics.slug"}
        )
    ).json()
    assert body["data"][1] is None
    assert set(body["data"][0]) == {"id", "topics"}
    assert all(set(t) == {"slug"} for t in body["data"][0]["topics"])
    assert_body_problem(
        await client.post("/v1/papers/batch", json={"ids": [DENSING], "fields": "x"}), "fields"
    )


async def test_batch_takes_500_ids(client: Client, conn: db.Connection) -> None:
    known = await all_ids(conn)
    ids = (known * 7)[:500]
    body = (await client.post("/v1/papers/batch", json={"ids": ids})).json()
    assert [p["id"] for p in body["data"]] == ids
    assert body["errors"] == []


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        ({"ids": []}, "ids"),
        ({"ids": ["a"] * 501}, "ids"),
        ({"ids": ["ok-id", "Not An Id"]}, "ids[1]"),
        ({"ids": ["arxiv:12345"]}, "ids[0]"),
        ({"ids": "densing-law-of-llms"}, "ids"),
    ],
)
async def test_batch_rejects_bad_ids(client: Client, payload: dict[str, Any], name: str) -> None:
    assert_body_problem(await client.post("/v1/papers/batch", json=payload), name)


# --- related papers -------------------------------------------------------------------------


async def related(client: Client, paper_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/papers/{paper_id}/related", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_related_papers_share_topics_and_terms(client: Client, conn: db.Connection) -> None:
    await conn.execute("ANALYZE papers")  # term rarity comes from the planner's statistics
    body = await related(client, GEAR, limit=5)
    assert body["paper_id"] == GEAR
    hits = body["data"]
    assert len(hits) == 5
    assert GEAR not in [h["id"] for h in hits]
    # The KV-cache compression papers of the seed come first.
    assert {h["id"] for h in hits[:3]} >= {
        "effectively-compress-kv-heads-for-llm",
        "ems-adaptive-evict-then-merge-strategy-for-head-wise-kv-cache-compression-based",
    }
    gear = (await client.get(f"/v1/papers/{GEAR}")).json()
    gear_topics = {t["slug"] for t in gear["topics"]}
    gear_text = f"{gear['title']} {gear['abstract']}".lower()
    for hit in hits:
        reason = hit["reason"]
        assert reason["shared_topics"] or reason["shared_terms"]
        assert set(reason["shared_topics"]) <= gear_topics & {t["slug"] for t in hit["topics"]}
        expected = round(0.4 * reason["topic_score"] + 0.6 * reason["term_score"], 4)
        assert hit["score"] == pytest.approx(expected, abs=2e-4)
        for word in reason["shared_terms"]:
            assert word in gear_text
            assert await conn.fetchval(
                "SELECT search_vector @@ plainto_tsquery('papers_english', $2) FROM papers WHERE id = $1",
                hit["id"],
                word,
            ), (hit["id"], word)
    assert "cache" in hits[0]["reason"]["shared_terms"]
    scores = [(-h["score"], h["id"]) for h in hits]
    assert scores == sorted(scores)


async def test_related_is_deterministic_and_ties_break_by_id(
    client: Client, conn: db.Connection
) -> None:
    await conn.execute("ANALYZE papers")
    first = await related(client, DENSING, limit=100)
    second = await related(client, DENSING, limit=100)
    assert first == second
    keys = [(-h["score"], h["id"]) for h in first["data"]]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))
    top3 = await related(client, DENSING, limit=3)
    assert top3["data"] == first["data"][:3]


async def test_related_filtered_by_topic(client: Client, conn: db.Connection) -> None:
    await conn.execute("ANALYZE papers")
    unfiltered = await related(client, GEAR, limit=100)
    body = await related(client, GEAR, topic="biology", limit=100)
    assert body["data"]
    assert all("biology" in {t["slug"] for t in h["topics"]} for h in body["data"])
    expected = [h for h in unfiltered["data"] if "biology" in {t["slug"] for t in h["topics"]}]
    assert body["data"] == expected


async def test_related_problems(client: Client, conn: db.Connection) -> None:
    assert_problem(await client.get("/v1/papers/no-such-paper/related"), 404)
    assert_problem(await client.get(f"/v1/papers/{GEAR}/related?topic=nope"), 400, "topic")
    assert_problem(await client.get(f"/v1/papers/{GEAR}/related?limit=0"), 400, "limit")
    await set_arxiv_id(conn, GEAR, "2403.05527")
    assert (await related(client, "arxiv:2403.05527"))["paper_id"] == GEAR


# --- listings -------------------------------------------------------------------------------


async def page_through(client: Client, path: str, limit: int, **query: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following `next_cursor`."""
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {**query, "limit": limit}
    while True:
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if page["next_cursor"] is None:
            assert "link" not in response.headers
            return pages
        assert response.headers["link"].endswith('>; rel="next"')
        params = {**query, "limit": limit, "cursor": page["next_cursor"]}


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_listing_yields_every_paper_once(
    client: Client, conn: db.Connection, limit: int
) -> None:
    pages = await page_through(client, "/v1/papers", limit)
    seen = [p["id"] for page in pages for p in page["data"]]
    assert seen == await all_ids(conn)
    assert {page["total"] for page in pages} == {77}
    assert len(pages) == -(-77 // limit)


async def test_link_header_leads_to_the_next_page(client: Client) -> None:
    first = await client.get("/v1/papers", params={"limit": 5, "topic": "alignment"})
    link = first.headers["link"]
    target = link[link.index("<") + 1 : link.index(">")]
    assert target.startswith("/v1/papers?")
    second = await client.get(target)
    assert second.status_code == 200
    via_cursor = await client.get(
        "/v1/papers",
        params={"limit": 5, "topic": "alignment", "cursor": first.json()["next_cursor"]},
    )
    assert second.json() == via_cursor.json()
    assert second.json()["data"][0]["id"] > first.json()["data"][-1]["id"]


async def test_listing_stays_correct_while_papers_are_added(
    client: Client, conn: db.Connection, tmp_path: Path
) -> None:
    before = await all_ids(conn)
    early = {"title": "Aaaa: A Paper That Sorts First", "abstract": "It sorts before the rest."}
    late = {"title": "Zzzz: A Paper That Sorts Last", "abstract": "It sorts after the rest."}
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    totals: list[int] = []
    for number in range(100):
        page = (await client.get("/v1/papers", params=params)).json()
        seen.extend(p["id"] for p in page["data"])
        totals.append(page["total"])
        if number == 2:  # papers arrive between pages: one before the cursor, one after it
            path = tmp_path / "new.jsonl"
            path.write_text("\n".join(json.dumps(r) for r in (early, late)) + "\n")
            await load_files(conn, [path], TAXONOMY)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert set(before) <= set(seen)
    assert set(seen) - set(before) == {"zzzz-a-paper-that-sorts-last"}
    assert totals[0] == 77
    assert totals[-1] == 79


async def test_topic_listing(client: Client, conn: db.Connection) -> None:
    count = await conn.fetchval("SELECT count(*) FROM paper_topics WHERE topic_slug = 'biology'")
    pages = await page_through(client, "/v1/topics/biology/papers", 2)
    papers = [p for page in pages for p in page["data"]]
    assert len(papers) == count
    assert all("biology" in {t["slug"] for t in p["topics"]} for p in papers)
    assert {page["total"] for page in pages} == {count}
    same = await page_through(client, "/v1/papers", 2, topic="biology")
    assert [p["id"] for page in same for p in page["data"]] == [p["id"] for p in papers]
    assert_problem(await client.get("/v1/topics/no-such-topic/papers"), 404)


async def test_listing_has_last_modified_of_the_last_corpus_change(
    client: Client, conn: db.Connection
) -> None:
    response = await client.get("/v1/papers", params={"limit": 10})
    changed = await conn.fetchval("SELECT changed_at FROM corpus_state")  # stamped by loads
    newest = max(msgspec.convert(p, Paper).updated_at for p in response.json()["data"])
    modified = email.utils.parsedate_to_datetime(response.headers["last-modified"])
    assert modified == changed.replace(microsecond=0)
    assert modified >= newest.replace(microsecond=0)  # never older than what the page shows


async def test_cursor_of_another_listing_is_refused(client: Client) -> None:
    all_cursor = (await client.get("/v1/papers?limit=2")).json()["next_cursor"]
    body = assert_problem(
        await client.get(f"/v1/topics/biology/papers?cursor={all_cursor}"), 400, "cursor"
    )
    assert "another listing" in body["detail"]
    topic_cursor = (await client.get("/v1/papers?limit=2&topic=biology")).json()["next_cursor"]
    assert (await client.get(f"/v1/topics/biology/papers?cursor={topic_cursor}")).status_code == 200


async def test_tampered_cursors_are_refused(client: Client) -> None:
    cursor = (await client.get("/v1/papers?limit=2")).json()["next_cursor"]
    body, signature = cursor.split(".")
    forged_payload = CursorCodec(b"x" * 32, 60).encode("all", "zzz").split(".")[0]
    for bad in [
        f"{forged_payload}.{signature}",  # another payload under our signature
        f"{body}.{signature[:-2]}AA",  # a changed signature
        body,  # no signature
        "not-a-cursor",
        CursorCodec(b"x" * 32, 60).encode("all", "a"),  # signed with another secret
    ]:
        assert_problem(await client.get("/v1/papers", params={"cursor": bad}), 400, "cursor")


async def test_expired_cursor_says_so(seeded_db: str) -> None:
    settings = Settings(database_url=seeded_db, cursor_secret=SECRET, cursor_ttl_s=60)
    codec = CursorCodec(SECRET.encode(), 60)
    async with AsyncTestClient(create_app(settings)) as client:
        fresh = codec.encode("all", "densing-law-of-llms", now=time.time() - 50)
        page = (await client.get("/v1/papers", params={"cursor": fresh, "limit": 1})).json()
        assert page["data"][0]["id"] > "densing-law-of-llms"
        old = codec.encode("all", "densing-law-of-llms", now=time.time() - 61)
        body = assert_problem(await client.get("/v1/papers", params={"cursor": old}), 400, "cursor")
        assert "expired" in body["detail"]


async def test_workers_share_the_stored_secret(seeded_db: str, conn: db.Connection) -> None:
    async with (
        AsyncTestClient(app_for(seeded_db)) as one,
        AsyncTestClient(app_for(seeded_db)) as two,
    ):
        cursor = (await one.get("/v1/papers?limit=3")).json()["next_cursor"]
        assert (await two.get("/v1/papers", params={"cursor": cursor})).status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM api_secrets") == 1
    assert len(await conn.fetchval("SELECT value FROM api_secrets WHERE name = 'cursor'")) == 32


async def test_cursor_secret_from_the_environment_is_not_stored(
    empty_db: str, empty_conn: db.Connection
) -> None:
    settings = Settings(database_url=empty_db, cursor_secret=SECRET)
    async with AsyncTestClient(create_app(settings)) as client:
        assert (await client.get("/v1/papers")).json() == {
            "data": [],
            "next_cursor": None,
            "total": 0,
        }
    assert await empty_conn.fetchval("SELECT count(*) FROM api_secrets") == 0


# --- keyset plans ---------------------------------------------------------------------------


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes, leaving out subplans (each row's topics are sorted by rank there)."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") != "SubPlan":
            nodes.extend(_plan_nodes(child))
    return nodes


async def _explain(conn: db.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return _plan_nodes(plan)


async def test_deep_pages_are_index_range_scans(empty_conn: db.Connection) -> None:
    conn = empty_conn
    await conn.execute(
        "INSERT INTO topics (slug, label, description, position) VALUES ('t', 'T', '', 0)"
    )
    await conn.execute(
        """INSERT INTO papers (id, title, title_key, abstract, source, content_hash, slug_base)
           SELECT 'p-' || lpad(n::text, 6, '0'), 'Paper ' || n, 'paper ' || n, 'Abstract.',
                  '{"file": "gen", "position": 1, "format": "jsonl"}', 'h', 'p-' || n
           FROM generate_series(1, 20000) AS n"""
    )
    await conn.execute(
        """INSERT INTO paper_topics (paper_id, topic_slug, rank, score, method)
           SELECT id, 't', 1, 0.5, 'phrases' FROM papers"""
    )
    await conn.execute("ANALYZE papers")
    await conn.execute("ANALYZE paper_topics")
    for mode in ("force_custom_plan", "force_generic_plan"):
        await conn.execute(f"SET plan_cache_mode = {mode}")
        nodes = await _explain(conn, db.LIST_PAPERS, "p-015000", 21)
        types = [n["Node Type"] for n in nodes]
        assert not {"Sort", "Seq Scan"} & set(types), (mode, types)
        scan = next(n for n in nodes if n.get("Relation Name") == "papers")
        assert (scan["Node Type"], scan["Index Name"]) == ("Index Scan", "papers_pkey")
        assert "id >" in scan["Index Cond"]

        nodes = await _explain(conn, db.LIST_TOPIC_PAPERS, "t", "p-015000", 21)
        types = [n["Node Type"] for n in nodes]
        assert not {"Sort", "Seq Scan"} & set(types), (mode, types)
        scan = next(n for n in nodes if n.get("Relation Name") == "paper_topics")
        assert scan["Index Name"] == "paper_topics_topic"
        assert "paper_id >" in scan["Index Cond"]


async def test_arxiv_lookup_uses_the_versionless_index(empty_conn: db.Connection) -> None:
    await empty_conn.execute(
        """INSERT INTO papers (id, title, title_key, abstract, source, content_hash, slug_base,
                               arxiv_id)
           SELECT 'p-' || n, 'Paper ' || n, 'paper ' || n, 'Abstract.',
                  '{"file": "gen", "position": 1, "format": "jsonl"}', 'h', 'p-' || n,
                  '2401.' || lpad(n::text, 5, '0') || 'v2'
           FROM generate_series(1, 20000) AS n"""
    )
    await empty_conn.execute("ANALYZE papers")
    nodes = await _explain(empty_conn, db.PAPER_BY_ARXIV, "2401.00042", "2401.00042")
    assert "papers_arxiv_base" in {n.get("Index Name") for n in nodes}
    paper = await db.get_paper_by_arxiv(empty_conn, "2401.00042", "2401.00042")
    assert paper is not None
    assert paper.id == "p-42"


# --- settings -------------------------------------------------------------------------------


def test_cursor_settings_from_the_environment() -> None:
    settings = load_settings({"PAPERS_CURSOR_SECRET": SECRET, "PAPERS_CURSOR_TTL_S": "3600"})
    assert (settings.cursor_secret, settings.cursor_ttl_s) == (SECRET, 3600)
    defaults = load_settings({})
    assert (defaults.cursor_secret, defaults.cursor_ttl_s) == (None, 86_400)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PAPERS_CURSOR_SECRET": "too-short"}, "PAPERS_CURSOR_SECRET"),
        ({"PAPERS_CURSOR_TTL_S": "soon"}, "PAPERS_CURSOR_TTL_S"),
        ({"PAPERS_CURSOR_TTL_S": "5"}, "PAPERS_CURSOR_TTL_S"),
    ],
)
def test_bad_cursor_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env)
