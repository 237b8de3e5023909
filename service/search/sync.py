"""Feed a search engine from PostgreSQL, the source of truth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from service import db
from service.models import Paper
from service.search.engine import SearchEngine
from service.search.meilisearch import MeilisearchEngine

BATCH_SIZE = 1000


async def papers_in_batches(
    conn: db.Connection, batch_size: int = BATCH_SIZE
) -> AsyncIterator[list[Paper]]:
    """Every paper in id order, streamed with a server-side cursor, `batch_size` at a time.

    The caller holds the transaction that the cursor needs.
    """
    batch: list[Paper] = []
    async for record in conn.cursor(f"SELECT {db.PAPER_COLUMNS} FROM papers p ORDER BY p.id"):
        batch.append(db.to_paper(record))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


async def drain_outbox(conn: db.Connection, engine: SearchEngine) -> tuple[int, int]:
    """Send every queued change to the engine; return (indexed, deleted) counts.

    An id leaves the queue only after the engine acknowledged it, so an error here leaves the
    rest queued for the next run.
    """
    started = await db.now(conn)
    indexed = deleted = 0
    after = ""
    while batch := await db.outbox_batch(conn, after, BATCH_SIZE):
        present = [paper_id for paper_id, exists in batch if exists]
        gone = [paper_id for paper_id, exists in batch if not exists]
        await engine.index_papers(await db.get_papers(conn, present))
        await engine.delete_papers(gone)
        await db.unqueue(conn, [paper_id for paper_id, _ in batch], started)
        indexed, deleted = indexed + len(present), deleted + len(gone)
        after = batch[-1][0]
    return indexed, deleted


async def rebuild_index(
    conn: db.Connection, engine: MeilisearchEngine, progress: Callable[[int], None] | None
) -> int:
    """Rebuild the engine's index from PostgreSQL and swap it in; return the document count.

    Loads wait meanwhile (the load lock is held), so no change slips between the snapshot
    streamed here and the swap; what was queued before is then covered by the new index.
    """
    started = await db.now(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await db.lock_for_load(conn)
        count = await engine.reindex(papers_in_batches(conn), progress)
    await db.unqueue_all(conn, started)
    return count
