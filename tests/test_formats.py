"""Parsers for JSON Lines, JSON arrays, HF daily papers and arXiv Atom; cleaning and validation."""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from pathlib import Path

import msgspec
import pytest

from service.ingest.arxiv_atom import parse_arxiv_atom
from service.ingest.formats import PARSERS, detect_format, expand_paths, read_records
from service.ingest.hf_daily import parse_hf_daily
from service.ingest.jsonl import parse_json_array, parse_jsonl
from service.ingest.records import PaperRecord, ParseError, Rejected
from service.ingest.text import squash_whitespace
from service.ingest.validate import (
    ABSTRACT_MAX,
    AUTHOR_MAX,
    AUTHORS_MAX,
    TITLE_MAX,
    URL_MAX,
    check_record,
    clean_text,
    merge_links,
    text_urls,
)
from service.models import Links, Source
from tests.conftest import SEED_LISTING, seed_records, write

DATA = Path(__file__).parent / "data"
TRANCEPTION = (
    "Tranception: protein fitness prediction with autoregressive transformers and "
    "inference-time retrieval"
)
TRANCEPTION_AUTHORS = ("Pascal Notin", "Mafalda Dias", "Jonathan Frazer",
                       "Javier Marchena-Hurtado", "Aidan Gomez", "Debora S. Marks", "Yarin Gal")  # fmt: skip
ABSTRACT = "We study a problem in depth and report results on three benchmarks. " * 2


def _seed() -> dict[str, PaperRecord]:
    return {r.title: r for r in seed_records()}


def _papers(items: list[PaperRecord | Rejected]) -> list[PaperRecord]:
    return [r for r in items if isinstance(r, PaperRecord)]


def _rejected(items: list[PaperRecord | Rejected]) -> list[tuple[int, int | None, str, str]]:
    return [(r.position, r.line, r.field, r.reason) for r in items if isinstance(r, Rejected)]


# --- clean_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<p>One.</p><p>Two.</p>", "One. Two."),
        ("line<br>break<br/>here<BR />end", "line break here end"),
        ("H<sub>2</sub>O is <b>wet</b>", "H2O is wet"),
        ('See <a href="https://x.org/p">the page</a>.', "See the page."),
        ("3&times; faster &amp; smaller &lt;b&gt;", "3\u00d7 faster & smaller <b>"),
        ("&#233;t&#xE9; &nbsp;here", "été here"),
        ("<jats:p>A <jats:italic>JATS</jats:italic> abstract</jats:p>", "A JATS abstract"),
        ("before<!-- a comment -->after", "before after"),
        ("  wrapped\n  title\twith   spaces ", "wrapped title with spaces"),
    ],
)
def test_clean_text_strips_markup(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    "plain",
    [
        "the concept of ``capacity density'' as a new metric",
        r"Our method, \textbf{Varco Arena}, provides",
        r"merely 0.07\% away from the optimum",
        "significant with p < 0.05 and p<0.01",
        "for all n<k and k>m the bound holds",
        "a <= b >= c, x << y >> z, <-> arrows",
        "AT&T and R&D; &copy without a semicolon; 5 & 6",
        "$0<\\lambda<\\theta<1$",
    ],
)
def test_clean_text_keeps_plain_text(plain: str) -> None:
    assert clean_text(plain) == plain


def test_clean_text_changes_no_seed_title_or_abstract_beyond_whitespace() -> None:
    records = seed_records()
    assert len(records) == 77
    for record in records:
        assert clean_text(record.title) == squash_whitespace(record.title) == record.title
        assert clean_text(record.abstract) == squash_whitespace(record.abstract) == record.abstract


def test_every_seed_record_passes_validation() -> None:
    assert [check_record(r) for r in seed_records()] == [None] * 77


def test_text_urls_finds_urls_in_words_and_in_tag_attributes() -> None:
    raw = 'Code: <a href="https://github.com/a/b?x=1&amp;y=2">here</a>; demo https://x.org/p.'
    assert text_urls(raw) == ["https://x.org/p", "https://github.com/a/b?x=1&y=2"]
    assert text_urls("no links at all") == []


