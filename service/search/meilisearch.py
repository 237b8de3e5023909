"""The `meilisearch` engine: the search contract over a Meilisearch v1 server.

Documents are the full Paper JSON plus a few derived fields used for filtering, faceting and
sorting (see `paper_to_document`). Everything that does not talk to the server is a pure
function, so the mapping, the settings and the filter building are unit-tested without one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import Any, Final, TypeVar

import httpx2
import msgspec
from meilisearch_python_sdk import AsyncClient
from meilisearch_python_sdk.errors import MeilisearchApiError, MeilisearchError
from meilisearch_python_sdk.models.search import SearchParams
from meilisearch_python_sdk.models.settings import MeilisearchSettings

from service.models import CodeCounts, Paper, SearchFacets, SearchHit, Suggestion
from service.search.engine import (
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    SUGGEST_LIMIT,
    EngineUnavailableError,
    ResultTooLargeError,
    SearchQuery,
    SearchResult,
    SuggestResult,
    author_key,
)

ENGINE_NAME: Final = "meilisearch"
DEFAULT_INDEX: Final = "papers"
PRIMARY_KEY: Final = "id"
TOPIC_FACET: Final = "topic_slugs"
# Every facet of a search response, asked together (see `search_params`).
FACETS: Final = (TOPIC_FACET, "has_topics", "has_code", "published_year")
CROP_MARKER: Final = "…"
ABSTRACT_CROP_WORDS: Final = 40
BATCH_SIZE: Final = 1000

# Meilisearch never counts (nor pages) past `maxTotalHits`: `totalHits` saturates there. The
# docs warn that raising it slows exhaustive (`page`/`hitsPerPage`) searches and deep offsets;
# only deep pages pay, though, and a million covers the corpora we expect. A search that
# reaches it raises ResultTooLargeError, and the FallbackEngine lets PostgreSQL (no cap)
# answer, so totals and deep pages stay exact.
MAX_TOTAL_HITS: Final = 1_000_000
# Facet values returned per facet: a few dozen topics, and one value per publication year.
MAX_VALUES_PER_FACET: Final = 1000
# Relevance, then the paper id: no two papers tie, so pages never overlap nor skip.
TIE_BREAKER: Final = f"{PRIMARY_KEY}:asc"
# The API's sort orders as Meilisearch `sort` values (relevance: none, the ranking rules).
SORTS: Final[dict[str, list[str] | None]] = {
    "relevance": None,
    "title": ["title:asc", TIE_BREAKER],
    "-title": ["title:desc", TIE_BREAKER],
    "published": ["published:asc", TIE_BREAKER],
    "-published": ["published:desc", TIE_BREAKER],
    "updated": ["updated_at_ts:asc", TIE_BREAKER],
    "-updated": ["updated_at_ts:desc", TIE_BREAKER],
}

SLUG_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PAPER_FIELDS: Final = frozenset(Paper.__struct_fields__)

_T = TypeVar("_T")


class MeilisearchRequestError(RuntimeError):
    """Meilisearch rejected one of our requests (HTTP 4xx): a bug or a misconfiguration."""

    def __init__(self, what: str, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(
            f"Meilisearch rejected {what} (HTTP {status}, {code or 'no code'}): {message}"
        )


class MeilisearchTaskError(RuntimeError):
    """An asynchronous Meilisearch task ended `failed` or `canceled`."""

    def __init__(self, task_uid: int | None, task_type: str, status: str, code: str, message: str):
        self.task_uid = task_uid
        self.task_type = task_type
        self.status = status
        self.code = code
        self.message = message
        super().__init__(
            f"Meilisearch task {task_uid} ({task_type}) {status}: {message} [{code or 'no code'}]"
        )


# ---------------------------------------------------------------------------------------------
# Pure functions: settings, documents, filters, pagination, result merging, task checking.


def index_settings() -> dict[str, Any]:
    """The index settings payload, as Meilisearch's `PATCH /indexes/{uid}/settings` takes it."""
    return {
        # Priority order matters to the `attribute` ranking rule: a title match beats the rest.
        # The same text as PostgreSQL's search_vector, so `q` means the same on both engines
        # (authors and topics have their own filters).
        "searchableAttributes": ["title", "abstract"],
        "filterableAttributes": [
            TOPIC_FACET,
            "has_topics",
            "has_code",
            "published_year",
            "published_ts",
            "author_keys",
            "arxiv_id",
        ],
        # `published` is an ISO date string, which sorts chronologically (a paper without one
        # sorts last either way, as in PostgreSQL's NULLS LAST); `updated_at` is an RFC 3339
        # string whose offset may vary, so its numeric twin is the sortable one.
        "sortableAttributes": ["id", "title", "published", "updated_at_ts"],
        # `sort` first: a search that sorts (by title, date) is ordered by that alone, as in
        # PostgreSQL; a relevance search sends no `sort`, so the rule does nothing. The custom
        # `id:asc` last breaks relevance ties by paper id. (`attribute` is accepted by every
        # v1 release; 1.36+ also splits it in two.)
        "rankingRules": [
            "sort",
            "words",
            "typo",
            "proximity",
            "attribute",
            "exactness",
            TIE_BREAKER,
        ],
        "typoTolerance": {
            "enabled": True,
            # The documented defaults: no typo under 5 letters keeps acronyms (RLHF, LoRA, KV)
            # exact, two typos only from 9 letters.
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
        },
        "faceting": {"maxValuesPerFacet": MAX_VALUES_PER_FACET},
        "pagination": {"maxTotalHits": MAX_TOTAL_HITS},
    }


