"""The seed listing parser, on the real seed file and on files that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.ingest.formats import detect_format, read_records
from service.ingest.listing import parse_listing
from service.ingest.records import PaperRecord, ParseError
from tests.conftest import SEED_LISTING, seed_paragraphs, seed_records, write

CHROME = ["new", "Get trending papers in your email inbox!", "Subscribe",
          "byAK and the research community", "Mar 11"]  # fmt: skip


def test_seed_file_yields_77_papers_with_exact_titles_and_abstracts() -> None:
    paragraphs = seed_paragraphs()
    assert paragraphs[:5] == CHROME
    expected = list(zip(paragraphs[5::2], paragraphs[6::2], strict=True))

    records = seed_records()

    assert len(records) == 77
    assert [(r.title, r.abstract) for r in records] == expected
    assert records[0].title == "Densing Law of LLMs"
    assert records[-1].title == "Alignment for Honesty"
    assert records[-1].abstract.endswith("as well as all relevant source code.")


def test_seed_file_has_no_chrome_and_knows_its_source() -> None:
    records = seed_records()
    titles = {r.title for r in records}
    assert titles.isdisjoint(CHROME)
    assert [r.source.position for r in records] == list(range(1, 78))
    assert {r.source.listing_date for r in records} == {"Mar 11"}
    assert {r.source.file for r in records} == {SEED_LISTING.name}
    assert all(r.published is None and r.arxiv_id is None and r.authors == () for r in records)


def test_links_are_extracted_without_trailing_punctuation() -> None:
    by_title = {r.title: r for r in seed_records()}
    gear = by_title[
        "GEAR: An Efficient KV Cache Compression Recipefor Near-Lossless Generative Inference of LLM"
    ]
    assert gear.links.code == ["https://github.com/HaoKang-Timmy/GEAR"]
    mexa = by_title[
        "MEXA: Multilingual Evaluation of English-Centric LLMs via Cross-Lingual Alignment"
    ]
    assert mexa.links.project == ["https://huggingface.co/spaces/cis-lmu/Mexa"]
    assert mexa.links.code == ["https://github.com/cisnlp/Mexa"]
    chatglm = next(r for t, r in by_title.items() if t.startswith("ChatGLM"))
    assert chatglm.links.models == ["https://huggingface.co/THUDM"]
    densing = by_title["Densing Law of LLMs"]
    assert densing.links.code == densing.links.models == densing.links.project == []


def test_detects_the_listing_format() -> None:
    assert detect_format(SEED_LISTING) == "listing"


def _listing(*paragraphs: str) -> str:
    return "\n\n".join([*CHROME, *paragraphs]) + "\n"


ABSTRACT = "We study a thing in depth. " * 10


def test_title_without_abstract_at_end_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.txt", _listing("A Title", ABSTRACT, "Dangling Title"))
    with pytest.raises(ParseError) as caught:
        list(parse_listing(path))
    assert caught.value.line == 15
    assert "'Dangling Title' has no abstract" in str(caught.value)
    assert str(path) in str(caught.value)


def test_abstract_without_title_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "merged.txt", _listing("A Title", ABSTRACT, ABSTRACT, "T2", ABSTRACT))
    with pytest.raises(ParseError) as caught:
        list(parse_listing(path))
    assert caught.value.line == 15
    assert "expected a paper title" in caught.value.reason
    assert "is a title missing" in caught.value.reason


def test_short_abstract_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "short.txt", _listing("A Title", "Too short."))
    with pytest.raises(ParseError, match=r"short\.txt:13: expected the abstract of 'A Title'"):
        list(parse_listing(path))


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(_listing("A Title", ABSTRACT).encode() + b"Bad \xff title\n")
    with pytest.raises(ParseError, match="invalid UTF-8") as caught:
        list(parse_listing(path))
    assert caught.value.line == 14


def test_file_without_papers_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "chrome.txt", _listing())
    with pytest.raises(ParseError, match="no papers found"):
        list(parse_listing(path))


def test_unrecognised_file_is_refused_by_detection(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.json", '{"not": "a listing"}')
    with pytest.raises(ParseError, match="unrecognised format"):
        list(read_records(path))


def test_wrapped_paragraphs_are_joined(tmp_path: Path) -> None:
    path = write(
        tmp_path / "wrapped.txt", _listing("A Long\nTitle", ABSTRACT.strip() + "\nmore words here.")
    )
    (record,) = parse_listing(path)
    assert isinstance(record, PaperRecord)
    assert record.title == "A Long Title"
    assert record.abstract.endswith("in depth. more words here.")