def test_merge_links_keeps_each_url_once_in_order() -> None:
    merged = merge_links(
        Links(code=["https://github.com/a/b"], pdf=[" https://arxiv.org/pdf/1 ", ""]),
        Links(
            code=["https://github.com/a/b", "https://github.com/c/d"], models=["https://hf.co/m"]
        ),
    )
    assert merged == Links(
        code=["https://github.com/a/b", "https://github.com/c/d"],
        models=["https://hf.co/m"],
        pdf=["https://arxiv.org/pdf/1"],
    )


# --- check_record ----------------------------------------------------------------------------

BASE = PaperRecord(
    title="A Title",
    abstract=ABSTRACT,
    links=Links(code=["https://github.com/a/b"]),
    source=Source(file="f.jsonl", position=1, format="jsonl"),
    authors=("Ada Lovelace",),
    arxiv_id="2401.01234",
)


def _with(**changes: object) -> PaperRecord:
    return msgspec.structs.replace(BASE, **changes)


def test_check_record_accepts_values_at_the_limits() -> None:
    at_limits = _with(
        title="t" * TITLE_MAX,
        abstract="a" * ABSTRACT_MAX,
        authors=("x" * AUTHOR_MAX,) * AUTHORS_MAX,
        links=Links(project=["https://x.org/" + "p" * (URL_MAX - 14)]),
        arxiv_id=None,
    )
    assert len(at_limits.links.project[0]) == URL_MAX
    assert check_record(at_limits) is None
    assert check_record(_with(title="Tabs\tand\nnewlines\rare fine")) is None


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"title": ""}, "title", "missing or empty"),
        ({"title": "  "}, "title", "missing or empty"),
        ({"abstract": ""}, "abstract", "missing or empty"),
        ({"title": "t" * 1001}, "title", "1001 characters, more than the limit of 1000"),
        ({"abstract": "a" * 100_001}, "abstract", "100001 characters, more than the limit of 100000"),
        ({"authors": ("A",) * 1001}, "authors", "1001 authors, more than the limit of 1000"),
        ({"authors": ("A", "x" * 301)}, "authors[1]", "301 characters, more than the limit of 300"),
        ({"authors": ("A", "")}, "authors[1]", "missing or empty"),
        ({"links": Links(pdf=["https://x.org/" + "p" * 1987])}, "links.pdf[0]",
         "2001 characters, more than the limit of 2000"),
        ({"links": Links(project=["javascript:alert(1)"])}, "links.project[0]",
         "not an http(s) URL: 'javascript:alert(1)'"),
        ({"title": "Bell \x07 here"}, "title", "control character U+0007 at offset 5"),
        ({"abstract": "ok" + "\x00"}, "abstract", "control character U+0000 at offset 2"),
        ({"authors": ("Ada\x1bLovelace",)}, "authors[0]", "control character U+001B at offset 3"),
        ({"title": "delete\x7f"}, "title", "control character U+007F at offset 6"),
        ({"abstract": "next line\x85"}, "abstract", "control character U+0085 at offset 9"),
        ({"links": Links(code=["https://x.org/\x01"])}, "links.code[0]",
         "control character U+0001 at offset 14"),
        ({"arxiv_id": "arXiv:2401.01234"}, "arxiv_id",
         "'arXiv:2401.01234' is not an arXiv id (like 2401.01234 or hep-th/9901001)"),
    ],
)  # fmt: skip
def test_check_record_names_the_field_and_reason(
    changes: dict[str, object], field: str, reason: str
) -> None:
    assert check_record(_with(**changes)) == (field, reason)


def test_control_characters_are_exactly_unicode_category_cc() -> None:
    for code in range(0x300):
        char = chr(code)
        flagged = check_record(_with(title=f"T{char}")) is not None
        assert flagged == (unicodedata.category(char) == "Cc" and char not in "\t\n\r"), hex(code)


