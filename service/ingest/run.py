"""One load run from files on disk: parse, classify, write, report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from service import db
from service.ingest.formats import expand_paths, read_records
from service.ingest.loader import LoadOptions, LoadSummary, ProgressCallback, load_records
from service.ingest.records import PaperRecord, Rejected
from service.ingest.topics import load_taxonomy


def _records(files: list[Path], fmt: str | None) -> Iterator[PaperRecord | Rejected]:
    for path in files:
        yield from read_records(path, fmt)


async def load_files(
    conn: db.Connection,
    paths: list[Path],
    taxonomy_path: Path,
    fmt: str | None = None,
    options: LoadOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    on_wait: Callable[[int | None], None] | None = None,
    wait: bool = True,
) -> LoadSummary:
    """Load every paper of these files (directories: their paper files) in one transaction."""
    taxonomy = load_taxonomy(taxonomy_path)
    files = expand_paths(paths)
    return await load_records(
        conn, _records(files, fmt), taxonomy, options, progress=progress, on_wait=on_wait, wait=wait
    )
