"""Cleaning and validation shared by every parser: markup out, limits enforced.

Every parser cleans a record's text with `clean_text`, then asks `check_record` whether the
record can be stored; a record that fails becomes a `Rejected` and the rest of the file loads.

| Field      | Rule                                                                        |
|------------|-----------------------------------------------------------------------------|
| title      | required, not empty after cleaning, at most `TITLE_MAX` (1000) characters   |
| abstract   | required, not empty after cleaning, at most `ABSTRACT_MAX` (100000) chars   |
| authors    | at most `AUTHORS_MAX` (1000) names, each at most `AUTHOR_MAX` (300) chars   |
| links      | each URL http(s) and at most `URL_MAX` (2000) characters                    |
| arxiv_id   | null, or an arXiv id: `2401.01234`, `2401.01234v2`, `hep-th/9901001`        |
| all text   | no control characters (Unicode category Cc) other than tab, CR and LF       |
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from service.ingest.records import PaperRecord, Rejected
from service.ingest.text import find_urls
from service.models import Links

TITLE_MAX = 1000
ABSTRACT_MAX = 100_000
AUTHORS_MAX = 1000
AUTHOR_MAX = 300
URL_MAX = 2000
ARXIV_ID = re.compile(  # ASCII digits only: \d would take any script's digits
    r"^(?:[0-9]{4}\.[0-9]{4,5}|[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/[0-9]{7})(?:v[0-9]+)?$"
)
"""New-style (`2401.01234`, 4 or 5 digits after the dot) or old-style (`hep-th/9901001`,
`math.GT/0309136`) arXiv ids, with an optional version suffix (`v2`)."""

_LINK_KINDS = ("code", "models", "datasets", "project", "pdf")
# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; tab, LF and CR are allowed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

# Only real HTML/XML elements are markup: `p < 0.05` or `n<k and k>m` in maths is text.
_INLINE_TAGS = frozenset(
    ("a", "abbr", "b", "big", "cite", "code", "del", "em", "font", "i", "img", "ins", "kbd",
     "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "tt", "u",
     "var", "wbr")
)  # fmt: skip
_BLOCK_TAGS = frozenset(
    ("abstract", "address", "article", "aside", "blockquote", "body", "br", "caption", "dd",
     "div", "dl", "dt", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6",
     "head", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "sec", "section",
     "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul")
)  # fmt: skip
_TAG = re.compile(
    r"</?(?:(?P<prefix>[A-Za-z][\w.-]*):)?(?P<name>[A-Za-z][A-Za-z0-9]*)(?:\s[^<>]*)?/?>"
)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _replace_tag(match: re.Match[str]) -> str:
    name = match.group("name").lower()
    if name in _BLOCK_TAGS:
        return " "
    if name in _INLINE_TAGS or match.group("prefix"):  # jats:italic, mml:mi, ...
        return ""
    return match.group(0)


def clean_text(value: str) -> str:
    """Strip HTML/XML tags, unescape entities, collapse whitespace; plain text stays as it is."""
    if "<" in value:
        value = _TAG.sub(_replace_tag, _COMMENT.sub(" ", value))
    if "&" in value:
        value = _ENTITY.sub(lambda m: html.unescape(m.group(0)), value)
    return " ".join(value.split())  # as text.squash_whitespace, several times faster


def find_control_character(value: str) -> str | None:
    """A reason naming the first control character (other than tab, CR, LF) in a text, if any."""
    match = _CONTROL.search(value)
    if match is None:
        return None
    return f"control character U+{ord(match.group(0)):04X} at offset {match.start()}"


def _check_text(field: str, value: str, limit: int) -> tuple[str, str] | None:
    if not value.strip():
        return field, "missing or empty"
    if len(value) > limit:
        return field, f"{len(value)} characters, more than the limit of {limit}"
    reason = find_control_character(value)
    return (field, reason) if reason else None


def _check_authors(authors: tuple[str, ...]) -> tuple[str, str] | None:
    if len(authors) > AUTHORS_MAX:
        return "authors", f"{len(authors)} authors, more than the limit of {AUTHORS_MAX}"
    for index, author in enumerate(authors):
        problem = _check_text(f"authors[{index}]", author, AUTHOR_MAX)
        if problem:
            return problem
    return None


def _urls(record: PaperRecord) -> Iterator[tuple[str, str]]:
    for kind in _LINK_KINDS:
        for index, url in enumerate(getattr(record.links, kind)):
            yield f"links.{kind}[{index}]", url


def _check_links(record: PaperRecord) -> tuple[str, str] | None:
    for field, url in _urls(record):
        problem = _check_text(field, url, URL_MAX)
        if problem:
            return problem
        if not url.lower().startswith(("http://", "https://")):
            return field, f"not an http(s) URL: {url[:80]!r}"
    return None


def _check_arxiv_id(arxiv_id: str | None) -> tuple[str, str] | None:
    if arxiv_id is None:
        return None
    if not ARXIV_ID.match(arxiv_id):
        return (
            "arxiv_id",
            f"{arxiv_id[:80]!r} is not an arXiv id (like 2401.01234 or hep-th/9901001)",
        )
    return None


def check_record(record: PaperRecord) -> tuple[str, str] | None:
    """The first (field, reason) that keeps a record from being stored, or None when it is fine."""
    return (
        _check_text("title", record.title, TITLE_MAX)
        or _check_text("abstract", record.abstract, ABSTRACT_MAX)
        or _check_authors(record.authors)
        or _check_links(record)
        or _check_arxiv_id(record.arxiv_id)
    )


def merge_links(*groups: Links) -> Links:
    """Links of several origins (the record's own, its abstract's), each URL once, order kept."""
    kinds: dict[str, list[str]] = {kind: [] for kind in _LINK_KINDS}
    seen: set[str] = set()
    for group in groups:
        for kind in _LINK_KINDS:
            for raw in getattr(group, kind):
                url = raw.strip()
                if url and url not in seen:
                    seen.add(url)
                    kinds[kind].append(url)
    return Links(**kinds)


def clean_authors(names: list[str]) -> tuple[str, ...]:
    """Author names cleaned like text; empty names are dropped."""
    cleaned = (clean_text(name) for name in names)
    return tuple(name for name in cleaned if name)


def accept(
    record: PaperRecord, file: str, position: int, line: int | None = None
) -> PaperRecord | Rejected:
    """The record itself when it can be stored, else a Rejected naming the field and reason."""
    problem = check_record(record)
    if problem is None:
        return record
    field, reason = problem
    return Rejected(file=file, position=position, line=line, field=field, reason=reason)


def text_urls(raw: str) -> list[str]:
    """URLs of a text that may hold markup: those in its words and those in its tags' attributes."""
    if "<" not in raw and "&" not in raw:
        return find_urls(raw)  # plain text: cleaning would change only whitespace
    urls = find_urls(clean_text(raw))
    unescaped = _ENTITY.sub(lambda m: html.unescape(m.group(0)), raw)
    urls.extend(url for url in find_urls(unescaped) if url not in urls)
    return urls