@pytest.mark.parametrize(
    "arxiv_id",
    ["2401.01234", "2401.01234v12", "0704.0001", "1501.00001", "hep-th/9901001",
     "hep-th/9711200v3", "math.GT/0309136", "cond-mat/0102536v1"],
)  # fmt: skip
def test_real_arxiv_ids_pass(arxiv_id: str) -> None:
    assert check_record(_with(arxiv_id=arxiv_id)) is None


@pytest.mark.parametrize(
    "arxiv_id",
    ["2401.123", "2401.123456", "24010.1234", "2401.01234v", "hep-th/990100", "HEP-TH/9901001",
     "http://arxiv.org/abs/2401.01234", " 2401.01234", ""],
)  # fmt: skip
def test_other_arxiv_ids_fail(arxiv_id: str) -> None:
    problem = check_record(_with(arxiv_id=arxiv_id))
    assert problem is not None
    assert problem[0] == "arxiv_id"


# --- JSON Lines ------------------------------------------------------------------------------


def test_jsonl_sample_maps_every_field() -> None:
    seed = _seed()
    first, honesty, tranception = parse_jsonl(DATA / "papers_sample.jsonl")
    assert isinstance(first, PaperRecord)
    assert first.title == "Attention Is All You Need"
    assert first.abstract.startswith("The dominant sequence transduction models are based on")
    assert first.abstract.endswith("requiring significantly less time to train.")
    assert first.links == Links()
    assert first.authors == ()
    assert first.published is None
    assert first.arxiv_id is None
    assert first.source == Source(file="papers_sample.jsonl", position=1, format="jsonl")

    assert isinstance(honesty, PaperRecord)
    assert honesty.title == "Alignment for Honesty"
    assert honesty.abstract == seed["Alignment for Honesty"].abstract
    assert honesty.links == Links(
        code=["https://github.com/GAIR-NLP/alignment-for-honesty"],
        pdf=["https://arxiv.org/pdf/2312.07000"],
    )
    assert honesty.authors == ("Yuqing Yang", "Ethan Chern", "Xipeng Qiu", "Graham Neubig",
                               "Pengfei Liu")  # fmt: skip
    assert honesty.published == date(2023, 12, 12)
    assert honesty.arxiv_id == "2312.07000"
    assert honesty.source == Source(file="papers_sample.jsonl", position=2, format="jsonl")
    assert tranception == seed[TRANCEPTION]


def test_an_exported_paper_loads_back_unchanged(tmp_path: Path) -> None:
    seed = _seed()
    exported = [
        {
            **msgspec.to_builtins(record),
            "id": "x",
            "topics": [],
            "created_at": "2026-01-01T00:00:00Z",
        }
        for record in seed.values()
    ]
    path = write(tmp_path / "export.jsonl", "".join(json.dumps(p) + "\n" for p in exported))
    assert list(parse_jsonl(path)) == list(seed.values())


def test_jsonl_bad_line_among_good_ones_is_rejected_alone() -> None:
    items = list(parse_jsonl(DATA / "papers_bad_line.jsonl"))
    assert [r.title for r in _papers(items)] == [
        "Attention Is All You Need",
        "Alignment for Honesty",
    ]
    assert [r.source.position for r in _papers(items)] == [1, 3]
    ((position, line, field, reason),) = _rejected(items)
    assert (position, line, field) == (2, 2, "line")
    assert reason.startswith("not valid JSON: JSON is malformed")


