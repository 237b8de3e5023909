"""Topic taxonomy (seeds/topics.toml) and the phrase classifier in service.ingest.topics."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from service.ingest import topics
from service.ingest.topics import (
    MAX_TOPICS,
    TaxonomyError,
    TopicAssignment,
    TopicDefinition,
    classify,
    load_taxonomy,
)

ROOT = Path(__file__).parent.parent
TAXONOMY_PATH = ROOT / "seeds" / "topics.toml"
_SEED = ROOT / "seeds" / "daily-papers-mar-11.txt"
SEED_PATH = _SEED if _SEED.exists() else Path("/work/shared/seeds/000_ad4db6401fa38389.txt")
CHROME_PARAGRAPHS = 5
SEED_PAPER_COUNT = 77


def _seed_papers() -> list[tuple[str, str]]:
    """(title, abstract) pairs: paragraphs split on blank lines, page chrome skipped."""
    text = SEED_PATH.read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    body = paragraphs[CHROME_PARAGRAPHS:]
    assert len(body) % 2 == 0, "every title needs an abstract"
    return [(body[i], body[i + 1]) for i in range(0, len(body), 2)]


SEED_PAPERS = _seed_papers()
TAXONOMY = load_taxonomy(TAXONOMY_PATH)


def _slugs(title: str, abstract: str = "") -> list[str]:
    return [a.slug for a in classify(title, abstract, TAXONOMY)]


def _seed(title_prefix: str) -> tuple[str, str]:
    matches = [paper for paper in SEED_PAPERS if paper[0].startswith(title_prefix)]
    assert len(matches) == 1, f"expected one seed paper titled {title_prefix!r}..."
    return matches[0]


# --- the real taxonomy -------------------------------------------------------------------------


def test_real_taxonomy_loads() -> None:
    slugs = [topic.slug for topic in TAXONOMY]
    assert 10 <= len(TAXONOMY) <= 16
    assert len(set(slugs)) == len(slugs)
    for topic in TAXONOMY:
        assert isinstance(topic, TopicDefinition)
        assert topic.label
        assert topic.description
        assert topic.phrases
    assert {
        "alignment",
        "scaling-laws",
        "distributed-training",
        "efficient-inference",
        "long-context",
        "multilingual",
        "evaluation",
        "instruction-tuning",
        "biology",
        "multimodal",
        "safety",
    } <= set(slugs)


def test_seed_file_has_77_papers() -> None:
    assert len(SEED_PAPERS) == SEED_PAPER_COUNT


@pytest.mark.parametrize(("title", "abstract"), SEED_PAPERS, ids=[t[:40] for t, _ in SEED_PAPERS])
def test_every_seed_paper_gets_one_to_three_topics(title: str, abstract: str) -> None:
    assignments = classify(title, abstract, TAXONOMY)
    assert 1 <= len(assignments) <= MAX_TOPICS
    scores = [a.score for a in assignments]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 1 for s in scores)
    assert all(a.method == "phrases" for a in assignments)
    assert len({a.slug for a in assignments}) == len(assignments)


SPOT_CHECKS: list[tuple[str, set[str], set[str]]] = [
    # (title prefix, slugs that must be assigned, slugs that must not be)
    ("SnapKV:", {"efficient-inference"}, set()),
    ("GEAR: An Efficient KV Cache Compression", {"efficient-inference"}, set()),
    ("Effectively Compress KV Heads", {"efficient-inference"}, set()),
    ("EMS: Adaptive Evict-then-Merge", {"efficient-inference"}, set()),
    ("Embed-Search-Align: DNA Sequence Alignment", {"biology"}, {"alignment"}),
    ("Find Central Dogma Again", {"biology"}, {"alignment"}),
    ("Tranception: protein fitness", {"biology"}, {"alignment", "efficient-inference"}),
    ("ProLLaMA:", {"biology"}, set()),
    ("GENERator:", {"biology"}, set()),
    ("GPipe:", {"distributed-training"}, set()),
    ("CO2: Efficient Distributed Training", {"distributed-training"}, set()),
    ("ByteScale:", {"distributed-training", "long-context"}, set()),
    ("Scaling Laws for Downstream Task Performance", {"scaling-laws"}, {"alignment"}),
    ("Physics of Language Models: Part 3.3", {"scaling-laws"}, set()),
    ("Predictable Scale:", {"scaling-laws"}, set()),
    ("MEXA: Multilingual Evaluation", {"multilingual", "evaluation"}, {"alignment"}),
    ("BayLing:", {"multilingual"}, {"alignment"}),
    ("A Novel Paradigm Boosting Translation", {"multilingual"}, {"alignment"}),
    ("The Role of Language Imbalance", {"multilingual"}, {"alignment"}),
    ("Magpie: Alignment Data Synthesis", {"alignment", "instruction-tuning"}, set()),
    ("The Hitchhiker's Guide to Human Alignment", {"alignment"}, set()),
    ("Large Language Model Alignment: A Survey", {"alignment"}, set()),
    ("LongPO:", {"long-context", "alignment"}, set()),
    ("LM-Infinite:", {"long-context"}, set()),
    ("AlignGPT:", {"multimodal"}, {"alignment"}),
    ("On the Scalability of Diffusion-based", {"multimodal", "scaling-laws"}, {"alignment"}),
    ("Catastrophic Jailbreak", {"safety"}, set()),
    ("Turing Representational Similarity", {"human-cognition"}, {"alignment"}),
    ("Instruction-tuning Aligns LLMs to the Human Brain", {"human-cognition"}, {"alignment"}),
    ("ZIP-FIT:", {"instruction-tuning"}, {"alignment"}),
    ("Varco Arena:", {"evaluation"}, {"alignment"}),
    ("EvoCodeBench:", {"evaluation", "reasoning-code-tools"}, {"alignment"}),
    ("Dated Data:", {"instruction-tuning"}, {"alignment"}),
    ("APE: Faster and Longer", {"in-context-learning"}, {"alignment"}),
    ("Improving In-context Learning via Bidirectional", {"in-context-learning"}, {"alignment"}),
]


@pytest.mark.parametrize(
    ("prefix", "wanted", "unwanted"), SPOT_CHECKS, ids=[s[0] for s in SPOT_CHECKS]
)
def test_spot_checks(prefix: str, wanted: set[str], unwanted: set[str]) -> None:
    slugs = set(_slugs(*_seed(prefix)))
    assert wanted <= slugs, f"missing {wanted - slugs}, got {slugs}"
    assert not unwanted & slugs, f"unexpected {unwanted & slugs}"


def test_best_topic_first_for_clear_cases() -> None:
    assert _slugs(*_seed("GEAR:"))[0] == "efficient-inference"
    assert _slugs(*_seed("Embed-Search-Align:"))[0] == "biology"
    assert _slugs(*_seed("Vega-MT:"))[0] == "multilingual"
    assert _slugs(*_seed("Alignment for Honesty"))[0] == "alignment"


def test_unrelated_text_gets_no_topic() -> None:
    title = "A recipe for sourdough bread"
    abstract = (
        "A recipe for sourdough bread with a long fermentation: mix flour, water and salt, "
        "fold the dough every half hour, shape it, proof it overnight in the fridge and bake "
        "it in a hot Dutch oven until the crust is deep brown."
    )
    assert classify(title, abstract, TAXONOMY) == []
    assert classify("", "", TAXONOMY) == []


def test_classify_is_deterministic_and_accepts_any_sequence() -> None:
    title, abstract = _seed("Baichuan Alignment Technical Report")
    first = classify(title, abstract, TAXONOMY)
    assert first == classify(title, abstract, list(TAXONOMY))
    assert first == classify(title, abstract, TAXONOMY)


# --- matching rules, on a tiny inline taxonomy -------------------------------------------------

TOY = (
    TopicDefinition(
        slug="llm-alignment",
        label="Alignment",
        description="Preference alignment.",
        phrases=("alignment", "preference optimization"),
        exclude=("sequence alignment", "cross-lingual alignment"),
    ),
    TopicDefinition(
        slug="kv",
        label="KV cache",
        description="KV caches.",
        phrases=("kv cache", "scaling law"),
    ),
)


def _toy(title: str, abstract: str = "") -> list[str]:
    return [a.slug for a in classify(title, abstract, TOY)]


def test_exclude_phrases_do_not_count() -> None:
    assert _toy("DNA sequence alignment with transformers") == []
    assert _toy("Cross-lingual alignment of encoders") == []
    assert _toy("Sequence alignment and preference alignment") == ["llm-alignment"]


def test_title_hit_assigns_but_single_abstract_mention_does_not() -> None:
    assert _toy("Preference optimization for chat models") == ["llm-alignment"]
    assert _toy("A paper", "We briefly mention alignment once.") == []
    assert _toy("A paper", "alignment, alignment and more alignment") == ["llm-alignment"]


def test_plurals_hyphens_and_word_boundaries() -> None:
    assert _toy("Compressing KV caches") == ["kv"]
    assert _toy("Compressing KV-cache entries") == ["kv"]
    assert _toy("Scaling laws for everything") == ["kv"]
    assert _toy("Unalignments of kv cacheless scaling lawful things") == []


def test_assignment_shape() -> None:
    result = classify("KV cache alignment", "kv cache kv cache", TOY)
    assert [a.slug for a in result] == ["kv", "llm-alignment"]
    assert all(isinstance(a, TopicAssignment) and 0 < a.score <= 1 for a in result)
    assert result[0].score > result[1].score


# --- loader errors -----------------------------------------------------------------------------

GOOD_TOPIC = """
[[topics]]
slug = "{slug}"
label = "A label"
description = "A description."
phrases = ["a phrase"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_loader_accepts_minimal_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_TOPIC.format(slug="one") + GOOD_TOPIC.format(slug="two-2"))
    assert [t.slug for t in load_taxonomy(path)] == ["one", "two-2"]