def _date_ts(value: date) -> int:
    return int(datetime.combine(value, time(), tzinfo=UTC).timestamp())


def paper_to_document(paper: Paper) -> dict[str, Any]:
    """The stored document: the full Paper JSON plus derived filter/facet/sort fields."""
    doc: dict[str, Any] = msgspec.to_builtins(paper)
    published = paper.published
    doc.update(
        topic_slugs=[topic.slug for topic in paper.topics],
        has_topics=bool(paper.topics),
        author_keys=sorted({author_key(name) for name in paper.authors}),
        has_code=bool(paper.links.code),
        published_year=published.year if published else None,
        published_ts=_date_ts(published) if published else None,
        updated_at_ts=paper.updated_at.timestamp(),
    )
    return doc


def document_to_hit(hit: Mapping[str, Any]) -> SearchHit:
    """Rebuild a SearchHit from a Meilisearch hit, highlights taken from its `_formatted`."""
    formatted = hit.get("_formatted") or {}
    data = {key: value for key, value in hit.items() if key in _PAPER_FIELDS}
    data["highlight"] = {
        "title": formatted.get("title", hit["title"]),
        "abstract": formatted.get("abstract", hit["abstract"]),
    }
    return msgspec.convert(data, SearchHit)


def quote_filter_value(value: str) -> str:
    """A double-quoted filter string literal that Meilisearch reads back as exactly `value`.

    Meilisearch's filter parser ends a quoted value at the first unescaped `"` and then
    unescapes backslash sequences, so backslashes are doubled first and quotes escaped next.
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def validate_slug(value: str) -> str:
    """Return `value` when it is a topic slug, else raise ValueError."""
    if not isinstance(value, str) or not SLUG_PATTERN.fullmatch(value) or len(value) > 200:
        raise ValueError(f"not a topic slug: {value!r}")
    return value


def topic_filter(slugs: Sequence[str], mode: str = "any") -> list[str | list[str]]:
    """A Meilisearch filter matching papers that carry any (or, with mode `all`, every) one
    of these topics.

    Array syntax: an inner list is ORed, the outer one ANDed. Every slug is validated and
    quoted, so no value can add an operator, a condition or a group to the filter. Raises
    ValueError otherwise.
    """
    unique = list(dict.fromkeys(validate_slug(slug) for slug in slugs))
    if not unique:
        raise ValueError("topic_filter needs at least one topic slug")
    conditions = [f"{TOPIC_FACET} = {quote_filter_value(slug)}" for slug in unique]
    return list(conditions) if mode == "all" else [list(conditions)]


def search_filter(query: SearchQuery, *, with_topics: bool = True) -> list[str | list[str]] | None:
    """Every filter of the query, ANDed (None when there is none); `with_topics=False` leaves
    the topic filter out, for the facet counts."""
    conditions: list[str | list[str]] = []
    if with_topics and query.topics:
        conditions += topic_filter(query.topics, query.topic_mode)
    if query.has_code is not None:
        conditions.append(f"has_code = {'true' if query.has_code else 'false'}")
    if query.published_from is not None:
        conditions.append(f"published_ts >= {_date_ts(query.published_from)}")
    if query.published_to is not None:
        conditions.append(f"published_ts <= {_date_ts(query.published_to)}")
    keys = list(dict.fromkeys(author_key(name) for name in query.authors))
    if keys:
        conditions.append([f"author_keys = {quote_filter_value(key)}" for key in keys])
    return conditions or None


def page_window(offset: int, limit: int) -> tuple[int, int, int]:
    """Map offset/limit onto Meilisearch's page/hitsPerPage: (hits_per_page, page, skip).

    Only `page`/`hitsPerPage` searches are exhaustive (exact `totalHits`); `offset`/`limit`
    ones return `estimatedTotalHits`, which is not good enough for an API that reports
    `total`. So the smallest page size >= limit whose single page covers the whole window
    [offset, offset + limit) is asked for, and `skip` hits are dropped from its start.
    """
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    if limit == 0:
        return 0, 1, 0
    if offset >= MAX_TOTAL_HITS:
        # Past maxTotalHits Meilisearch returns no hits whatever the page; only totals count.
        return limit, offset // limit + 1, 0
    size = limit
    while offset // size != (offset + limit - 1) // size:
        size += 1
    page = offset // size + 1
    return size, page, offset - (page - 1) * size


def search_params(index_uid: str, query: SearchQuery) -> list[SearchParams]:
    """The multi-search queries answering `query`: hits first, then (with topics) facets.

    Facets leave the topic filter out (disjunctive topics, see SearchFacets): with topics, a
    second query repeats `q` and the other filters without them. Without topics one query
    serves both. Raises ValueError when a topic is not a slug (the API validates them before).
    """
    hits_per_page, page, _ = page_window(query.offset, query.limit)
    hits = SearchParams(
        index_uid=index_uid,
        q=query.q,
        filter=search_filter(query),
        # With topics, the facet query below counts them; this one would count only its own.
        facets=None if query.topics else list(FACETS),
        sort=SORTS[query.sort],
        hits_per_page=hits_per_page,
        page=page,
        attributes_to_highlight=["title", "abstract"],
        attributes_to_crop=["abstract"],
        crop_length=ABSTRACT_CROP_WORDS,
        crop_marker=CROP_MARKER,
        highlight_pre_tag=HIGHLIGHT_PRE,
        highlight_post_tag=HIGHLIGHT_POST,
        # Every query word must match, as in the Postgres engine.
        matching_strategy="all",
    )
    if not query.topics:
        return [hits]
    facets = SearchParams(
        index_uid=index_uid,
        q=query.q,
        filter=search_filter(query, with_topics=False),
        facets=list(FACETS),
        # hitsPerPage=0: no documents, but exhaustive candidates, hence exact facet counts.
        hits_per_page=0,
        matching_strategy="all",
    )
    return [hits, facets]


def suggest_params(index_uid: str, prefix: str, limit: int) -> SearchParams:
    """A title-only search returning just ids and highlighted titles."""
    return SearchParams(
        index_uid=index_uid,
        q=prefix,
        attributes_to_search_on=["title"],
        attributes_to_retrieve=[PRIMARY_KEY, "title"],
        attributes_to_highlight=["title"],
        highlight_pre_tag=HIGHLIGHT_PRE,
        highlight_post_tag=HIGHLIGHT_POST,
        limit=limit,
        matching_strategy="all",
    )


def _exact_total(result: Mapping[str, Any]) -> int:
    total = result.get("totalHits")
    if total is None:
        total = result.get("estimatedTotalHits")
    count = int(total or 0)
    if count >= MAX_TOTAL_HITS:
        raise ResultTooLargeError(
            f"Meilisearch counts at most {MAX_TOTAL_HITS} hits (pagination.maxTotalHits)"
        )
    return count


def _counts(distribution: Mapping[str, Any], facet: str) -> dict[str, int]:
    values = distribution.get(facet) or {}
    return {str(value): int(count) for value, count in values.items()}


def facets_of(result: Mapping[str, Any]) -> SearchFacets:
    """SearchFacets from a result that asked for FACETS (undated = hits without a year)."""
    distribution = result.get("facetDistribution") or {}
    code = _counts(distribution, "has_code")
    years = {int(year): n for year, n in _counts(distribution, "published_year").items()}
    return SearchFacets(
        topics=_counts(distribution, TOPIC_FACET),
        no_topic=_counts(distribution, "has_topics").get("false", 0),
        has_code=CodeCounts(true=code.get("true", 0), false=code.get("false", 0)),
        years=dict(sorted(years.items())),
        undated=_exact_total(result) - sum(years.values()),
    )


def merge_results(
    hits_result: Mapping[str, Any],
    facets_result: Mapping[str, Any] | None = None,
    *,
    skip: int = 0,
    limit: int | None = None,
) -> SearchResult:
    """Build a SearchResult from Meilisearch search result objects (camelCase JSON).

    Hits and total come from `hits_result`; facets from `facets_result` when there is one
    (the query without the topic filter), else from `hits_result`. `skip`/`limit` cut the
    page that `page_window` asked for down to the requested window. Raises
    ResultTooLargeError when a count reached MAX_TOTAL_HITS (it would not be exact).
    """
    raw_hits: list[Mapping[str, Any]] = list(hits_result.get("hits") or [])
    end = None if limit is None else skip + limit
    return SearchResult(
        engine=ENGINE_NAME,
        total=_exact_total(hits_result),
        hits=[document_to_hit(hit) for hit in raw_hits[skip:end]],
        facets=facets_of(facets_result if facets_result is not None else hits_result),
    )


def suggestions_of(result: Mapping[str, Any]) -> list[Suggestion]:
    """Suggestions from a `suggest_params` result, highlights from `_formatted`."""
    suggestions = []
    for hit in result.get("hits") or []:
        formatted = hit.get("_formatted") or {}
        title = str(hit["title"])
        suggestions.append(
            Suggestion(
                id=str(hit[PRIMARY_KEY]), title=title, highlight=formatted.get("title", title)
            )
        )
    return suggestions


def raise_for_task(task: Mapping[str, Any]) -> None:
    """Raise MeilisearchTaskError when a Meilisearch task object did not succeed."""
    status = str(task.get("status", ""))
    if status == "succeeded":
        return
    error = task.get("error") or {}
    raw_uid = task.get("uid", task.get("taskUid"))
    raise MeilisearchTaskError(
        task_uid=int(raw_uid) if raw_uid is not None else None,
        task_type=str(task.get("type", "unknown")),
        status=status or "unknown",
        code=str(error.get("code") or ""),
        message=str(error.get("message") or f"task ended with status {status!r}"),
    )


def _api_message(err: MeilisearchApiError) -> str:
    return err.message.removeprefix("Error message: ")


@contextmanager
def meili_errors(what: str) -> Iterator[None]:
    """Translate SDK/transport errors: server-side or network -> EngineUnavailableError,
    a 4xx answer -> MeilisearchRequestError naming Meilisearch's error code and message."""
    try:
        yield
    except MeilisearchApiError as err:
        if err.status_code >= 500:
            raise EngineUnavailableError(
                f"Meilisearch failed {what}: HTTP {err.status_code} {err.code} {_api_message(err)}"
            ) from err
        raise MeilisearchRequestError(what, err.status_code, err.code, _api_message(err)) from err
    except httpx2.HTTPStatusError as err:  # an error answer without a JSON body (e.g. a proxy)
        status = err.response.status_code
        if status >= 500:
            raise EngineUnavailableError(f"Meilisearch failed {what}: HTTP {status}") from err
        raise MeilisearchRequestError(what, status, "", err.response.text[:200]) from err
    except (MeilisearchError, httpx2.HTTPError) as err:  # refused, timed out, reset
        raise EngineUnavailableError(f"Meilisearch unreachable during {what}: {err}") from err


