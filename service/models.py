"""msgspec Structs at the API boundary: what other services read and send."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=200)]


class TopicRef(msgspec.Struct, frozen=True):
    """A topic as carried by a paper."""

    slug: str
    label: str


class Links(msgspec.Struct, frozen=True):
    """URLs found in a paper's record or abstract, by kind. Empty when none were found."""

    code: list[str] = msgspec.field(default_factory=list)
    models: list[str] = msgspec.field(default_factory=list)
    datasets: list[str] = msgspec.field(default_factory=list)
    project: list[str] = msgspec.field(default_factory=list)
    pdf: list[str] = msgspec.field(default_factory=list)


class Source(msgspec.Struct, frozen=True):
    """Where a paper was loaded from."""

    file: str
    position: int
    format: str
    listing_date: str | None = None


class Paper(msgspec.Struct, frozen=True, kw_only=True):
    """The per-paper JSON. Field names are stable: other services depend on them."""

    id: str
    title: str
    abstract: str
    topics: list[TopicRef]
    links: Links
    authors: list[str]
    published: date | None
    arxiv_id: str | None
    source: Source
    created_at: datetime
    updated_at: datetime


class PaperPage(msgspec.Struct, frozen=True):
    """One page of the paper listing; pass `next_cursor` back as `cursor` for the next."""

    data: list[Paper]
    next_cursor: str | None


class Highlight(msgspec.Struct, frozen=True):
    """Title and abstract with matches wrapped in <mark>…</mark>; the abstract is cropped."""

    title: str
    abstract: str


class SearchHit(Paper, frozen=True, kw_only=True):
    """A paper in search results, with its highlights."""

    highlight: Highlight


class SearchFacets(msgspec.Struct, frozen=True):
    """Facet counts over the whole result set, not only the returned page."""

    topics: dict[str, int]


class SearchResponse(msgspec.Struct, frozen=True):
    """Answer of GET /v1/search."""

    query: str
    engine: str
    total: int
    limit: int
    offset: int
    hits: list[SearchHit]
    facets: SearchFacets
    took_ms: float


class Topic(msgspec.Struct, frozen=True):
    """A topic of the taxonomy, with how many papers (matching the query, if any) carry it."""

    slug: str
    label: str
    description: str
    count: int


class TopicList(msgspec.Struct, frozen=True):
    """Answer of GET /v1/topics."""

    data: list[Topic]
    query: str | None = None


class Health(msgspec.Struct, frozen=True):
    """Liveness or readiness status."""

    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class InvalidParam(msgspec.Struct, frozen=True):
    """One rejected request parameter."""

    name: str
    reason: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = None
