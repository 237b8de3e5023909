"""msgspec Structs at the API boundary: what other services read and send."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=200)]


class TopicRef(msgspec.Struct, frozen=True):
    """A topic as carried by a paper, with how it was assigned."""

    slug: Annotated[str, msgspec.Meta(examples=["efficient-inference"])]
    label: Annotated[str, msgspec.Meta(examples=["Inference efficiency & KV cache"])]
    score: Annotated[
        float,
        msgspec.Meta(
            description="The classifier's confidence in (0, 1]; topics are listed best first.",
            examples=[0.6],
        ),
    ]
    method: Annotated[
        str,
        msgspec.Meta(
            description="How the topic was assigned: `phrases` is the curated taxonomy's "
            "phrase classifier.",
            examples=["phrases"],
        ),
    ]


class Links(msgspec.Struct, frozen=True):
    """URLs found in a paper's record or abstract, by kind. Empty when none were found."""

    code: Annotated[list[str], msgspec.Meta(examples=[["https://github.com/THUDM/LongWriter"]])] = (
        msgspec.field(default_factory=list)
    )
    models: Annotated[
        list[str], msgspec.Meta(examples=[["https://huggingface.co/THUDM/LongWriter-glm4-9b"]])
    ] = msgspec.field(default_factory=list)
    datasets: Annotated[
        list[str], msgspec.Meta(examples=[["https://huggingface.co/datasets/THUDM/LongWriter-6k"]])
    ] = msgspec.field(default_factory=list)
    project: Annotated[list[str], msgspec.Meta(examples=[[]])] = msgspec.field(default_factory=list)
    pdf: Annotated[list[str], msgspec.Meta(examples=[["https://arxiv.org/pdf/2408.07055"]])] = (
        msgspec.field(default_factory=list)
    )


class Source(msgspec.Struct, frozen=True):
    """Where a paper was loaded from."""

    file: Annotated[str, msgspec.Meta(examples=["daily-papers-mar-11.txt"])]
    position: Annotated[
        int, msgspec.Meta(description="The record's place in the file (1-based).", examples=[1])
    ]
    format: Annotated[str, msgspec.Meta(examples=["listing"])]
    listing_date: Annotated[str | None, msgspec.Meta(examples=["Mar 11"])] = None


class Paper(msgspec.Struct, frozen=True, kw_only=True):
    """The per-paper JSON. Field names are stable: other services depend on them."""

    id: Annotated[str, msgspec.Meta(examples=["densing-law-of-llms"])]
    title: Annotated[str, msgspec.Meta(examples=["Densing Law of LLMs"])]
    abstract: Annotated[
        str,
        msgspec.Meta(
            examples=["Large Language Models (LLMs) have emerged as a milestone in artificial "]
        ),
    ]
    topics: list[TopicRef]
    links: Links
    authors: Annotated[list[str], msgspec.Meta(examples=[["Chaojun Xiao", "Jie Cai"]])]
    published: Annotated[date | None, msgspec.Meta(examples=["2024-12-05"])]
    arxiv_id: Annotated[str | None, msgspec.Meta(examples=["2412.04315"])]
    source: Source
    created_at: Annotated[datetime, msgspec.Meta(examples=["2026-12-04T10:15:00Z"])]
    updated_at: Annotated[datetime, msgspec.Meta(examples=["2026-12-04T10:15:00Z"])]


class PaperPage(msgspec.Struct, frozen=True):
    """One page of a paper listing; pass `next_cursor` back as `cursor` for the next."""

    data: list[Paper]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(
            description="Opaque; null on the last page. Valid for a limited time.",
            examples=["WzEsImFsbCIsImdlYXItYW4tZWZmaWNpZW50IiwxNzY0ODg5MjAwXQ.c2lnbmF0dXJl"],
        ),
    ]
    total: Annotated[
        int, msgspec.Meta(description="Papers in the whole listing (exact).", examples=[77])
    ]


