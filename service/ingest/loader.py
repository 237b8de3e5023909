"""Load paper records into PostgreSQL in one transaction: classify, assign ids, upsert.

A second load of the same content changes nothing (content hash), `updated_at` moves only
when content changed, and any failure rolls the whole load back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

import msgspec

from service import db
from service.ingest.records import PaperRecord, Rejected
from service.ingest.text import slugify, title_key
from service.ingest.topics import TopicAssignment, TopicDefinition, classify

BATCH_SIZE = 1000
TITLE_MAX = 1000
ABSTRACT_MAX = 100_000


class LoadSummary(msgspec.Struct, kw_only=True):
    """What a load did."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    without_topic: list[str] = msgspec.field(default_factory=list)

    def describe(self) -> str:
        """One line for the terminal."""
        return (
            f"read {self.read}, inserted {self.inserted}, updated {self.updated}, "
            f"unchanged {self.unchanged}, rejected {len(self.rejected)}"
        )


class _Prepared(msgspec.Struct, frozen=True):
    record: PaperRecord
    key: str
    topics: list[TopicAssignment]
    content_hash: str


def validate(record: PaperRecord) -> tuple[str, str] | None:
    """(field, reason) when a record cannot be stored, else None."""
    if not record.title.strip():
        return "title", "empty title"
    if len(record.title) > TITLE_MAX:
        return "title", f"longer than {TITLE_MAX} characters"
    if not record.abstract.strip():
        return "abstract", "empty abstract"
    if len(record.abstract) > ABSTRACT_MAX:
        return "abstract", f"longer than {ABSTRACT_MAX} characters"
    return None


def identity(record: PaperRecord) -> str:
    """What makes two records one paper: the arXiv id, else the normalised title."""
    return f"arxiv:{record.arxiv_id}" if record.arxiv_id else f"title:{title_key(record.title)}"


def content_hash(record: PaperRecord, topics: Sequence[TopicAssignment]) -> str:
    """A digest of everything a load writes for a paper."""
    payload = msgspec.json.encode((record, [(t.slug, round(t.score, 4), t.method) for t in topics]))
    return hashlib.sha256(payload).hexdigest()


def _batches(items: Iterable[PaperRecord], size: int) -> Iterator[list[PaperRecord]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _free_id(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _row(paper_id: str, p: _Prepared) -> db.PaperRow:
    r = p.record
    return (
        paper_id,
        r.title,
        title_key(r.title),
        r.abstract,
        list(r.authors),
        r.published,
        r.arxiv_id,
        msgspec.to_builtins(r.links),
        msgspec.to_builtins(r.source),
        p.content_hash,
    )


async def load_records(
    conn: db.Connection,
    records: Iterable[PaperRecord],
    taxonomy: Sequence[TopicDefinition],
) -> LoadSummary:
    """Upsert every record in one transaction; the caller gets the summary after commit.

    Records are consumed lazily, so a parse error in the middle of a file raises here, inside
    the transaction, and nothing of the load stays.
    """
    summary = LoadSummary()
    async with conn.transaction():
        await db.lock_for_load(conn)
        await db.sync_topics(conn, [(t.slug, t.label, t.description) for t in taxonomy])
        seen: dict[
            str, tuple[str, str]
        ] = {}  # identity -> (id, hash) for papers already in this load
        for batch in _batches(records, BATCH_SIZE):
            await _load_batch(conn, batch, taxonomy, summary, seen)
    return summary


async def _load_batch(
    conn: db.Connection,
    batch: list[PaperRecord],
    taxonomy: Sequence[TopicDefinition],
    summary: LoadSummary,
    seen: dict[str, tuple[str, str]],
) -> None:
    by_key: dict[str, _Prepared] = {}
    for record in batch:
        summary.read += 1
        problem = validate(record)
        if problem is not None:
            field, reason = problem
            summary.rejected.append(
                Rejected(
                    file=record.source.file,
                    position=record.source.position,
                    field=field,
                    reason=reason,
                )
            )
            continue
        topics = classify(record.title, record.abstract, taxonomy)
        if not topics:
            summary.without_topic.append(record.title)
        key = identity(record)
        if key in by_key:
            earlier = by_key.pop(key).record.source
            summary.rejected.append(
                Rejected(
                    file=earlier.file,
                    position=earlier.position,
                    field="title",
                    reason="the same paper appears again later; the later record was kept",
                )
            )
        by_key[key] = _Prepared(record, key, topics, content_hash(record, topics))
    prepared = list(by_key.values())

    existing = await db.find_existing(
        conn,
        [p.record.arxiv_id for p in prepared if p.record.arxiv_id],
        [title_key(p.record.title) for p in prepared if not p.record.arxiv_id],
    )
    for row in existing:
        key = f"arxiv:{row['arxiv_id']}" if row["arxiv_id"] else f"title:{row['title_key']}"
        seen.setdefault(key, (row["id"], row["content_hash"]))

    new = [p for p in prepared if p.key not in seen]
    taken = await db.taken_ids(conn, sorted({slugify(p.record.title) for p in new}))
    inserts: list[db.PaperRow] = []
    updates: list[db.PaperRow] = []
    topic_rows: list[tuple[str, str, int, float, str]] = []
    changed: list[str] = []
    for p in prepared:
        if p.key in seen:
            paper_id, old_hash = seen[p.key]
            if old_hash == p.content_hash:
                summary.unchanged += 1
                continue
            updates.append(_row(paper_id, p))
            summary.updated += 1
        else:
            paper_id = _free_id(slugify(p.record.title), taken)
            taken.add(paper_id)
            inserts.append(_row(paper_id, p))
            summary.inserted += 1
        seen[p.key] = (paper_id, p.content_hash)
        changed.append(paper_id)
        topic_rows.extend(
            (paper_id, t.slug, rank, t.score, t.method) for rank, t in enumerate(p.topics)
        )
    await db.insert_papers(conn, inserts)
    await db.update_papers(conn, updates)
    if changed:
        await db.replace_paper_topics(conn, changed, topic_rows)
        await db.add_search_terms(conn, changed)
        await db.queue_for_index(conn, changed)
