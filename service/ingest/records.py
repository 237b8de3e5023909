"""What a parser hands to the loader, and how a parser says a file does not fit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec

from service.models import Links, Source


class PaperRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One paper as read from a source, before topics and ids are assigned."""

    title: str
    abstract: str
    links: Links
    source: Source
    authors: tuple[str, ...] = ()
    published: date | None = None
    arxiv_id: str | None = None


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    """A record that cannot be stored, and why; the rest of the file still loads."""

    file: str
    position: int  # 1-based record number within the file
    field: str
    reason: str
    line: int | None = None  # where the record starts, when the format has lines


class ParseError(ValueError):
    """A file does not fit its format; names the file and the line where understanding stopped."""

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        super().__init__(f"{path}:{line}: {message}")
