"""The search engine contract. Every engine must pass all of it with the seed papers loaded."""

from __future__ import annotations

from pathlib import Path

from service import db
from service.ingest.run import load_files
from service.search.engine import HIGHLIGHT_POST, HIGHLIGHT_PRE, SearchEngine, SearchQuery
from service.search.sync import drain_outbox
from tests.conftest import SEED_LISTING, TAXONOMY, write

MARK = HIGHLIGHT_PRE


def ids(result_hits: list) -> list[str]:  # type: ignore[type-arg]
    return [h.id for h in result_hits]


async def test_browse_returns_every_paper_in_id_order(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(limit=100))
    assert result.engine == engine.name
    assert result.total == 77
    assert ids(result.hits) == sorted(ids(result.hits))
    assert len(result.hits) == 77
    assert sum(result.topic_facets.values()) >= 77


async def test_ranking_puts_kv_cache_papers_first(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="kv cache compression", limit=5))
    top3 = ids(result.hits[:3])
    assert any(i.startswith("gear-an-efficient-kv-cache-compression") for i in top3)
    assert any(i.startswith("ems-adaptive-evict-then-merge") for i in top3)
    assert result.total >= 3


async def test_highlights_mark_matches_in_title_and_cropped_abstract(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="kv cache compression", limit=1))
    hit = result.hits[0]
    assert f"{MARK}KV{HIGHLIGHT_POST}" in hit.highlight.title
    assert MARK in hit.highlight.abstract
    plain = hit.highlight.abstract.replace(MARK, "").replace(HIGHLIGHT_POST, "")
    assert len(plain) < len(hit.abstract)
    assert hit.abstract.startswith("Key-value (KV) caching")  # the hit keeps the full abstract


async def test_typos_are_tolerated(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="protien fitness"))
    assert result.hits[0].id.startswith("tranception")
    assert f"{MARK}protein{HIGHLIGHT_POST}" in result.hits[0].highlight.title.lower()


async def test_prefixes_match_as_you_type(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="snapk"))
    assert result.hits[0].id.startswith("snapkv")


async def test_nonsense_finds_nothing(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="qzxjvwk plorfnax"))
    assert (result.total, result.hits) == (0, [])
    assert sum(result.topic_facets.values()) == 0


async def test_topic_filter_keeps_only_that_topic(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="language models", topics=("biology",), limit=100))
    assert result.hits
    assert all("biology" in {t.slug for t in h.topics} for h in result.hits)
    assert result.total == len(result.hits)


async def test_facets_are_disjunctive(engine: SearchEngine) -> None:
    plain = await engine.search(SearchQuery(q="language models", limit=0))
    filtered = await engine.search(SearchQuery(q="language models", topics=("biology",), limit=0))
    assert filtered.topic_facets == plain.topic_facets
    assert filtered.total == plain.topic_facets["biology"]
    for slug, count in plain.topic_facets.items():
        only = await engine.search(SearchQuery(q="language models", topics=(slug,), limit=0))
        assert only.total == count, slug


async def test_several_topics_combine_with_or(engine: SearchEngine) -> None:
    a, b = "biology", "distributed-training"
    both = await engine.search(SearchQuery(topics=(a, b), limit=100))
    slugs = [{t.slug for t in h.topics} for h in both.hits]
    assert all(a in s or b in s for s in slugs)
    overlap = sum(1 for s in slugs if {a, b} <= s)
    assert both.total == both.topic_facets[a] + both.topic_facets[b] - overlap


async def test_pages_cover_the_result_once(engine: SearchEngine) -> None:
    first = await engine.search(SearchQuery(q="language", limit=7))
    seen: list[str] = []
    for offset in range(0, first.total, 7):
        page = await engine.search(SearchQuery(q="language", limit=7, offset=offset))
        assert page.total == first.total
        seen.extend(ids(page.hits))
    assert len(seen) == first.total == len(set(seen))
    assert first.total > 20


async def test_limit_zero_counts_without_hits(engine: SearchEngine) -> None:
    result = await engine.search(SearchQuery(q="alignment", limit=0))
    assert result.hits == []
    assert result.total > 10


async def test_hits_carry_the_stored_paper(engine: SearchEngine, conn: db.Connection) -> None:
    result = await engine.search(SearchQuery(q="Tranception"))
    hit = result.hits[0]
    stored = await db.get_paper(conn, hit.id)
    assert stored is not None
    for field in stored.__struct_fields__:
        assert getattr(hit, field) == getattr(stored, field), field


async def test_changed_and_deleted_papers_reach_the_index(
    engine: SearchEngine, conn: db.Connection, tmp_path: Path
) -> None:
    text = SEED_LISTING.read_text(encoding="utf-8")
    edited = write(
        tmp_path / SEED_LISTING.name,
        text.replace("density'' as a new metric", "density'' as a quixotical new metric", 1),
    )
    summary = await load_files(conn, [edited], TAXONOMY)
    assert summary.updated == 1
    assert await drain_outbox(conn, engine) == (1, 0)
    found = await engine.search(SearchQuery(q="quixotical"))
    assert ids(found.hits) == ["densing-law-of-llms"]

    await conn.execute("DELETE FROM papers WHERE id = $1", "densing-law-of-llms")
    await db.queue_for_index(conn, ["densing-law-of-llms"])
    assert await drain_outbox(conn, engine) == (0, 1)
    assert (await engine.search(SearchQuery(q="quixotical"))).total == 0
    assert (await engine.search(SearchQuery(limit=0))).total == 76


async def test_ping(engine: SearchEngine) -> None:
    assert await engine.ping() is True