def test_duplicate_slug_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_TOPIC.format(slug="same") + GOOD_TOPIC.format(slug="same"))
    with pytest.raises(TaxonomyError, match="duplicate slug") as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_TOPIC.format(slug="one") + 'colour = "blue"\n')
    with pytest.raises(TaxonomyError, match="colour") as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "version = 2\n" + GOOD_TOPIC.format(slug="one"))
    with pytest.raises(TaxonomyError, match="version") as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GOOD_TOPIC.format(slug="Bad Slug"), "bad slug"),
        (GOOD_TOPIC.format(slug="trailing-"), "bad slug"),
        (GOOD_TOPIC.format(slug="one").replace('["a phrase"]', "[]"), "empty phrases"),
        (GOOD_TOPIC.format(slug="one").replace('["a phrase"]', '["KV Cache"]'), "lowercase"),
        (GOOD_TOPIC.format(slug="one").replace('["a phrase"]', '["x", "x"]'), "duplicate"),
        (GOOD_TOPIC.format(slug="one") + 'exclude = ["a phrase"]\n', "also listed in exclude"),
        (GOOD_TOPIC.format(slug="one").replace('"A label"', '""'), "empty label"),
        (GOOD_TOPIC.format(slug="one").replace("phrases", "phrase"), "phrase"),
        ("topics = []\n", "no topics"),
        ("[[topics]\nslug = 1\n", "invalid TOML"),
    ],
)
def test_bad_files_are_rejected(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TaxonomyError, match=re.escape(problem)) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_taxonomy_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(TaxonomyError, match="cannot read") as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_ascii_text_tokenizes_as_the_unicode_tokenizer_would() -> None:
    # The fast path is private; its equivalence with the general tokenizer is the point.
    rng = random.Random(7)  # noqa: S311 (test data, not secrets)
    alphabet = [chr(code) for code in range(128)]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))).lower()
        assert topics._ASCII_TOKEN.findall(text) == topics._TOKEN.findall(text), repr(text)
