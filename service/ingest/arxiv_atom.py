"""Parser for arXiv API responses (`http://export.arxiv.org/api/query`): an Atom `<feed>`.

Each `<entry>` maps to one record:

- arxiv_id: from `<id>` (`http://arxiv.org/abs/2401.01234v2` -> `2401.01234`): the version is
  dropped, so every version of a paper, and the same paper from another source, is one paper;
- title, abstract: `<title>`, `<summary>`, cleaned (arXiv hard-wraps them);
- authors: each `<author><name>`; published: the date of `<published>` (version 1);
- links: pdf from the `<link title="pdf">` (written `https://arxiv.org/pdf/<id>`, without the
  version, like the id), plus the URLs in `<summary>` and in `<arxiv:comment>`, where authors
  usually put their code; the abs page (`rel="alternate"`) and the DOI link are not kept, since
  the abs page follows from arxiv_id and neither is code, a model, data, a project page or a PDF.

Categories, `arxiv:journal_ref` and `arxiv:doi` are not paper fields here and are ignored.
The feed is read as a stream (each entry is dropped once mapped) through defusedxml, which
refuses DTDs and entity declarations; XML that breaks off raises ParseError with its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XMLParseError
from defusedxml.ElementTree import iterparse

from service.ingest.records import PaperRecord, ParseError, Rejected
from service.ingest.text import classify_links
from service.ingest.validate import accept, clean_authors, clean_text, merge_links, text_urls
from service.models import Links, Source

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

FORMAT = "arxiv-atom"
ATOM_NS = "http://www.w3.org/2005/Atom"
ARXIV_NS = "http://arxiv.org/schemas/atom"
_ATOM = f"{{{ATOM_NS}}}"
_ARXIV = f"{{{ARXIV_NS}}}"
_ABS_URL = re.compile(r"^https?://(?:export\.)?arxiv\.org/abs/(?P<id>.+?)(?:v\d+)?$")
_PDF_URL = re.compile(r"^https?://(?:export\.)?arxiv\.org/pdf/(?P<id>.+?)(?:v\d+)?(?:\.pdf)?$")
PDF_URL = "https://arxiv.org/pdf/{}"


class _BadFieldError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def parse_arxiv_atom(
    path: Path, display_name: str | None = None
) -> Iterator[PaperRecord | Rejected]:
    """Records of an arXiv API Atom feed, one per `<entry>`, streamed."""
    name = display_name or path.name
    position = 0
    root: Element | None = None
    with path.open("rb") as handle:
        for event, element in _events(path, handle):
            if root is None:
                root = _check_root(path, element)
            elif event == "end" and element.tag == f"{_ATOM}entry":
                position += 1
                yield entry_record(element, name, position)
                root.clear()  # memory stays flat: the mapped entry is dropped


def _events(path: Path, handle: IO[bytes]) -> Iterator[tuple[str, Element]]:
    try:
        yield from iterparse(handle, events=("start", "end"), forbid_dtd=True)
    except XMLParseError as error:
        raise ParseError(
            path, error.position[0], f"the XML breaks off or is malformed: {error}"
        ) from None
    except LookupError as error:  # expat: the XML declaration names an unknown encoding
        raise ParseError(path, 1, f"the XML declares an unknown encoding: {error}") from None
    except DefusedXmlException as error:
        raise ParseError(
            path,
            _line_of(path, b"<!DOCTYPE"),
            f"refused: {type(error).__name__} (DTDs and entity declarations can expand without "
            "bound or read local files; arXiv feeds have none)",
        ) from None


def _check_root(path: Path, element: Element) -> Element:
    if element.tag != f"{_ATOM}feed":
        raise ParseError(path, 1, f"expected an Atom <feed> ({ATOM_NS}), found <{element.tag}>")
    return element


def _line_of(path: Path, needle: bytes) -> int:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if needle in line:
                return number
    return 1


def entry_record(entry: Element, name: str, position: int) -> PaperRecord | Rejected:
    """One `<entry>` as a checked record."""
    try:
        record = _entry_to_record(entry, name, position)
    except _BadFieldError as bad:
        return Rejected(file=name, position=position, field=bad.field, reason=bad.reason)
    return accept(record, name, position)


def _entry_to_record(entry: Element, name: str, position: int) -> PaperRecord:
    arxiv_id = _arxiv_id(_text(entry, f"{_ATOM}id"), entry)
    summary = _text(entry, f"{_ATOM}summary")
    comment = _text(entry, f"{_ARXIV}comment")
    return PaperRecord(
        title=clean_text(_text(entry, f"{_ATOM}title")),
        abstract=clean_text(summary),
        links=merge_links(
            Links(pdf=_pdf_links(entry, arxiv_id)),
            classify_links(text_urls(summary) + text_urls(comment)),
        ),
        source=Source(file=name, position=position, format=FORMAT),
        authors=clean_authors([_text(a, f"{_ATOM}name") for a in entry.iterfind(f"{_ATOM}author")]),
        published=_published(_text(entry, f"{_ATOM}published")),
        arxiv_id=arxiv_id,
    )


def _text(element: Element, tag: str) -> str:
    return element.findtext(tag) or ""


def _arxiv_id(entry_id: str, entry: Element) -> str | None:
    entry_id = entry_id.strip()
    if "/api/errors" in entry_id:  # arXiv answers a bad query with one entry titled "Error"
        detail = clean_text(_text(entry, f"{_ATOM}summary"))
        raise _BadFieldError("id", f"the arXiv API reported an error: {detail}")
    if not entry_id:
        return None
    match = _ABS_URL.match(entry_id)
    return match.group("id") if match else entry_id  # not an abs URL: check_record rejects it


def _pdf_links(entry: Element, arxiv_id: str | None) -> list[str]:
    for link in entry.iterfind(f"{_ATOM}link"):
        if link.get("title") == "pdf" or link.get("type") == "application/pdf":
            href = (link.get("href") or "").strip()
            match = _PDF_URL.match(href)
            if match and arxiv_id and match.group("id") == arxiv_id:
                return [PDF_URL.format(arxiv_id)]
            return [href] if href else []
    return []


def _published(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise _BadFieldError("published", f"{value[:40]!r} is not an ISO date") from None


def looks_like_atom(head: str) -> bool:
    """Cheap sniffing: XML whose first bytes open an Atom feed."""
    stripped = head.lstrip("\ufeff \t\r\n")
    return stripped.startswith("<") and "<feed" in stripped and ATOM_NS in stripped
