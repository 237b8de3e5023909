"""Property tests (Hypothesis) for every parser and for listing cursors.

- Whatever bytes a file holds, a parser yields records and `Rejected`s or raises `ParseError`
  naming where it stopped: never any other exception.
- What a parser is given in its own format comes back as it was: a paper as the API serves it
  (JSON Lines, JSON array), a listing of titles and abstracts, an arXiv feed, a daily-papers item.
- A cursor decodes to what it was encoded from; any other token is refused with CursorError
  (a ValueError), never another exception.
- `http_date` writes what the standard library's `format_datetime` writes.

Examples are derandomized and bounded, so the suite is the same on every run and quick.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.cursor import CursorCodec, CursorError
from service.api.http import http_date
from service.ingest.arxiv_atom import ATOM_NS, parse_arxiv_atom
from service.ingest.formats import PARSERS, Parser
from service.ingest.hf_daily import parse_hf_daily
from service.ingest.jsonl import parse_json_array, parse_jsonl
from service.ingest.listing import parse_listing
from service.ingest.records import PaperRecord, ParseError, Rejected
from service.models import Links, Paper, Source

BOUNDED = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file that each example overwrites (module-scoped: Hypothesis reruns the test body)."""
    return tmp_path_factory.mktemp("properties") / "input"


def parse(parser: Parser, path: Path, content: bytes) -> list[PaperRecord | Rejected]:
    """Every record of `content`, or ParseError; any other exception fails the test."""
    path.write_bytes(content)
    return list(parser(path, None))


def outcome(parser: Parser, path: Path, content: bytes) -> list[PaperRecord | Rejected] | None:
    """The records, or None when the parser stopped with a ParseError naming the line."""
    try:
        records = parse(parser, path, content)
    except ParseError as error:
        failure = error
    else:
        assert all(isinstance(r, PaperRecord | Rejected) for r in records)
        return records
    assert failure.line >= 1
    assert str(failure).startswith(f"{path}:{failure.line}: ")
    return None


# --- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
PAPER_KEYS = ["title", "abstract", "links", "authors", "published", "arxiv_id", "source", "id"]
HF_KEYS = ["paper", "id", "title", "summary", "authors", "name", "hidden", "publishedAt"]
HF_KEYS += ["githubRepo", "projectPage"]
paper_like = st.dictionaries(st.sampled_from(PAPER_KEYS) | st.text(max_size=8), json_values)
hf_like = st.dictionaries(
    st.sampled_from(HF_KEYS),
    json_values | st.dictionaries(st.sampled_from(HF_KEYS), json_values, max_size=6),
    max_size=6,
)
ATOM_PIECES = [
    f'<feed xmlns="{ATOM_NS}">',
    '<feed xmlns="http://example.org/not-atom">',
    "<entry>",
    "</entry>",
    "<title>",
    "</title>",
    "<summary>",
    "</summary>",
    "<id>http://arxiv.org/abs/2401.01234v2</id>",
    "<id>http://arxiv.org/api/errors#x</id>",
    "<published>",
    "</published>",
    "2024-01-02T00:00:00Z",
    "not a date",
    "<author><name>",
    "</name></author>",
    '<link title="pdf" href="http://arxiv.org/pdf/2401.01234v2"/>',
    '<link href="ftp://x"/>',
    "<!DOCTYPE feed>",
    '<!ENTITY e "x">',
    "&amp;",
    "&e;",
    "<![CDATA[x]]>",
    "</feed>",
    "<?xml version='1.0'?>",
    "<?xml version='1.0' encoding='latin-1'?>",
    "text",
    "\n",
]
LISTING_PIECES = ["new", "Mar 11", "Subscribe", "\n", "\n\n", "\r\n", "\ufeff", "A Title"]
LISTING_PIECES += ["https://github.com/x/y", "``quoted''", "word " * 30, "One. Two. Three."]

# Text that cleaning leaves as it is: letters and digits of any script, single spaces.
WORD_CHARS = st.characters(categories=["L", "N"])
words = st.lists(st.text(WORD_CHARS, min_size=1, max_size=12), min_size=1, max_size=12)
clean = words.map(" ".join)
url = st.builds(
    "https://{}.example/{}".format,
    st.text(string.ascii_lowercase, min_size=1, max_size=10),
    st.text(string.ascii_lowercase + string.digits, max_size=10),
)
arxiv_ids = st.builds(
    "{}.{}".format,
    st.from_regex(r"\A[0-9]{4}\Z"),
    st.from_regex(r"\A[0-9]{5}\Z"),
) | st.builds("hep-th/{}".format, st.from_regex(r"\A[0-9]{7}\Z"))


@st.composite
def links(draw: st.DrawFn) -> Links:
    urls = draw(st.lists(url, unique=True, max_size=6))
    kinds = draw(st.lists(st.sampled_from(range(5)), min_size=len(urls), max_size=len(urls)))
    grouped: list[list[str]] = [[], [], [], [], []]
    for found, kind in zip(urls, kinds, strict=True):
        grouped[kind].append(found)
    return Links(*grouped)