def test_jsonl_invalid_records_are_rejected_with_field_and_reason() -> None:
    items = list(parse_jsonl(DATA / "papers_invalid.jsonl"))
    assert _rejected(items) == [
        (2, 2, "title", "control character U+0007 at offset 20"),
        (3, 3, "title", "1005 characters, more than the limit of 1000"),
        (4, 4, "abstract", "missing or empty"),
        (5, 5, "line", "invalid UTF-8 at byte 14 of the line"),
        (6, 6, "authors", "Expected `array | null`, got `str`"),
        (7, 7, "line", "Expected `object`, got `array`"),
        (8, 8, "published", "Invalid RFC3339 encoded date"),
        (9, 9, "arxiv_id", "'arXiv:1234' is not an arXiv id (like 2401.01234 or hep-th/9901001)"),
    ]
    html, last = _papers(items)
    assert html.title == "An HTML abstract"
    assert html.abstract == (
        "We propose FastThing, a method that is 3\u00d7 faster & smaller. "
        "Our results hold for p < 0.05 on all tasks. Code: GitHub"
    )
    assert html.links == Links(code=["https://github.com/example/fastthing"])
    assert (last.title, last.authors, last.source.position) == ("A fine record at the end",
                                                                 ("Ada Lovelace",), 10)  # fmt: skip


def test_jsonl_skips_blank_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    record = json.dumps({"title": "T", "abstract": ABSTRACT})
    path = write(tmp_path / "bom.jsonl", f"\ufeff{record}\n\n  \n{record}\r\n")
    items = list(parse_jsonl(path))
    assert [(r.source.position, r.title) for r in _papers(items)] == [(1, "T"), (2, "T")]


def test_a_pretty_printed_object_is_not_taken_for_json_lines(tmp_path: Path) -> None:
    text = json.dumps({"title": "T", "abstract": ABSTRACT}, indent=2)
    path = write(tmp_path / "paper.json", "\n" + text)
    assert detect_format(path) == "jsonl"
    with pytest.raises(ParseError, match="pretty-printed JSON object, not JSON Lines") as caught:
        list(read_records(path))
    assert caught.value.line == 2


def test_truncated_jsonl_raises_at_the_last_line() -> None:
    path = DATA / "papers_truncated.jsonl"
    records = parse_jsonl(path)
    assert next(records).title == "Attention Is All You Need"  # type: ignore[union-attr]
    with pytest.raises(ParseError) as caught:
        next(records)
    assert caught.value.line == 2
    assert caught.value.reason == "the file ends inside a record (Input data was truncated)"


# --- JSON arrays -----------------------------------------------------------------------------


def test_json_array_sample_maps_every_field() -> None:
    seed = _seed()
    magpie, gear = parse_json_array(DATA / "papers_sample.json")
    assert isinstance(magpie, PaperRecord)
    assert isinstance(gear, PaperRecord)
    magpie_title = (
        "Magpie: Alignment Data Synthesis from Scratch by Prompting Aligned LLMs with Nothing"
    )
    assert magpie.title == magpie_title
    assert magpie.abstract == seed[magpie_title].abstract
    assert magpie.links == Links()
    assert magpie.authors == ("Zhangchen Xu", "Fengqing Jiang", "Luyao Niu", "Yuntian Deng",
                              "Radha Poovendran", "Yejin Choi", "Bill Yuchen Lin")  # fmt: skip
    assert magpie.published == date(2024, 6, 12)
    assert magpie.arxiv_id == "2406.08464"
    assert magpie.source == Source(file="papers_sample.json", position=1, format="json")
    assert gear.title.startswith("GEAR: An Efficient KV Cache Compression")
    assert gear.links == Links(
        code=["https://github.com/HaoKang-Timmy/GEAR"], pdf=["https://arxiv.org/pdf/2403.05527"]
    )
    assert gear.authors[0] == "Hao Kang"
    assert len(gear.authors) == 7
    assert gear.published == date(2024, 3, 8)
    assert gear.arxiv_id == "2403.05527v2"
    assert gear.source == Source(file="papers_sample.json", position=2, format="json")


def test_truncated_json_array_raises_with_the_record_number() -> None:
    records = parse_json_array(DATA / "papers_truncated.json")
    assert next(records).title.startswith("Magpie")  # type: ignore[union-attr]
    with pytest.raises(ParseError) as caught:
        next(records)
    assert caught.value.line == 2  # for a JSON array: the record where parsing stopped
    assert caught.value.reason == (
        "the JSON array breaks off or is malformed in record 2 (parse error: premature EOF); "
        "1 complete record(s) before it"
    )


