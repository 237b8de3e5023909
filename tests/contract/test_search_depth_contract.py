"""The search contract beyond the basics: query syntax, sort orders and paging, filters,
facets that reconcile with the total, and suggestions. Every engine must pass all of it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from itertools import pairwise
from typing import Any

import msgspec
import pytest

from service.models import SearchHit
from service.search.engine import (
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    SearchEngine,
    SearchQuery,
    SearchResult,
    Sort,
)

SORTS: tuple[Sort, ...] = (
    "relevance", "title", "-title", "published", "-published", "updated", "-updated",
)  # fmt: skip


def ids(hits: list[SearchHit]) -> list[str]:
    return [h.id for h in hits]


def has_word(hit: SearchHit, word: str) -> bool:
    return re.search(rf"\b{word}\b", f"{hit.title} {hit.abstract}", re.IGNORECASE) is not None


async def every_hit(engine: SearchEngine, query: SearchQuery, page: int) -> list[SearchHit]:
    """Every hit of a search, `page` at a time, checking the total never moves."""
    first = await engine.search(msgspec_replace(query, limit=page, offset=0))
    hits = list(first.hits)
    for offset in range(page, first.total, page):
        result = await engine.search(msgspec_replace(query, limit=page, offset=offset))
        assert result.total == first.total
        hits.extend(result.hits)
    assert len(hits) == first.total
    return hits


def msgspec_replace(query: SearchQuery, **changes: Any) -> SearchQuery:
    return msgspec.structs.replace(query, **changes)


def sort_key(sort: Sort) -> Callable[[SearchHit], Any]:
    """What each sort order orders by (missing dates last either way), before the id."""
    field = sort.lstrip("-")
    if field == "title":
        return lambda h: h.title.lower().encode()
    if field == "published":
        return lambda h: h.published
    return lambda h: h.updated_at


def assert_sorted(hits: list[SearchHit], sort: Sort) -> None:
    if sort == "relevance":
        return
    key = sort_key(sort)
    dated = [h for h in hits if key(h) is not None]
    assert hits[: len(dated)] == dated, "papers without the field come last"
    undated = hits[len(dated) :]
    assert ids(undated) == sorted(ids(undated))
    descending = sort.startswith("-")
    for a, b in pairwise(dated):
        if key(a) == key(b):
            assert a.id < b.id, (a.id, b.id)
        else:
            assert (key(a) > key(b)) if descending else (key(a) < key(b)), (a.id, b.id)


# --- query syntax ------------------------------------------------------------------------------


async def test_a_quoted_phrase_needs_the_words_side_by_side(crafted_engine: SearchEngine) -> None:
    loose = await crafted_engine.search(SearchQuery(q="kv cache", limit=100))
    phrase = await crafted_engine.search(SearchQuery(q='"kv cache"', limit=100))
    assert "cache-lines-and-kv-stores" in ids(loose.hits)
    assert "cache-lines-and-kv-stores" not in ids(phrase.hits)
    assert ids(phrase.hits) == ["phrase-match-kv-cache-eviction-for-long-prompts"]
    assert f"{HIGHLIGHT_PRE}KV{HIGHLIGHT_POST}" in phrase.hits[0].highlight.title


async def test_minus_excludes_a_word_or_a_phrase(crafted_engine: SearchEngine) -> None:
    cache = await crafted_engine.search(SearchQuery(q="cache", limit=100))
    without = await crafted_engine.search(SearchQuery(q="cache -eviction", limit=100))
    assert without.hits
    assert not any(has_word(h, "eviction") for h in without.hits)
    assert set(ids(without.hits)) < set(ids(cache.hits))
    no_phrase = await crafted_engine.search(SearchQuery(q='cache -"kv cache"', limit=100))
    assert "phrase-match-kv-cache-eviction-for-long-prompts" not in ids(no_phrase.hits)
    assert "cache-lines-and-kv-stores" in ids(no_phrase.hits)


async def test_only_the_word_being_typed_is_a_prefix(crafted_engine: SearchEngine) -> None:
    typing = await crafted_engine.search(SearchQuery(q="quantization evic"))
    assert ids(typing.hits) == ["quantization-without-eviction"]
    done = await crafted_engine.search(SearchQuery(q="quantization evic "))
    assert done.total == 0  # a space after the word: it is complete, and no paper has it
    earlier = await crafted_engine.search(SearchQuery(q="evic quantization"))
    assert earlier.total == 0


async def test_typos_in_long_words_are_tolerated(crafted_engine: SearchEngine) -> None:
    result = await crafted_engine.search(SearchQuery(q="quantizaton"))
    assert ids(result.hits)[0] == "quantization-without-eviction"


async def test_the_abstract_snippet_is_cropped_around_the_match(
    crafted_engine: SearchEngine,
) -> None:
    (hit,) = (await crafted_engine.search(SearchQuery(q="zanzibar"))).hits
    snippet = hit.highlight.abstract
    assert f"{HIGHLIGHT_PRE}zanzibar{HIGHLIGHT_POST}" in snippet
    plain = snippet.replace(HIGHLIGHT_PRE, "").replace(HIGHLIGHT_POST, "")
    assert len(plain.split()) <= 60 < len(hit.abstract.split())
    assert not plain.startswith(hit.abstract[:30])  # not simply the first words


# --- sort orders and paging -------------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
async def test_every_sort_pages_through_everything_once(
    crafted_engine: SearchEngine, sort: Sort
) -> None:
    everything = await crafted_engine.search(SearchQuery(limit=100, sort=sort))
    assert everything.total == len(everything.hits) == 10
    assert_sorted(everything.hits, sort)
    for page in (1, 3, 4):
        paged = await every_hit(crafted_engine, SearchQuery(sort=sort), page)
        assert ids(paged) == ids(everything.hits)


@pytest.mark.parametrize("sort", SORTS)
async def test_sorted_searches_page_consistently(engine: SearchEngine, sort: Sort) -> None:
    query = SearchQuery(q="language models", sort=sort)
    whole = await engine.search(msgspec_replace(query, limit=100))
    assert whole.total > 20
    assert_sorted(whole.hits, sort)
    paged = await every_hit(engine, query, 7)
    assert ids(paged) == ids(whole.hits)
    assert len(set(ids(paged))) == whole.total


async def test_ties_are_broken_by_paper_id(crafted_engine: SearchEngine) -> None:
    by_title = await crafted_engine.search(SearchQuery(q="alpha study", sort="title"))
    assert ids(by_title.hits) == ["alpha-study", "alpha-study-2"]
    by_date = await crafted_engine.search(SearchQuery(sort="-published", limit=2))
    assert ids(by_date.hits) == sorted(ids(by_date.hits))
    assert {h.published for h in by_date.hits} == {date(2024, 3, 11)}


# --- filters ----------------------------------------------------------------------------------


async def test_has_code_splits_the_result(engine: SearchEngine) -> None:
    everything = await engine.search(SearchQuery(q="language", limit=0))
    with_code = await engine.search(SearchQuery(q="language", has_code=True, limit=100))
    without = await engine.search(SearchQuery(q="language", has_code=False, limit=100))
    assert with_code.total + without.total == everything.total
    assert with_code.total == everything.facets.has_code.true > 0
    assert all(h.links.code for h in with_code.hits)
    assert not any(h.links.code for h in without.hits)


async def test_published_range_is_inclusive_and_leaves_undated_out(
    crafted_engine: SearchEngine,
) -> None:
    result = await crafted_engine.search(
        SearchQuery(published_from=date(2022, 1, 1), published_to=date(2023, 12, 31), limit=100)
    )
    assert sorted(h.published for h in result.hits if h.published) == [
        date(2022, 1, 1),
        date(2023, 6, 1),
        date(2023, 12, 31),
    ]
    assert result.total == 3
    since = await crafted_engine.search(SearchQuery(published_from=date(2024, 3, 11), limit=100))
    assert {h.published for h in since.hits} == {date(2024, 3, 11)}


async def test_author_matches_without_case_or_accents(crafted_engine: SearchEngine) -> None:
    zoe = await crafted_engine.search(SearchQuery(authors=("ZOE MÜLLER",), limit=100))
    assert sorted(ids(zoe.hits)) == [
        "phrase-match-kv-cache-eviction-for-long-prompts",
        "protein-folding-with-language-models",
    ]
    ada = await crafted_engine.search(SearchQuery(authors=("Ada Lovelace",), limit=100))
    assert sorted(ids(ada.hits)) == [
        "phrase-match-kv-cache-eviction-for-long-prompts",
        "quantization-without-eviction",
    ]
    either = await crafted_engine.search(
        SearchQuery(authors=("jose garcia", "Ada Lovelace"), limit=100)
    )
    assert either.total == 4
    nobody = await crafted_engine.search(SearchQuery(authors=("Ada",), limit=0))
    assert nobody.total == 0  # a full name, not a part of one


async def test_topic_mode_all_needs_every_topic(engine: SearchEngine) -> None:
    a, b = "efficient-inference", "long-context"
    any_of = await engine.search(SearchQuery(topics=(a, b), limit=100))
    all_of = await engine.search(SearchQuery(topics=(a, b), topic_mode="all", limit=100))
    assert 0 < all_of.total < any_of.total
    assert all({a, b} <= {t.slug for t in h.topics} for h in all_of.hits)
    both = [h for h in any_of.hits if {a, b} <= {t.slug for t in h.topics}]
    assert ids(both) == ids(all_of.hits)
    assert all_of.facets == any_of.facets  # facets ignore the topic filter, whatever its mode


# --- facets -----------------------------------------------------------------------------------


def assert_reconciled(result: SearchResult, hits: list[SearchHit]) -> None:
    """Without a topic filter, every facet adds up to the total (see SearchFacets)."""
    facets = result.facets
    assert facets.has_code.true + facets.has_code.false == result.total
    assert sum(facets.years.values()) + facets.undated == result.total
    assert facets.no_topic == sum(1 for h in hits if not h.topics)
    assert facets.has_code.true == sum(1 for h in hits if h.links.code)
    assert facets.undated == sum(1 for h in hits if h.published is None)
    years: dict[int, int] = {}
    for h in hits:
        if h.published:
            years[h.published.year] = years.get(h.published.year, 0) + 1
    assert facets.years == years
    for slug, count in facets.topics.items():
        assert count == sum(1 for h in hits if slug in {t.slug for t in h.topics}), slug


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(),
        SearchQuery(q="cache"),
        SearchQuery(has_code=True),
        SearchQuery(q="study", published_to=date(2023, 1, 1)),
        SearchQuery(authors=("Ada Lovelace",)),
    ],
)
async def test_facets_reconcile_with_the_total(
    crafted_engine: SearchEngine, query: SearchQuery
) -> None:
    result = await crafted_engine.search(msgspec_replace(query, limit=100))
    assert_reconciled(result, result.hits)


async def test_crafted_facets_count_the_undated_and_the_topicless(
    crafted_engine: SearchEngine,
) -> None:
    facets = (await crafted_engine.search(SearchQuery(limit=0))).facets
    assert facets.years == {2020: 1, 2021: 2, 2022: 1, 2023: 2, 2024: 2}
    assert facets.undated == 2
    assert facets.has_code.true == 3
    assert facets.no_topic >= 1  # the widget and gadget papers fit no topic


async def test_seed_facets_reconcile_across_pages(engine: SearchEngine) -> None:
    query = SearchQuery(q="language model")
    first = await engine.search(msgspec_replace(query, limit=0))
    assert_reconciled(first, await every_hit(engine, query, 30))


async def test_topic_selection_changes_no_facet(engine: SearchEngine) -> None:
    plain = await engine.search(SearchQuery(q="model", has_code=False, limit=0))
    chosen = await engine.search(
        SearchQuery(q="model", has_code=False, topics=("alignment",), limit=0)
    )
    assert chosen.facets == plain.facets
    assert chosen.total == plain.facets.topics["alignment"]


# --- suggestions ------------------------------------------------------------------------------


async def test_suggest_completes_the_word_being_typed(engine: SearchEngine) -> None:
    result = await engine.suggest("kv cache comp")
    assert result.engine == engine.name
    found = [s.id for s in result.suggestions]
    assert any(i.startswith("gear-an-efficient-kv-cache-compression") for i in found)
    assert all("kv" in s.title.lower() and "cache" in s.title.lower() for s in result.suggestions)
    assert all(HIGHLIGHT_PRE in s.highlight for s in result.suggestions)


async def test_suggest_tolerates_typos_and_caps_the_count(engine: SearchEngine) -> None:
    typo = await engine.suggest("protien fit")
    assert typo.suggestions[0].id.startswith("tranception")
    for letter in ("l", "s"):  # "s" alone is an English stop word: still a prefix here
        assert len((await engine.suggest(letter)).suggestions) == 10
    assert len((await engine.suggest("language", 3)).suggestions) == 3


async def test_suggest_nothing_for_nothing(engine: SearchEngine) -> None:
    assert (await engine.suggest("   ")).suggestions == []
    assert (await engine.suggest("qzxjvwk")).suggestions == []
