"""Parsers for paper records as JSON Lines (one object a line) or as one JSON array.

A record has the shape of the per-paper JSON of `GET /v1/papers/{id}`:

- required: `title`, `abstract` (strings);
- optional: `links` (`code`, `models`, `datasets`, `project`, `pdf`: lists of URLs), `authors`
  (list of strings), `published` (ISO date or null), `arxiv_id` (or null), `source`
  (`file`, `position`, `format`, `listing_date`: kept unchanged, so an exported paper loads back
  as it was; without it the source is this file and the record's number);
- ignored on input, because the loader derives them: `id`, `topics`, `created_at`, `updated_at`;
- any other key is ignored, so that files written by newer versions still load.

URLs found in the abstract are added to the record's links. A record that does not fit becomes
a `Rejected` (a JSON Lines line that is not JSON or not UTF-8 too) and the rest of the file loads.
A JSON array that breaks off raises `ParseError` whose `line` is the 1-based number of the record
where parsing stopped: a stream cannot resume inside a broken array. Both parsers stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

import ijson  # type: ignore[import-untyped]
import msgspec

from service.ingest.records import PaperRecord, ParseError, Rejected
from service.ingest.text import classify_links
from service.ingest.validate import accept, clean_authors, clean_text, merge_links, text_urls
from service.models import Links, Source

FORMAT_JSONL = "jsonl"
FORMAT_JSON = "json"
PAPER_KEYS = ('"title"', '"abstract"')


class JsonPaper(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One paper record as written in a JSON file; every field may be absent."""

    title: str | None = None
    abstract: str | None = None
    links: Links | None = None
    authors: list[str] | None = None
    published: date | None = None
    arxiv_id: str | None = None
    source: Source | None = None


_PRETTY_PRINTED = (
    "a line holding only '{' starts a pretty-printed JSON object, not JSON Lines: "
    "write one object per line, or a JSON array ([...]) of objects"
)
_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")


def validation_problem(error: msgspec.ValidationError, whole: str) -> tuple[str, str]:
    """(field path, reason) of a msgspec validation error; `whole` names the record itself."""
    message = str(error)
    at = _AT_PATH.search(message)
    path = at.group("path") if at else ""
    reason = message[: at.start()] if at else message
    missing = _MISSING.match(reason)
    if missing:
        path = f"{path}.{missing.group('name')}" if path else missing.group("name")
        reason = "missing"
    return path or whole, reason


def paper_record(
    paper: JsonPaper, name: str, position: int, fmt: str, line: int | None = None
) -> PaperRecord | Rejected:
    """A decoded record, cleaned and checked."""
    abstract = paper.abstract or ""
    record = PaperRecord(
        title=clean_text(paper.title or ""),
        abstract=clean_text(abstract),
        links=merge_links(paper.links or Links(), classify_links(text_urls(abstract))),
        source=paper.source or Source(file=name, position=position, format=fmt),
        authors=clean_authors(paper.authors or []),
        published=paper.published,
        arxiv_id=(paper.arxiv_id or "").strip() or None,
    )
    return accept(record, name, position, line)


def parse_jsonl(path: Path, display_name: str | None = None) -> Iterator[PaperRecord | Rejected]:
    """Records of a JSON Lines file, one per non-blank line; a bad line is a Rejected."""
    name = display_name or path.name
    decoder = msgspec.json.Decoder(JsonPaper)
    position = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            position += 1
            if position == 1 and raw.strip().removeprefix(b"\xef\xbb\xbf") == b"{":
                raise ParseError(path, number, _PRETTY_PRINTED)
            yield _jsonl_line(path, name, decoder, raw, number, position)


def _jsonl_line(
    path: Path,
    name: str,
    decoder: msgspec.json.Decoder[JsonPaper],
    raw: bytes,
    number: int,
    position: int,
) -> PaperRecord | Rejected:
    def reject(field: str, reason: str) -> Rejected:
        return Rejected(file=name, position=position, line=number, field=field, reason=reason)

    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        return reject("line", f"invalid UTF-8 at byte {error.start} of the line")
    try:
        paper = decoder.decode(text)
    except msgspec.ValidationError as error:
        return reject(*validation_problem(error, "line"))
    except msgspec.DecodeError as error:
        if not raw.endswith(b"\n") and "truncated" in str(error):
            raise ParseError(path, number, f"the file ends inside a record ({error})") from None
        return reject("line", f"not valid JSON: {error}")
    return paper_record(paper, name, position, FORMAT_JSONL, number)


def parse_json_array(
    path: Path, display_name: str | None = None
) -> Iterator[PaperRecord | Rejected]:
    """Records of a file holding one JSON array of paper objects, streamed item by item."""
    name = display_name or path.name
    for position, item in iter_array(path):
        try:
            paper = msgspec.convert(item, JsonPaper)
        except msgspec.ValidationError as error:
            field, reason = validation_problem(error, "record")
            yield Rejected(file=name, position=position, field=field, reason=reason)
            continue
        yield paper_record(paper, name, position, FORMAT_JSON)


def iter_array(path: Path) -> Iterator[tuple[int, Any]]:
    """(1-based number, item) for each item of a top-level JSON array, read as a stream.

    Raises ParseError whose `line` is the number of the record where the array broke off.
    """
    with path.open("rb") as handle:
        _skip_to_array(path, handle)
        items = ijson.items(handle, "item", use_float=True)
        position = 0
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except ijson.JSONError as error:
                raise ParseError(path, position + 1, _array_error(error, position)) from None
            position += 1
            yield position, item


def _skip_to_array(path: Path, handle: IO[bytes]) -> None:
    head = handle.read(3)
    if head != b"\xef\xbb\xbf":  # a UTF-8 byte order mark is not JSON: step over it
        handle.seek(0)
    start = handle.tell()
    byte = handle.read(1)
    while byte and byte in b" \t\r\n":
        start += 1
        byte = handle.read(1)
    if byte != b"[":
        raise ParseError(path, 1, "expected a JSON array ([...]) of records")
    handle.seek(start)


def _array_error(error: Exception, read: int) -> str:
    detail = error.args[0] if error.args else error
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    first_line = (
        str(detail).strip().splitlines()[0] if str(detail).strip() else type(error).__name__
    )
    return (
        f"the JSON array breaks off or is malformed in record {read + 1} ({first_line}); "
        f"{read} complete record(s) before it"
    )


def first_item_has_key(path: Path, key: str) -> bool:
    """True when the first object of a top-level JSON array has this key (read as a stream)."""
    with path.open("rb") as handle:
        try:
            _skip_to_array(path, handle)
            for prefix, event, value in ijson.parse(handle):
                if prefix == "item" and event == "map_key":
                    if value == key:
                        return True
                elif (prefix == "item" and event != "start_map") or (prefix, event) == (
                    "",
                    "end_array",
                ):
                    return False  # the first item ended, is not an object, or there is none
        except (ijson.JSONError, ParseError):
            return False
    return False


def looks_like_jsonl(head: str) -> bool:
    """Cheap sniffing: an object on the first line, with paper keys in the first bytes."""
    stripped = head.lstrip("\ufeff \t\r\n")
    return stripped.startswith("{") and any(key in stripped for key in PAPER_KEYS)
