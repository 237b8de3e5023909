"""Parser for the seed listing format: a text dump of a public papers listing page.

A few paragraphs of page chrome (`new`, a subscribe prompt, a byline, a listing date such as
`Mar 11`), then, for each paper, a title paragraph followed by an abstract paragraph.
Paragraphs are separated by blank lines. The parser streams: memory does not grow with the
file, and it stops with the line number where the file stops fitting the format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from service.ingest.records import PaperRecord, ParseError, Rejected
from service.ingest.text import classify_links, find_urls
from service.ingest.validate import accept
from service.models import Source

FORMAT = "listing"
TITLE_MAX = 300
ABSTRACT_MIN = 100

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_LISTING_DATE = re.compile(rf"^(?:{_MONTHS})[a-z]*\.? \d{{1,2}}(?:, \d{{4}})?$", re.IGNORECASE)
_CHROME = (
    re.compile(r"^new$", re.IGNORECASE),
    re.compile(r"^get trending papers in your email inbox!?$", re.IGNORECASE),
    re.compile(r"^subscribe$", re.IGNORECASE),
    re.compile(r"^by\s*\S.* and the research community$", re.IGNORECASE),
)


class Paragraph:
    """A block of non-blank lines and the line number it starts on."""

    __slots__ = ("line", "text")

    def __init__(self, line: int, text: str) -> None:
        self.line = line
        self.text = text


def read_paragraphs(path: Path) -> Iterator[Paragraph]:
    """Paragraphs of a UTF-8 text file, read line by line; lines are joined with one space."""
    lines: list[str] = []
    start = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise ParseError(
                    path, number, f"invalid UTF-8 at byte {error.start} of the line"
                ) from None
            if line:
                if not lines:
                    start = number
                lines.append(line)
            elif lines:
                yield Paragraph(start, " ".join(lines))
                lines = []
    if lines:
        yield Paragraph(start, " ".join(lines))


def is_chrome(text: str) -> bool:
    """True for the page furniture that precedes the papers (not a paper)."""
    return bool(_LISTING_DATE.match(text)) or any(p.match(text) for p in _CHROME)


def looks_like_listing(head: str) -> bool:
    """Cheap content sniffing for format detection: plain paragraphs of text, not JSON or XML."""
    stripped = head.lstrip("\ufeff \t\r\n")
    return bool(stripped) and stripped[0] not in "{[<"


def parse_listing(path: Path, display_name: str | None = None) -> Iterator[PaperRecord | Rejected]:
    """Yield the papers of a listing file in order; raise ParseError where the file stops fitting."""
    name = display_name or path.name
    paragraphs = read_paragraphs(path)
    listing_date: str | None = None
    position = 0
    pending_title: Paragraph | None = None
    in_header = True
    for paragraph in paragraphs:
        if in_header and is_chrome(paragraph.text):
            if _LISTING_DATE.match(paragraph.text):
                listing_date = paragraph.text
            continue
        in_header = False
        if pending_title is None:
            _check_title(path, paragraph)
            pending_title = paragraph
            continue
        _check_abstract(path, pending_title, paragraph)
        position += 1
        record = PaperRecord(
            title=pending_title.text,
            abstract=paragraph.text,
            links=classify_links(find_urls(paragraph.text)),
            source=Source(file=name, position=position, format=FORMAT, listing_date=listing_date),
        )
        yield accept(record, name, position, pending_title.line)
        pending_title = None
    if pending_title is not None:
        raise ParseError(
            path,
            pending_title.line,
            f"the title {pending_title.text[:80]!r} has no abstract after it (the file ends)",
        )
    if position == 0:
        raise ParseError(path, 1, "no papers found: expected title and abstract paragraphs")


_SENTENCE_BREAK = re.compile(r"[.!?] [A-Z]")


def _check_title(path: Path, paragraph: Paragraph) -> None:
    # Titles are one short line; an abstract that lost its title is long or has several sentences.
    if len(paragraph.text) > TITLE_MAX or len(_SENTENCE_BREAK.findall(paragraph.text)) >= 2:
        raise ParseError(
            path,
            paragraph.line,
            f"expected a paper title (one line of at most {TITLE_MAX} characters) but found "
            f"{len(paragraph.text)} characters of prose; is a title missing before this abstract?",
        )


def _check_abstract(path: Path, title: Paragraph, paragraph: Paragraph) -> None:
    if len(paragraph.text) < ABSTRACT_MIN:
        raise ParseError(
            path,
            paragraph.line,
            f"expected the abstract of {title.text[:80]!r} but found a paragraph of "
            f"{len(paragraph.text)} characters; is an abstract missing?",
        )