def test_json_array_items_that_are_not_objects_are_rejected(tmp_path: Path) -> None:
    good = {"title": "T", "abstract": ABSTRACT}
    path = write(tmp_path / "mixed.json", json.dumps([good, 42, {**good, "links": {"code": "x"}}]))
    items = list(parse_json_array(path))
    assert _rejected(items) == [
        (2, None, "record", "Expected `object`, got `int`"),
        (3, None, "links.code", "Expected `array`, got `str`"),
    ]
    assert len(_papers(items)) == 1


def test_json_array_syntax_error_in_the_middle_is_a_parse_error(tmp_path: Path) -> None:
    good = json.dumps({"title": "T", "abstract": ABSTRACT})
    path = write(tmp_path / "bad.json", f"[{good}, {good} {good}]")
    with pytest.raises(ParseError, match="in record 3") as caught:
        list(parse_json_array(path))
    assert caught.value.line == 3


def test_json_parser_refuses_a_file_that_is_not_an_array(tmp_path: Path) -> None:
    path = write(tmp_path / "object.json", '{"title": "T"}')
    with pytest.raises(ParseError, match="expected a JSON array"):
        list(parse_json_array(path))


def test_empty_json_array_has_no_records(tmp_path: Path) -> None:
    assert list(parse_json_array(write(tmp_path / "empty.json", " [ ]\n"))) == []


def assert_is_tranception(record: PaperRecord | Rejected) -> PaperRecord:
    """The Tranception paper as both API sources describe it, matching the seed listing."""
    assert isinstance(record, PaperRecord)
    assert record.title == TRANCEPTION
    assert record.abstract == _seed()[TRANCEPTION].abstract
    assert record.authors == TRANCEPTION_AUTHORS
    assert record.published == date(2022, 5, 27)
    assert record.arxiv_id == "2205.13760"
    assert record.links == Links(
        code=["https://github.com/OATML-Markslab/Tranception"],
        pdf=["https://arxiv.org/pdf/2205.13760"],
    )
    return record


# --- Hugging Face daily papers ---------------------------------------------------------------


def test_hf_daily_sample_maps_every_field() -> None:
    first, magpie, fineweb = parse_hf_daily(DATA / "hf_daily_sample.json")
    tranception = assert_is_tranception(first)
    assert tranception.source == Source(
        file="hf_daily_sample.json", position=1, format="hf-daily", listing_date="2025-03-11"
    )

    assert isinstance(magpie, PaperRecord)
    assert magpie.title.endswith("by Prompting Aligned LLMs with Nothing")
    assert "\n" not in magpie.title
    assert magpie.authors == ("Zhangchen Xu", "Fengqing Jiang", "Luyao Niu", "Yuntian Deng",
                              "Radha Poovendran", "Yejin Choi", "Bill Yuchen Lin")  # fmt: skip
    assert magpie.links == Links(
        code=["https://github.com/magpie-align/magpie"],
        project=["https://magpie-align.github.io/"],
        pdf=["https://arxiv.org/pdf/2406.08464"],
    )
    assert (magpie.published, magpie.arxiv_id) == (date(2024, 6, 12), "2406.08464")
    assert magpie.source.listing_date == "2024-06-13"

    assert isinstance(fineweb, PaperRecord)
    assert (
        fineweb.title == "The FineWeb Datasets: Decanting the Web for the Finest Text Data at Scale"
    )
    assert fineweb.abstract.endswith("https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu.")
    assert fineweb.authors[1] == "Hynek Kydlíček"
    assert len(fineweb.authors) == 8
    assert fineweb.links == Links(
        datasets=[
            "https://huggingface.co/datasets/HuggingFaceFW/fineweb",
            "https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu",
        ],
        pdf=["https://arxiv.org/pdf/2406.17557"],
    )
    assert (fineweb.published, fineweb.arxiv_id) == (date(2024, 6, 25), "2406.17557")
    assert fineweb.source == Source(
        file="hf_daily_sample.json", position=3, format="hf-daily", listing_date="2024-06-26"
    )