def _batches(items: Sequence[_T], size: int = BATCH_SIZE) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# The engine.


class MeilisearchEngine:
    """The search contract over Meilisearch. Use the search key in the API, the admin key in
    the loader (index_papers, delete_papers, reindex, ensure_index)."""

    name = ENGINE_NAME

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        index: str = DEFAULT_INDEX,
        timeout: float = 2.0,
        task_timeout: float = 600.0,
    ) -> None:
        """`timeout` bounds each HTTP request (seconds); `task_timeout` each task wait."""
        self._index_name = index
        self._task_timeout_ms = int(task_timeout * 1000)
        self._client = AsyncClient(url, api_key)
        # The SDK types `timeout` as whole seconds; httpx takes any float, so set it there.
        self._client.http_client.timeout = httpx2.Timeout(timeout)
        self._index_ready = False

    @property
    def index_name(self) -> str:
        """The live index uid."""
        return self._index_name

    async def search(self, query: SearchQuery) -> SearchResult:
        """Answer a query in one multi-search request; see `search_params`.

        Raises ResultTooLargeError when the result reaches MAX_TOTAL_HITS.
        """
        raw = await self._multi_search(search_params(self._index_name, query), "a search")
        _, _, skip = page_window(query.offset, query.limit)
        return merge_results(raw[0], raw[1] if len(raw) > 1 else None, skip=skip, limit=query.limit)

    async def suggest(self, prefix: str, limit: int = SUGGEST_LIMIT) -> SuggestResult:
        """Titles completing `prefix`: Meilisearch's own prefix and typo rules, on titles."""
        if not prefix.strip():
            return SuggestResult(engine=self.name, suggestions=[])
        params = suggest_params(self._index_name, prefix, limit)
        (raw,) = await self._multi_search([params], "a suggestion")
        return SuggestResult(engine=self.name, suggestions=suggestions_of(raw))

    async def ping(self) -> bool:
        """True when Meilisearch's health endpoint says `available`; never raises."""
        try:
            health = await self._client.health()
        except Exception:  # any failure means "not answering" here
            return False
        return health.status == "available"

    async def ensure_index(self) -> None:
        """Create the live index when missing, then apply the settings (idempotent)."""
        await self._create_if_missing(self._index_name)
        await self.apply_settings()
        self._index_ready = True

    async def apply_settings(self, index: str | None = None) -> None:
        """Apply `index_settings()` to an index (default: the live one) and wait for it."""
        uid = index or self._index_name
        settings = MeilisearchSettings(**index_settings())
        with meili_errors(f"updating the settings of {uid!r}"):
            task = await self._client.index(uid).update_settings(settings)
        await self._wait([task.task_uid])

    async def index_papers(self, papers: Sequence[Paper]) -> None:
        """Add or replace these papers, in batches; wait until all are searchable.

        The first call on an engine makes sure the index exists with the current settings.
        """
        if not papers:
            return
        if not self._index_ready:
            await self.ensure_index()
        await self._wait(await self._add_documents(self._index_name, papers))

    async def delete_papers(self, ids: Sequence[str]) -> None:
        """Remove these papers, in batches; wait until done."""
        if not ids:
            return
        index = self._client.index(self._index_name)
        task_uids = []
        for batch in _batches(ids):
            with meili_errors(f"deleting documents from {index.uid!r}"):
                task = await index.delete_documents(list(batch))
            task_uids.append(task.task_uid)
        await self._wait(task_uids)

    async def reindex(
        self,
        papers: AsyncIterator[Sequence[Paper]],
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Rebuild the index with no search downtime; return how many documents it holds.

        Builds `<index>_new` with the settings, fills it batch by batch, swaps it atomically
        with the live index and deletes the old one (which the swap left as `<index>_new`).
        Writes made to the live index while this runs are lost with the old index.
        """
        live, staging = self._index_name, f"{self._index_name}_new"
        await self._delete_if_exists(staging)
        await self._create_if_missing(staging)
        await self.apply_settings(staging)
        count = 0
        pending: list[int] = []
        async for batch in papers:
            # Enqueue everything first: Meilisearch batches consecutive additions together.
            pending += await self._add_documents(staging, batch)
            count += len(batch)
            if progress is not None:
                progress(count)
        await self._wait(pending)
        await self._create_if_missing(live)
        with meili_errors(f"swapping {live!r} and {staging!r}"):
            task = await self._client.swap_indexes([(live, staging)])
        await self._wait([task.task_uid])
        await self._delete_if_exists(staging)
        self._index_ready = True
        return count

    async def drop(self) -> None:
        """Delete the live index and any leftover staging index."""
        await self._delete_if_exists(f"{self._index_name}_new")
        await self._delete_if_exists(self._index_name)
        self._index_ready = False

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    # -- helpers ---------------------------------------------------------------------------

    async def _multi_search(self, queries: list[SearchParams], what: str) -> list[dict[str, Any]]:
        """The results of a multi-search, as Meilisearch's camelCase JSON."""
        with meili_errors(what):
            results = await self._client.multi_search(queries)
        if not isinstance(results, list) or len(results) != len(queries):
            raise EngineUnavailableError("Meilisearch answered a multi-search unexpectedly")
        return [result.model_dump(by_alias=True) for result in results]

    async def _add_documents(self, uid: str, papers: Sequence[Paper]) -> list[int]:
        """Enqueue the papers in batches, in order; return the task uids to wait for."""
        index = self._client.index(uid)
        task_uids = []
        for batch in _batches(papers):
            documents = [paper_to_document(paper) for paper in batch]
            with meili_errors(f"adding documents to {uid!r}"):
                task = await index.add_documents(documents, primary_key=PRIMARY_KEY)
            task_uids.append(task.task_uid)
        return task_uids

    async def _wait(self, task_uids: Sequence[int]) -> None:
        """Wait for each task; raise MeilisearchTaskError on the first that did not succeed."""
        for uid in task_uids:
            with meili_errors(f"waiting for task {uid}"):
                result = await self._client.wait_for_task(uid, timeout_in_ms=self._task_timeout_ms)
            raise_for_task(result.model_dump(by_alias=True))

    async def _create_if_missing(self, uid: str) -> None:
        try:
            with meili_errors(f"reading index {uid!r}"):
                await self._client.get_index(uid)
        except MeilisearchRequestError as err:
            if err.code != "index_not_found":
                raise
        else:
            return
        # `POST /indexes` by hand: the SDK's create_index ignores a failed creation task,
        # and its error message is what an operator needs to see.
        with meili_errors(f"creating index {uid!r}"):
            response = await self._client.http_client.post(
                "indexes", json={"uid": uid, "primaryKey": PRIMARY_KEY}
            )
            if response.is_error:
                raise MeilisearchApiError(f"creating index {uid!r}", response)
        try:
            await self._wait([int(response.json()["taskUid"])])
        except MeilisearchTaskError as err:
            if err.code != "index_already_exists":  # created meanwhile by someone else: fine
                raise

    async def _delete_if_exists(self, uid: str) -> None:
        try:
            with meili_errors(f"deleting index {uid!r}"):
                task = await self._client.index(uid).delete()
            await self._wait([task.task_uid])
        except (MeilisearchRequestError, MeilisearchTaskError) as err:
            if err.code != "index_not_found":
                raise
