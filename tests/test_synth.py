"""The synthetic corpus generator (service.ingest.synth) behind `papers synth`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from service.ingest import synth
from service.ingest.jsonl import parse_jsonl
from service.ingest.listing import parse_listing
from service.ingest.records import PaperRecord
from service.ingest.text import find_urls, title_key
from service.ingest.topics import classify, load_taxonomy

ROOT = Path(__file__).parent.parent
SEED_LISTING = ROOT / "seeds" / "daily-papers-mar-11.txt"
TAXONOMY = ROOT / "seeds" / "topics.toml"
KEYS = {"title", "abstract", "authors", "published", "arxiv_id", "links"}
LINK_KINDS = ["code", "models", "datasets", "project", "pdf"]
ARXIV_ID = re.compile(r"^(\d{2})(\d{2})\.(\d{5})$")


def _seed_records() -> list[PaperRecord]:
    records = [r for r in parse_listing(SEED_LISTING) if isinstance(r, PaperRecord)]
    assert len(records) == 77
    return records


def _generate(count: int, seed: int) -> str:
    out = io.StringIO()
    assert synth.synthesize(count, seed, SEED_LISTING, out) == count
    return out.getvalue()


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    """2000 papers of seed 1, parsed."""
    return [json.loads(line) for line in _generate(2000, 1).splitlines()]


def test_same_seed_gives_identical_bytes() -> None:
    assert _generate(300, 7) == _generate(300, 7)


def test_different_seeds_give_different_corpora() -> None:
    first, second = _generate(200, 7).splitlines(), _generate(200, 8).splitlines()
    titles = {json.loads(line)["title"] for line in first}
    assert sum(json.loads(line)["title"] in titles for line in second) < 20
    assert first != second


def test_a_prefix_of_a_corpus_is_the_smaller_corpus() -> None:
    """Papers are drawn one after another: `--count` only says where to stop."""
    assert _generate(1500, 3).startswith(_generate(100, 3))


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001])
def test_count_is_exact(count: int) -> None:
    text = _generate(count, 5)
    assert text.count("\n") == count
    assert not text or text.endswith("\n")


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        synth.synthesize(-1, 1, SEED_LISTING, io.StringIO())


def test_every_line_has_the_per_paper_schema(corpus: list[dict[str, Any]]) -> None:
    for paper in corpus:
        assert set(paper) == KEYS
        assert isinstance(paper["title"], str)
        assert isinstance(paper["abstract"], str)
        assert paper["title"] == paper["title"].strip()
        assert paper["abstract"] == paper["abstract"].strip()
        assert isinstance(paper["authors"], list)
        assert 1 <= len(paper["authors"]) <= 12
        assert all(isinstance(a, str) and " " in a for a in paper["authors"])
        assert len(set(paper["authors"])) == len(paper["authors"])
        date.fromisoformat(paper["published"])
        assert list(paper["links"]) == LINK_KINDS
        assert all(isinstance(v, list) for v in paper["links"].values())
        assert all(isinstance(url, str) for v in paper["links"].values() for url in v)
        assert paper["links"]["pdf"] == [f"https://arxiv.org/pdf/{paper['arxiv_id']}"]


def test_arxiv_ids_are_unique_sequential_and_match_the_date(
    corpus: list[dict[str, Any]],
) -> None:
    ids = [paper["arxiv_id"] for paper in corpus]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    for paper in corpus:
        match = ARXIV_ID.match(paper["arxiv_id"])
        assert match, paper["arxiv_id"]
        published = date.fromisoformat(paper["published"])
        assert (published.year % 100, published.month) == (int(match[1]), int(match[2]))
    assert ids[0].endswith(".00001")
    assert ids[1].endswith(".00002")


def test_ids_continue_in_the_next_month(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "MONTH_SIZE", (3, 5))
    papers = [json.loads(line) for line in _generate(40, 2).splitlines()]
    ids = [paper["arxiv_id"] for paper in papers]
    assert len(set(ids)) == len(ids)
    months = Counter(arxiv_id[:4] for arxiv_id in ids)
    assert list(months) == sorted(months)
    assert all(3 <= n <= 5 for n in list(months.values())[:-1])
    for arxiv_id in ids:
        number = int(arxiv_id[5:])
        assert 1 <= number <= months[arxiv_id[:4]]
    dates = [paper["published"] for paper in papers]
    assert dates == sorted(dates)


def test_titles_are_unique(corpus: list[dict[str, Any]]) -> None:
    keys = [title_key(paper["title"]) for paper in corpus]
    assert len(set(keys)) == len(keys)


def test_lengths_are_realistic(corpus: list[dict[str, Any]]) -> None:
    titles = [len(paper["title"]) for paper in corpus]
    abstracts = [len(paper["abstract"]) for paper in corpus]
    assert min(titles) >= 20
    assert max(titles) <= 250
    assert min(abstracts) >= 600
    assert max(abstracts) <= 3000
    seeds = _seed_records()
    seed_title_mean = sum(len(r.title) for r in seeds) / len(seeds)
    seed_abstract_mean = sum(len(r.abstract) for r in seeds) / len(seeds)
    assert abs(sum(titles) / len(titles) - seed_title_mean) < 0.25 * seed_title_mean
    assert abs(sum(abstracts) / len(abstracts) - seed_abstract_mean) < 0.15 * seed_abstract_mean
    assert len(set(titles)) > 50  # lengths vary, not a few fixed values
    assert len(set(abstracts)) > 500


def test_abstracts_are_sentences(corpus: list[dict[str, Any]]) -> None:
    for paper in corpus:
        abstract = paper["abstract"]
        assert abstract[0].isupper() or abstract[0].isdigit(), abstract[:40]
        assert abstract[-1] in ".!?/", abstract[-40:]
        assert "  " not in abstract
        assert "\x02" not in abstract
        assert "\x03" not in abstract


def test_abstracts_are_new_text_not_copies_of_seeds(corpus: list[dict[str, Any]]) -> None:
    seeds = {record.abstract for record in _seed_records()}
    abstracts = [paper["abstract"] for paper in corpus]
    assert not seeds & set(abstracts)
    assert len(set(abstracts)) == len(abstracts)


def test_some_papers_have_code_and_abstract_urls(corpus: list[dict[str, Any]]) -> None:
    code = [paper for paper in corpus if paper["links"]["code"]]
    assert 0.15 <= len(code) / len(corpus) <= 0.25
    for paper in code:
        assert len(paper["links"]["code"]) == 1
        assert re.fullmatch(r"https://github\.com/[a-z0-9-]+/[\w.-]+", paper["links"]["code"][0])
    mentioned = [paper for paper in corpus if find_urls(paper["abstract"])]
    assert 0.05 <= len(mentioned) / len(corpus) <= 0.25
    for paper in mentioned:
        # Every URL an abstract mentions is in its links, as the loader would find it.
        listed = [url for urls in paper["links"].values() for url in urls]
        assert set(find_urls(paper["abstract"])) <= set(listed)
    # None of the seed papers' real repositories leak into the synthetic corpus.
    assert not any("THUDM" in paper["abstract"] for paper in corpus)


def test_topic_mix_follows_the_seeds(corpus: list[dict[str, Any]]) -> None:
    taxonomy = load_taxonomy(TAXONOMY)
    seed_counts: Counter[str] = Counter()
    for record in _seed_records():
        seed_counts.update(t.slug for t in classify(record.title, record.abstract, taxonomy))
    papers = corpus[:500]
    counts: Counter[str] = Counter()
    with_topic = 0
    for paper in papers:
        topics = classify(paper["title"], paper["abstract"], taxonomy)
        with_topic += bool(topics)
        counts.update(t.slug for t in topics)
    assert set(counts) == {topic.slug for topic in taxonomy}
    assert with_topic / len(papers) >= 0.8
    # Roughly the seed proportions: the seeds' most common topic is among the three most common
    # here, and each topic's share is within a factor of three of its seed share.
    assert seed_counts.most_common(1)[0][0] in [slug for slug, _ in counts.most_common(3)]
    seed_total, total = sum(seed_counts.values()), sum(counts.values())
    for slug, seed_count in seed_counts.items():
        share, seed_share = counts[slug] / total, seed_count / seed_total
        assert seed_share / 3 <= share <= seed_share * 3, slug


def test_the_jsonl_parser_reads_the_corpus_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.jsonl"
    with path.open("w", encoding="utf-8") as out:
        synth.synthesize(500, 9, SEED_LISTING, out)
    written = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records = list(parse_jsonl(path))
    assert len(records) == len(written)
    for paper, record in zip(written, records, strict=True):
        assert isinstance(record, PaperRecord), record
        assert record.title == paper["title"]
        assert record.abstract == paper["abstract"]
        assert list(record.authors) == paper["authors"]
        assert record.published == date.fromisoformat(paper["published"])
        assert record.arxiv_id == paper["arxiv_id"]
        assert {kind: getattr(record.links, kind) for kind in LINK_KINDS} == paper["links"]


def _listing(path: Path, papers: list[PaperRecord]) -> Path:
    header = "new\n\nSubscribe\n\nMar 11\n\n"
    path.write_text(header + "".join(f"{r.title}\n\n{r.abstract}\n\n" for r in papers))
    return path


@pytest.mark.parametrize("size", [1, 3])
def test_a_small_seed_listing_works(tmp_path: Path, size: int) -> None:
    listing = _listing(tmp_path / "small.txt", _seed_records()[:size])
    out = io.StringIO()
    assert synth.synthesize(60, 4, listing, out) == 60
    papers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len({title_key(p["title"]) for p in papers}) == 60
    assert len({p["abstract"] for p in papers}) == 60


def test_a_seed_listing_without_usable_papers_is_refused(tmp_path: Path) -> None:
    short = PaperRecord(
        title="A Title",
        abstract="Fifteen words are too few to learn from, although this paragraph is long enough "
        "for the listing parser.",
        links=_seed_records()[0].links,
        source=_seed_records()[0].source,
    )
    listing = _listing(tmp_path / "short.txt", [short])
    with pytest.raises(ValueError, match="no seed paper"):
        synth.synthesize(5, 1, listing, io.StringIO())


def test_output_does_not_depend_on_string_hashing() -> None:
    """Byte-identical across processes, whatever PYTHONHASHSEED (set and dict order of str)."""
    script = (
        "import hashlib, io, sys; from pathlib import Path; "
        "from service.ingest.synth import synthesize; out = io.StringIO(); "
        f"synthesize(300, 11, Path({str(SEED_LISTING)!r}), out); "
        "print(hashlib.sha256(out.getvalue().encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, check=True
        )
        digests.add(done.stdout.strip())
    in_process = hashlib.sha256(_generate(300, 11).encode()).hexdigest().encode()
    assert digests == {in_process}
