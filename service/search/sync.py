"""Feed a search engine from PostgreSQL, the source of truth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from service import db
from service.models import Paper
from service.search.engine import SearchEngine

BATCH_SIZE = 1000


async def papers_in_batches(
    conn: db.Connection, batch_size: int = BATCH_SIZE
) -> AsyncIterator[list[Paper]]:
    """Every paper in id order, streamed with a server-side cursor, `batch_size` at a time."""
    async with conn.transaction(readonly=True):
        batch: list[Paper] = []
        async for record in conn.cursor(f"SELECT {db.PAPER_COLUMNS} FROM papers p ORDER BY p.id"):
            batch.append(db.to_paper(record))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


async def send_changes(
    conn: db.Connection,
    engine: SearchEngine,
    changed_ids: Sequence[str],
    deleted_ids: Sequence[str] = (),
) -> None:
    """Index the changed papers (read back from PostgreSQL) and drop the deleted ones."""
    for start in range(0, len(changed_ids), BATCH_SIZE):
        await engine.index_papers(
            await db.get_papers(conn, changed_ids[start : start + BATCH_SIZE])
        )
    if deleted_ids:
        await engine.delete_papers(deleted_ids)
