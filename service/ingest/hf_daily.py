"""Parser for the Hugging Face daily-papers API JSON (`https://huggingface.co/api/daily_papers`).

The response is a JSON array of items; each item holds a `paper` (`id`: the arXiv id, `title`,
`summary`, `authors` [{`name`, `hidden`, ...}], `publishedAt`, `githubRepo`, `projectPage`, ...)
and item-level fields (`publishedAt`: when it was listed, `title`, `thumbnail`, ...).

Mapping: arxiv_id = paper.id; title and abstract = paper.title / paper.summary (the item's own
`title` / `summary` when the paper lacks them), cleaned; authors = the names that are neither
hidden nor empty; published = the date part of paper.publishedAt; links: code = githubRepo,
project = projectPage, pdf = https://arxiv.org/pdf/<id>, plus the URLs in the summary; the
source's listing_date = the date part of the item's publishedAt. Upvotes, comments, AI
keywords and summaries are not paper metadata and are ignored, as are unknown keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from service.ingest.jsonl import first_item_has_key, iter_array, validation_problem
from service.ingest.records import PaperRecord, Rejected
from service.ingest.text import classify_links
from service.ingest.validate import accept, clean_authors, clean_text, merge_links, text_urls
from service.models import Links, Source

FORMAT = "hf-daily"
PDF_URL = "https://arxiv.org/pdf/{}"


class HfAuthor(msgspec.Struct, kw_only=True):
    """An author of a daily paper; hidden authors are not shown by Hugging Face."""

    name: str | None = None
    hidden: bool = False


class HfPaper(msgspec.Struct, kw_only=True, rename="camel"):
    """The `paper` object of a daily-papers item (the fields this service keeps)."""

    id: str
    title: str | None = None
    summary: str | None = None
    authors: list[HfAuthor] = msgspec.field(default_factory=list)
    published_at: datetime | None = None
    github_repo: str | None = None
    project_page: str | None = None


class HfItem(msgspec.Struct, kw_only=True, rename="camel"):
    """One item of the daily-papers array."""

    paper: HfPaper
    title: str | None = None
    summary: str | None = None
    published_at: datetime | None = None


def parse_hf_daily(path: Path, display_name: str | None = None) -> Iterator[PaperRecord | Rejected]:
    """Records of a daily-papers JSON file, streamed item by item."""
    name = display_name or path.name
    for position, item in iter_array(path):
        yield item_record(item, name, position)


def item_record(item: Any, name: str, position: int) -> PaperRecord | Rejected:
    """One daily-papers item (decoded JSON) as a checked record."""
    try:
        parsed = msgspec.convert(item, HfItem)
    except msgspec.ValidationError as error:
        field, reason = validation_problem(error, "item")
        return Rejected(file=name, position=position, field=field, reason=reason)
    paper = parsed.paper
    summary = paper.summary or parsed.summary or ""
    arxiv_id = paper.id.strip() or None
    record = PaperRecord(
        title=clean_text(paper.title or parsed.title or ""),
        abstract=clean_text(summary),
        links=merge_links(_own_links(paper, arxiv_id), classify_links(text_urls(summary))),
        source=Source(
            file=name,
            position=position,
            format=FORMAT,
            listing_date=parsed.published_at.date().isoformat() if parsed.published_at else None,
        ),
        authors=clean_authors([a.name for a in paper.authors if a.name and not a.hidden]),
        published=paper.published_at.date() if paper.published_at else None,
        arxiv_id=arxiv_id,
    )
    return accept(record, name, position)


def _own_links(paper: HfPaper, arxiv_id: str | None) -> Links:
    return Links(
        code=[paper.github_repo] if paper.github_repo else [],
        project=[paper.project_page] if paper.project_page else [],
        pdf=[PDF_URL.format(arxiv_id)] if arxiv_id else [],
    )


def looks_like_hf_daily(path: Path) -> bool:
    """Content sniffing: a JSON array whose first item has a `paper` object key."""
    return first_item_has_key(path, "paper")