def test_hf_daily_invalid_items_are_rejected_with_field_and_reason() -> None:
    items = list(parse_hf_daily(DATA / "hf_daily_invalid.json"))
    assert [r.arxiv_id for r in _papers(items)] == ["2406.17557"]
    assert _rejected(items) == [
        (2, None, "paper", "missing"),
        (3, None, "paper.authors", "Expected `array`, got `str`"),
        (4, None, "abstract", "missing or empty"),
        (5, None, "paper.id", "missing"),
    ]


def test_truncated_hf_daily_raises_with_the_record_number() -> None:
    with pytest.raises(ParseError, match=r"in record 2 \(parse error: premature EOF\)") as caught:
        list(parse_hf_daily(DATA / "hf_daily_truncated.json"))
    assert caught.value.line == 2


# --- arXiv Atom ------------------------------------------------------------------------------


def test_arxiv_atom_sample_maps_every_field() -> None:
    first, maldacena, densing = parse_arxiv_atom(DATA / "arxiv_sample.atom")
    tranception = assert_is_tranception(first)  # its code link comes from arxiv:comment
    assert tranception.source == Source(file="arxiv_sample.atom", position=1, format="arxiv-atom")

    assert isinstance(maldacena, PaperRecord)
    assert maldacena.title == "The Large N Limit of Superconformal Field Theories and Supergravity"
    assert maldacena.arxiv_id == "hep-th/9711200"
    assert maldacena.published == date(1997, 11, 27)
    assert maldacena.authors == ("Juan M. Maldacena",)
    assert "small when $g_s N < \\infty$ but $1/N \\to 0$." in maldacena.abstract
    assert maldacena.links == Links(pdf=["https://arxiv.org/pdf/hep-th/9711200"])  # no DOI, no abs

    assert isinstance(densing, PaperRecord)
    assert densing.abstract == _seed()["Densing Law of LLMs"].abstract
    assert (densing.arxiv_id, densing.published) == ("2412.04315", date(2024, 12, 5))
    assert densing.authors == ("Chaojun Xiao", "Jie Cai", "Maosong Sun")
    assert densing.links == Links(
        models=["https://huggingface.co/openbmb"],
        datasets=["https://huggingface.co/datasets/openbmb/densing-law"],
        pdf=["https://arxiv.org/pdf/2412.04315"],
    )
    assert densing.source.position == 3


def test_arxiv_atom_invalid_entries_are_rejected_with_field_and_reason() -> None:
    items = list(parse_arxiv_atom(DATA / "arxiv_invalid.atom"))
    assert _rejected(items) == [
        (1, None, "id", "the arXiv API reported an error: incorrect id format for 1234.123456"),
        (2, None, "abstract", "missing or empty"),
        (3, None, "published", "'last Tuesday' is not an ISO date"),
        (4, None, "arxiv_id",
         "'http://example.org/papers/42' is not an arXiv id (like 2401.01234 or hep-th/9901001)"),
    ]  # fmt: skip
    (fine,) = _papers(items)
    assert (fine.title, fine.arxiv_id, fine.authors) == (
        "A fine entry after the bad ones",
        "2401.00004",
        ("Grace Hopper",),
    )
    assert fine.links == Links(pdf=["https://arxiv.org/pdf/2401.00004"])
    assert fine.source.position == 5


def test_truncated_atom_raises_with_the_line_where_parsing_stopped() -> None:
    records = parse_arxiv_atom(DATA / "arxiv_truncated.atom")
    assert next(records).title == TRANCEPTION  # type: ignore[union-attr]
    with pytest.raises(ParseError) as caught:
        next(records)
    assert caught.value.line == 77
    assert caught.value.reason == (
        "the XML breaks off or is malformed: no element found: line 77, column 31"
    )


def test_atom_with_a_dtd_is_refused() -> None:
    with pytest.raises(ParseError, match="refused: DTDForbidden") as caught:
        list(parse_arxiv_atom(DATA / "arxiv_doctype.atom"))
    assert caught.value.line == 2