papers = st.builds(
    Paper,
    id=st.just("a-paper"),
    title=clean,
    abstract=clean,
    topics=st.just([]),
    links=links(),
    authors=st.lists(clean, max_size=5),
    published=st.none() | st.dates(date(1990, 1, 1), date(2100, 1, 1)),
    arxiv_id=st.none() | arxiv_ids,
    source=st.builds(
        Source,
        file=clean,
        position=st.integers(1, 10**6),
        format=st.sampled_from(sorted(PARSERS)),
        listing_date=st.none() | clean,
    ),
    created_at=st.just(datetime(2026, 1, 1, tzinfo=UTC)),
    updated_at=st.just(datetime(2026, 1, 2, tzinfo=UTC)),
)


def same_paper(record: PaperRecord | Rejected, paper: Paper) -> None:
    assert isinstance(record, PaperRecord), record
    assert (record.title, record.abstract, record.links) == (
        paper.title,
        paper.abstract,
        paper.links,
    )
    assert (record.authors, record.published) == (tuple(paper.authors), paper.published)
    assert (record.arxiv_id, record.source) == (paper.arxiv_id, paper.source)


# --- nothing but ParseError ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARSERS))
@BOUNDED
@given(content=st.binary(max_size=3000))
def test_any_bytes_parse_or_fail_with_parse_error(scratch: Path, name: str, content: bytes) -> None:
    outcome(PARSERS[name], scratch, content)


@pytest.mark.parametrize("name", ["jsonl", "json", "hf-daily"])
@BOUNDED
@given(items=st.lists(json_values | paper_like | hf_like, max_size=6), lines=st.booleans())
def test_any_json_parses_or_fails_with_parse_error(
    scratch: Path, name: str, items: list[object], lines: bool
) -> None:
    if lines:  # one value per line, as JSON Lines
        content = b"\n".join(msgspec.json.encode(item) for item in items)
    else:
        content = msgspec.json.encode(items)
    records = outcome(PARSERS[name], scratch, content)
    if records is not None and not lines and name != "jsonl":
        assert len(records) == len(items)  # one record or Rejected per item, none dropped


@BOUNDED
@given(pieces=st.lists(st.sampled_from(ATOM_PIECES) | st.text(max_size=10), max_size=30))
def test_any_atom_like_text_parses_or_fails_with_parse_error(
    scratch: Path, pieces: list[str]
) -> None:
    outcome(parse_arxiv_atom, scratch, "".join(pieces).encode("utf-8", "surrogatepass"))


@BOUNDED
@given(pieces=st.lists(st.sampled_from(LISTING_PIECES) | st.text(max_size=30), max_size=30))
def test_any_listing_like_text_parses_or_fails_with_parse_error(
    scratch: Path, pieces: list[str]
) -> None:
    outcome(parse_listing, scratch, "\n".join(pieces).encode("utf-8", "surrogatepass"))


def test_an_unknown_xml_encoding_is_a_parse_error(scratch: Path) -> None:
    content = f"<?xml version='1.0' encoding='no-such-encoding'?><feed xmlns='{ATOM_NS}'/>"
    assert outcome(parse_arxiv_atom, scratch, content.encode()) is None


def test_an_arxiv_id_in_other_digits_is_rejected(scratch: Path) -> None:
    line = {
        "title": "T",
        "abstract": "A",
        "arxiv_id": "\u0662\u0664\u0660\u0661.\u0660\u0661\u0662\u0663\u0664",
    }
    [record] = parse(parse_jsonl, scratch, msgspec.json.encode(line) + b"\n")
    assert isinstance(record, Rejected)
    assert record.field == "arxiv_id"


# --- round trips -------------------------------------------------------------------------------


@BOUNDED
@given(paper=papers)
def test_a_served_paper_loads_back_as_it_was_from_json_lines(scratch: Path, paper: Paper) -> None:
    [record] = parse(parse_jsonl, scratch, msgspec.json.encode(paper) + b"\n")
    same_paper(record, paper)


@BOUNDED
@given(batch=st.lists(papers, min_size=1, max_size=4))
def test_served_papers_load_back_as_they_were_from_a_json_array(
    scratch: Path, batch: list[Paper]
) -> None:
    records = parse(parse_json_array, scratch, msgspec.json.encode(batch))
    assert len(records) == len(batch)
    for record, paper in zip(records, batch, strict=True):
        same_paper(record, paper)


# Titles: a few words, no sentence breaks; abstracts: long enough to be abstracts.
titles = st.lists(st.text(string.ascii_letters, min_size=2, max_size=10), min_size=3, max_size=8)
abstracts = st.lists(st.text(string.ascii_letters + ",;", min_size=1, max_size=12), min_size=60)


@BOUNDED
@given(
    pairs=st.lists(st.tuples(titles.map(" ".join), abstracts.map(" ".join)), min_size=1, max_size=5)
)
def test_a_listing_yields_every_paper_in_order(scratch: Path, pairs: list[tuple[str, str]]) -> None:
    text = "new\n\nMar 11\n\n" + "".join(f"{title}\n\n{abstract}\n\n" for title, abstract in pairs)
    records = parse(parse_listing, scratch, text.encode())
    assert [(r.title, r.abstract) for r in records if isinstance(r, PaperRecord)] == pairs
    assert [r.source.listing_date for r in records if isinstance(r, PaperRecord)] == [
        "Mar 11"
    ] * len(pairs)