# A paper id as a client may give it: the slug, or `arxiv:` and an arXiv id (new style
# 2403.06009, old style hep-th/9901001, optionally with a version); the arXiv part is the
# loader's pattern (service/ingest/validate.py).
PaperKey = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?:[a-z0-9][a-z0-9-]*|arxiv:(?:[0-9]{4}\.[0-9]{4,5}"
        r"|[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/[0-9]{7})(?:v[0-9]+)?)$",
        max_length=200,
        examples=["densing-law-of-llms", "arxiv:2403.06009"],
    ),
]


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Body of POST /v1/papers/batch."""

    ids: Annotated[
        list[PaperKey],
        msgspec.Meta(
            min_length=1,
            max_length=500,
            description="1 to 500 paper ids (slugs or `arxiv:<id>`), answered in this order.",
            examples=[["densing-law-of-llms", "arxiv:2403.06009", "no-such-paper"]],
        ),
    ]
    fields: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=1000,
                description="Comma-separated fields to return, as the `fields` query parameter.",
                examples=["title,topics.label"],
            ),
        ]
        | None
    ) = None


class BatchError(msgspec.Struct, frozen=True):
    """Why the id at `index` of the request has `null` in `data`."""

    index: Annotated[int, msgspec.Meta(description="Position in `ids` (0-based).", examples=[2])]
    id: Annotated[str, msgspec.Meta(examples=["no-such-paper"])]
    reason: Annotated[
        str,
        msgspec.Meta(description="`not-found`: no paper has this id.", examples=["not-found"]),
    ]


class BatchResponse(msgspec.Struct, frozen=True):
    """Answer of POST /v1/papers/batch: one entry per requested id, in request order."""

    data: list[Paper | None]
    errors: list[BatchError]


class PartialBatchResponse(msgspec.Struct, frozen=True):
    """Answer of POST /v1/papers/batch with `fields`: each paper holds only those fields."""

    data: Annotated[
        list[dict[str, Any] | None],
        msgspec.Meta(
            description="Per id asked, in order: the selected fields of its paper, or null.",
            examples=[
                [{"id": "snapkv-llm-knows-what-you-are-looking-for", "title": "SnapKV"}, None]
            ],
        ),
    ]
    errors: list[BatchError]


class RelatedReason(msgspec.Struct, frozen=True):
    """Why a paper is related: what it shares with the paper asked about."""

    shared_topics: Annotated[list[str], msgspec.Meta(examples=[["efficient-inference"]])]
    shared_terms: Annotated[
        list[str],
        msgspec.Meta(
            description="The shared words that are rarest in the corpus, rarest first, "
            "as written in the paper asked about.",
            examples=[["eviction", "kv"]],
        ),
    ]
    topic_score: Annotated[float, msgspec.Meta(ge=0, le=1, examples=[0.5])]
    term_score: Annotated[float, msgspec.Meta(ge=0, le=1, examples=[0.25])]


class RelatedPaper(Paper, frozen=True, kw_only=True):
    """A related paper with its relatedness score and the reason."""

    score: Annotated[
        float,
        msgspec.Meta(
            ge=0,
            le=1,
            description="0.4 * topic_score + 0.6 * term_score, rounded to 4 places.",
            examples=[0.35],
        ),
    ]
    reason: RelatedReason


class RelatedPapers(msgspec.Struct, frozen=True):
    """Answer of GET /v1/papers/{id}/related: the most related papers, best first."""

    paper_id: Annotated[str, msgspec.Meta(examples=["densing-law-of-llms"])]
    data: list[RelatedPaper]


class Highlight(msgspec.Struct, frozen=True):
    """Title and abstract with matches wrapped in <mark>…</mark>; the abstract is cropped."""

    title: Annotated[str, msgspec.Meta(examples=["<mark>KV</mark> <mark>Cache</mark> Eviction"])]
    abstract: Annotated[
        str, msgspec.Meta(examples=["…compress the <mark>KV</mark> <mark>cache</mark> by…"])
    ]


class SearchHit(Paper, frozen=True, kw_only=True):
    """A paper in search results, with its highlights."""

    highlight: Highlight


class CodeCounts(msgspec.Struct, frozen=True):
    """How many papers link to code (`true`) and how many do not (`false`)."""

    true: Annotated[int, msgspec.Meta(description="Papers with a code link.", examples=[12])]
    false: Annotated[int, msgspec.Meta(description="Papers without one.", examples=[65])]


class SearchFacets(msgspec.Struct, frozen=True):
    """Facet counts over the whole result, not only the returned page.

    Every facet counts the papers matching `q` and every filter except `topic`, so selecting
    topics never changes the facets (disjunctive topic facets). Hence, without a `topic`
    filter: `has_code.true + has_code.false == total`, `sum(years) + undated == total`, and
    `no_topic` plus the papers with at least one topic `== total`. With topics selected,
    `topics[slug]` is the `total` the same search would have with `topic=slug` alone.
    """

    topics: Annotated[
        dict[str, int],
        msgspec.Meta(
            description="Papers per topic slug (a paper with several topics counts in each).",
            examples=[{"efficient-inference": 12, "alignment": 4}],
        ),
    ]
    no_topic: Annotated[int, msgspec.Meta(description="Papers that carry no topic.", examples=[3])]
    has_code: Annotated[
        CodeCounts, msgspec.Meta(description="Papers with and without a code link.")
    ]
    years: Annotated[
        dict[int, int],
        msgspec.Meta(
            description="Papers per publication year, oldest first.",
            examples=[{"2023": 5, "2024": 40}],
        ),
    ]
    undated: Annotated[
        int, msgspec.Meta(description="Papers without a publication date.", examples=[32])
    ]


class SearchResponse(msgspec.Struct, frozen=True):
    """Answer of GET /v1/search."""

    query: Annotated[str, msgspec.Meta(description="`q` as sent.", examples=["kv cache"])]
    engine: Annotated[
        str, msgspec.Meta(description="The engine that answered.", examples=["postgres"])
    ]
    total: Annotated[int, msgspec.Meta(description="Papers matching (exact).", examples=[42])]
    limit: Annotated[int, msgspec.Meta(examples=[20])]
    offset: Annotated[int, msgspec.Meta(examples=[0])]
    hits: list[SearchHit]
    facets: SearchFacets
    took_ms: Annotated[
        float, msgspec.Meta(description="Time spent answering, in ms.", examples=[12.5])
    ]


class Suggestion(msgspec.Struct, frozen=True):
    """A title completion: the paper, its title, and the title with matches in <mark>."""

    id: Annotated[str, msgspec.Meta(examples=["gear-an-efficient-kv-cache-compression"])]
    title: Annotated[str, msgspec.Meta(examples=["KV Cache Compression for LLMs"])]
    highlight: Annotated[
        str,
        msgspec.Meta(
            description="The title with the matching words wrapped in <mark>…</mark>.",
            examples=["<mark>KV</mark> <mark>Cache</mark> Compression for LLMs"],
        ),
    ]


class SuggestResponse(msgspec.Struct, frozen=True):
    """Answer of GET /v1/suggest."""

    query: Annotated[str, msgspec.Meta(description="`q` as sent.", examples=["kv cache comp"])]
    engine: Annotated[
        str, msgspec.Meta(description="The engine that answered.", examples=["postgres"])
    ]
    suggestions: Annotated[
        list[Suggestion],
        msgspec.Meta(
            description="Best first, at most `limit`.",
            examples=[
                [
                    {
                        "id": "gear-an-efficient-kv-cache-compression",
                        "title": "KV Cache Compression for LLMs",
                        "highlight": "<mark>KV</mark> <mark>Cache</mark> <mark>Comp</mark>"
                        "ression for LLMs",
                    }
                ]
            ],
        ),
    ]
    took_ms: Annotated[
        float, msgspec.Meta(description="Time spent answering, in ms.", examples=[3.2])
    ]


class Topic(msgspec.Struct, frozen=True):
    """A topic of the taxonomy, with how many papers (matching the query, if any) carry it."""

    slug: Annotated[str, msgspec.Meta(examples=["efficient-inference"])]
    label: Annotated[str, msgspec.Meta(examples=["Inference efficiency & KV cache"])]
    description: Annotated[
        str,
        msgspec.Meta(
            examples=["Making trained models cheaper and faster to run: KV-cache compression."]
        ),
    ]
    count: Annotated[int, msgspec.Meta(examples=[12])]


class TopicList(msgspec.Struct, frozen=True):
    """Answer of GET /v1/topics."""

    data: list[Topic]
    query: Annotated[
        str | None, msgspec.Meta(description="The `q` the counts are for.", examples=["kv cache"])
    ] = None


class Health(msgspec.Struct, frozen=True):
    """Liveness or readiness status."""

    status: Annotated[
        str, msgspec.Meta(description="`ok`, or `degraded` (searches fall back).", examples=["ok"])
    ]
    checks: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="Readiness: each dependency's state.",
            examples=[{"database": "ok", "engine:postgres": "ok"}],
        ),
    ] = msgspec.field(default_factory=dict)


class InvalidParam(msgspec.Struct, frozen=True):
    """One rejected request parameter or body field."""

    name: Annotated[
        str,
        msgspec.Meta(
            description="The parameter, or the body field's path.", examples=["limit", "ids[3]"]
        ),
    ]
    reason: Annotated[str, msgspec.Meta(examples=["Expected `int`, got `str`"])]


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details; `type` and `code` are stable and machine-readable."""

    type: Annotated[
        str,
        msgspec.Meta(
            description="URI (relative to the API) naming the problem type; "
            "GET it for the type's documentation.",
            examples=["/problems/not-found"],
        ),
    ]
    title: Annotated[str, msgspec.Meta(examples=["Not found"])]
    status: Annotated[int, msgspec.Meta(description="The HTTP status code.", examples=[404])]
    code: Annotated[
        str,
        msgspec.Meta(
            description="The problem type's short name (the last segment of `type`).",
            examples=["not-found"],
        ),
    ]
    detail: Annotated[
        str | None,
        msgspec.Meta(
            description="What went wrong this time.", examples=["no paper with id 'no-such-paper'"]
        ),
    ] = None
    instance: Annotated[
        str | None,
        msgspec.Meta(description="The request path.", examples=["/v1/papers/no-such-paper"]),
    ] = None
    invalid_params: list[InvalidParam] | None = None
    checks: Annotated[
        dict[str, str] | None,
        msgspec.Meta(
            description="Readiness only: the state of each dependency.",
            examples=[{"database": "unavailable", "engine:postgres": "unavailable"}],
        ),
    ] = None


class ProblemType(msgspec.Struct, frozen=True):
    """The documentation of one problem type, served at its `type` URI."""

    type: Annotated[str, msgspec.Meta(examples=["/problems/not-found"])]
    code: Annotated[str, msgspec.Meta(examples=["not-found"])]
    status: Annotated[int, msgspec.Meta(examples=[404])]
    title: Annotated[str, msgspec.Meta(examples=["Not found"])]
    description: Annotated[
        str, msgspec.Meta(examples=["No paper, topic or endpoint at this path."])
    ]