def test_atom_parser_refuses_another_xml_document(tmp_path: Path) -> None:
    path = write(tmp_path / "rss.xml", '<?xml version="1.0"?>\n<rss version="2.0"></rss>\n')
    with pytest.raises(ParseError, match="expected an Atom <feed>"):
        list(parse_arxiv_atom(path))


# --- one paper, three sources ----------------------------------------------------------------


def test_tranception_from_three_sources_has_one_title_abstract_and_id() -> None:
    listing = _seed()[TRANCEPTION]
    hf = _papers(list(parse_hf_daily(DATA / "hf_daily_sample.json")))[0]
    atom = _papers(list(parse_arxiv_atom(DATA / "arxiv_sample.atom")))[0]
    assert listing.title == hf.title == atom.title
    assert listing.abstract == hf.abstract == atom.abstract
    assert hf.arxiv_id == atom.arxiv_id == "2205.13760"
    assert hf.links == atom.links


# --- detection and file selection ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("papers_sample.jsonl", "jsonl"),
        ("papers_bad_line.jsonl", "jsonl"),
        ("papers_invalid.jsonl", "jsonl"),
        ("papers_truncated.jsonl", "jsonl"),
        ("papers_sample.json", "json"),
        ("papers_truncated.json", "json"),
        ("hf_daily_sample.json", "hf-daily"),
        ("hf_daily_invalid.json", "hf-daily"),
        ("hf_daily_truncated.json", "hf-daily"),
        ("arxiv_sample.atom", "arxiv-atom"),
        ("arxiv_invalid.atom", "arxiv-atom"),
        ("arxiv_truncated.atom", "arxiv-atom"),
        ("arxiv_doctype.atom", "arxiv-atom"),
    ],
)
def test_detects_each_sample_format(name: str, fmt: str) -> None:
    assert detect_format(DATA / name) == fmt


def test_detection_of_the_seed_listing_is_unchanged() -> None:
    assert detect_format(SEED_LISTING) == "listing"


def test_detection_tolerates_a_byte_order_mark_and_leading_space(tmp_path: Path) -> None:
    item = json.loads((DATA / "hf_daily_sample.json").read_text(encoding="utf-8"))[0]
    path = tmp_path / "hf.json"
    path.write_bytes(b"\xef\xbb\xbf \n" + json.dumps([item]).encode())
    assert detect_format(path) == "hf-daily"
    assert [r.arxiv_id for r in _papers(list(read_records(path)))] == ["2205.13760"]


@pytest.mark.parametrize(
    "text",
    ["<html><body>not a feed</body></html>", '{"not": "a paper"}', ""],
)
def test_unrecognised_content_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "unknown.dat", text)
    with pytest.raises(ParseError, match="unrecognised format"):
        detect_format(path)


def test_read_records_detects_or_takes_the_given_format() -> None:
    assert [r.source.format for r in _papers(list(read_records(DATA / "papers_sample.json")))] == [
        "json",
        "json",
    ]
    forced = list(read_records(DATA / "hf_daily_sample.json", "json"))
    assert {r.field for r in forced if isinstance(r, Rejected)} == {"abstract"}
    with pytest.raises(ParseError, match="unknown format 'yaml'"):
        read_records(DATA / "papers_sample.json", "yaml")


def test_parsers_are_registered_under_their_names() -> None:
    assert set(PARSERS) == {"listing", "jsonl", "json", "hf-daily", "arxiv-atom"}


def test_expand_paths_takes_every_paper_file_of_a_directory(tmp_path: Path) -> None:
    for name in ["a.txt", "b.jsonl", "c.json", "d.xml", "e.atom", "notes.md", "f.csv"]:
        write(tmp_path / name, "x")
    assert [p.name for p in expand_paths([tmp_path])] == [
        "a.txt",
        "b.jsonl",
        "c.json",
        "d.xml",
        "e.atom",
    ]
