"""Which parser reads a file: chosen by --format or detected from the file's content."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from service.ingest.listing import looks_like_listing, parse_listing
from service.ingest.records import PaperRecord, ParseError

Parser = Callable[[Path, str | None], Iterator[PaperRecord]]

PARSERS: dict[str, Parser] = {"listing": parse_listing}
SNIFF_BYTES = 4096


def detect_format(path: Path) -> str:
    """The format of a file, from its first bytes."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    if looks_like_listing(head.replace("\r\n", "\n")):
        return "listing"
    raise ParseError(path, 1, f"unrecognised format; pass --format ({', '.join(PARSERS)})")


def read_records(path: Path, fmt: str | None = None) -> Iterator[PaperRecord]:
    """Stream the records of one file."""
    name = fmt or detect_format(path)
    try:
        parser = PARSERS[name]
    except KeyError:
        raise ParseError(path, 1, f"unknown format {name!r}; known: {', '.join(PARSERS)}") from None
    return parser(path, None)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files to load: each file as given, each directory's paper files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".txt"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


def count_records(files: list[Path]) -> int | None:
    """How many records these files hold, when that is cheap to know (JSON Lines: one per
    line); None otherwise. Used for the progress ETA only."""
    if not files or any(f.suffix != ".jsonl" for f in files):
        return None
    total = 0
    for path in files:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                total += chunk.count(b"\n")
    return total
