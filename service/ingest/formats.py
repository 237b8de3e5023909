"""Which parser reads a file: chosen by --format or detected from the file's content.

| format       | parser                 | detected when the first non-space bytes are ...          |
|--------------|------------------------|----------------------------------------------------------|
| `arxiv-atom` | arxiv_atom.py          | `<` opening an Atom `<feed>` (arXiv API response)        |
| `hf-daily`   | hf_daily.py            | `[` whose first object has a `paper` key (HF daily API)  |
| `json`       | jsonl.py (JSON array)  | `[` otherwise (an array of paper records)                |
| `jsonl`      | jsonl.py (JSON Lines)  | `{` with a `"title"` or `"abstract"` key in the head     |
| `listing`    | listing.py             | anything else that is text (the seed listing format)     |
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from service.ingest.arxiv_atom import looks_like_atom, parse_arxiv_atom
from service.ingest.hf_daily import looks_like_hf_daily, parse_hf_daily
from service.ingest.jsonl import looks_like_jsonl, parse_json_array, parse_jsonl
from service.ingest.listing import looks_like_listing, parse_listing
from service.ingest.records import PaperRecord, ParseError, Rejected

Parser = Callable[[Path, str | None], Iterator[PaperRecord | Rejected]]

PARSERS: dict[str, Parser] = {
    "listing": parse_listing,
    "jsonl": parse_jsonl,
    "json": parse_json_array,
    "hf-daily": parse_hf_daily,
    "arxiv-atom": parse_arxiv_atom,
}
SNIFF_BYTES = 4096
PAPER_SUFFIXES = frozenset({".txt", ".jsonl", ".json", ".xml", ".atom"})


def detect_format(path: Path) -> str:
    """The format of a file, from its first bytes (see the table above)."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    head = head.lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        return "hf-daily" if looks_like_hf_daily(path) else "json"
    if looks_like_atom(head):
        return "arxiv-atom"
    if looks_like_jsonl(head):
        return "jsonl"
    if looks_like_listing(head.replace("\r\n", "\n")):
        return "listing"
    raise ParseError(path, 1, f"unrecognised format; pass --format ({', '.join(PARSERS)})")


def read_records(path: Path, fmt: str | None = None) -> Iterator[PaperRecord | Rejected]:
    """Stream the records of one file; a Rejected stands for a record that cannot be stored."""
    name = fmt or detect_format(path)
    try:
        parser = PARSERS[name]
    except KeyError:
        raise ParseError(path, 1, f"unknown format {name!r}; known: {', '.join(PARSERS)}") from None
    return parser(path, None)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files to load: each file as given, each directory's paper files in name order.

    A directory's paper files are its .txt, .jsonl, .json, .xml and .atom files.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.is_file() and p.suffix in PAPER_SUFFIXES)
            )
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