@BOUNDED
@given(batch=st.lists(papers, min_size=1, max_size=4))
def test_an_arxiv_feed_yields_each_entry(scratch: Path, batch: list[Paper]) -> None:
    entries = []
    for paper in batch:
        arxiv_id = paper.arxiv_id or "2401.01234"
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in paper.authors)
        published = paper.published.isoformat() + "T00:00:00Z" if paper.published else ""
        entries.append(
            f"<entry><id>http://arxiv.org/abs/{arxiv_id}v3</id>"
            f"<title>{escape(paper.title)}</title><summary>{escape(paper.abstract)}</summary>"
            f"{authors}<published>{published}</published></entry>"
        )
    feed = f'<?xml version="1.0"?><feed xmlns="{ATOM_NS}">{"".join(entries)}</feed>'
    records = parse(parse_arxiv_atom, scratch, feed.encode())
    assert len(records) == len(batch)
    for record, paper in zip(records, batch, strict=True):
        assert isinstance(record, PaperRecord), record
        assert (record.title, record.abstract) == (paper.title, paper.abstract)
        assert (record.authors, record.published) == (tuple(paper.authors), paper.published)
        assert record.arxiv_id == (paper.arxiv_id or "2401.01234")  # without its version


@BOUNDED
@given(batch=st.lists(papers, min_size=1, max_size=4))
def test_daily_papers_items_yield_their_papers(scratch: Path, batch: list[Paper]) -> None:
    items = [
        {
            "paper": {
                "id": paper.arxiv_id or "2401.01234",
                "title": paper.title,
                "summary": paper.abstract,
                "authors": [{"name": a, "hidden": False} for a in paper.authors],
                "publishedAt": f"{paper.published.isoformat()}T00:00:00.000Z"
                if paper.published
                else None,
            },
            "numComments": 3,
        }
        for paper in batch
    ]
    records = parse(parse_hf_daily, scratch, msgspec.json.encode(items))
    assert len(records) == len(batch)
    for record, paper in zip(records, batch, strict=True):
        assert isinstance(record, PaperRecord), record
        assert (record.title, record.abstract) == (paper.title, paper.abstract)
        assert (record.authors, record.published) == (tuple(paper.authors), paper.published)


# --- cursors ------------------------------------------------------------------------------------

SECRET = b"k" * 32
TTL = 3600
codec = CursorCodec(SECRET, TTL)
NOW = 1_800_000_000.0


@BOUNDED
@given(listing=st.text(max_size=50), after=st.text(max_size=200), age=st.integers(0, TTL))
def test_a_cursor_decodes_to_what_it_encoded(listing: str, after: str, age: int) -> None:
    token = codec.encode(listing, after, now=NOW)
    assert token.isascii()
    assert codec.decode(token, listing, now=NOW + age) == after


@settings(BOUNDED, max_examples=200)
@given(token=st.text(max_size=200) | st.binary(max_size=150).map(lambda b: b.decode("latin-1")))
def test_any_other_token_is_refused_with_a_cursor_error(token: str) -> None:
    with pytest.raises(CursorError):
        codec.decode(token, "papers", now=NOW)


@settings(BOUNDED, max_examples=200)
@given(
    after=st.text(max_size=50),
    position=st.integers(0, 10_000),
    replacement=st.sampled_from(string.ascii_letters + string.digits + "-_.="),
)
def test_an_altered_cursor_is_refused(after: str, position: int, replacement: str) -> None:
    token = codec.encode("papers", after, now=NOW)
    index = position % len(token)
    altered = token[:index] + replacement + token[index + 1 :]
    if altered == token:
        return
    try:
        decoded = codec.decode(altered, "papers", now=NOW)
    except CursorError:
        return
    # base64 can decode two spellings to the same bytes (unused low bits): then nothing changed.
    assert decoded == after


@BOUNDED
@given(
    after=st.text(max_size=50), other=st.text(min_size=1, max_size=20), late=st.integers(1, 10**6)
)
def test_a_cursor_is_refused_by_another_listing_and_after_its_lifetime(
    after: str, other: str, late: int
) -> None:
    token = codec.encode("papers", after, now=NOW)
    with pytest.raises(CursorError, match="expired"):
        codec.decode(token, "papers", now=NOW + TTL + late)
    with pytest.raises(CursorError, match="another listing"):
        codec.decode(token, "papers" + other, now=NOW)
    with pytest.raises(CursorError):
        CursorCodec(b"o" * 32, TTL).decode(token, "papers", now=NOW)


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_http_dates_are_the_standard_librarys(moment: datetime) -> None:
    """`http_date` writes IMF-fixdate itself, for speed: it must say what email.utils says."""
    assert http_date(moment) == format_datetime(moment.astimezone(UTC), usegmt=True)
