"""Topic taxonomy (loaded from `seeds/topics.toml`) and a phrase-based topic classifier.

Matching rules, shared by the taxonomy file and the classifier:

* Text and phrases are compared case-insensitively after folding hyphens and dashes to
  spaces and collapsing whitespace, so `long-context` matches "long context" and "Long-Context".
* A phrase matches whole words only, and also its simple plural (a trailing `s` or `es`):
  `kv cache` matches "KV caches", but `law` never matches "lawful".
* Before a topic's phrases are matched, every occurrence of that topic's `exclude` phrases is cut
  out of the text, so "DNA sequence alignment" cannot count as evidence for LLM alignment.
* A phrase found in the title weighs `TITLE_WEIGHT`; each occurrence in the abstract weighs 1, up
  to `ABSTRACT_CAP` occurrences per phrase. A topic needs `MIN_EVIDENCE` in total, and must reach
  `RELATIVE_CUTOFF` of the best topic's evidence; at most `MAX_TOPICS` topics are returned.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import msgspec

TITLE_WEIGHT = 3.0
ABSTRACT_CAP = 3
MIN_EVIDENCE = 3.0
RELATIVE_CUTOFF = 0.3
MAX_TOPICS = 3
# evidence / (evidence + SCORE_HALF) maps evidence onto (0, 1): a lone title hit scores 0.33.
SCORE_HALF = 6.0
METHOD = "phrases"

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DASHES = re.compile(r"[-\u2010\u2011\u2012\u2013\u2014\u2212]")
_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w")
# Replaces excluded spans: not a word character and not a space, so no phrase can match across it.
_CUT = "\n"


class TopicDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One curated topic: a URL-safe slug, a human label, and the phrases that signal it."""

    slug: str
    label: str
    description: str
    phrases: tuple[str, ...]
    exclude: tuple[str, ...] = ()


class TopicAssignment(msgspec.Struct, frozen=True):
    """A topic given to a paper; `score` in (0, 1] is a relative confidence."""

    slug: str
    score: float
    method: str


class TaxonomyError(ValueError):
    """The taxonomy file cannot be used; the message names the file and the problem."""


class _TaxonomyFile(msgspec.Struct, forbid_unknown_fields=True):
    topics: tuple[TopicDefinition, ...]


def normalize(text: str) -> str:
    """Fold text for matching: NFKC, lowercase, hyphens and dashes to spaces, single spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return _WS.sub(" ", _DASHES.sub(" ", folded)).strip()


def load_taxonomy(path: Path) -> tuple[TopicDefinition, ...]:
    """Read and validate a topics TOML file; raise `TaxonomyError` naming the file if unusable."""
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{path}: invalid TOML: {exc}") from exc
    try:
        parsed = msgspec.convert(raw, _TaxonomyFile)
    except msgspec.ValidationError as exc:
        raise TaxonomyError(f"{path}: {exc}") from exc
    _validate(path, parsed.topics)
    return parsed.topics


def _validate(path: Path, topics: tuple[TopicDefinition, ...]) -> None:
    if not topics:
        raise TaxonomyError(f"{path}: no topics defined")
    first_seen: dict[str, int] = {}
    for number, topic in enumerate(topics, start=1):
        where = f"{path}: topic #{number} ({topic.slug!r})"
        if not _SLUG.fullmatch(topic.slug):
            raise TaxonomyError(
                f"{where}: bad slug, expected lowercase letters/digits joined by single hyphens"
            )
        if topic.slug in first_seen:
            raise TaxonomyError(
                f"{where}: duplicate slug, already used by topic #{first_seen[topic.slug]}"
            )
        first_seen[topic.slug] = number
        if not topic.label.strip():
            raise TaxonomyError(f"{where}: empty label")
        if not topic.description.strip():
            raise TaxonomyError(f"{where}: empty description")
        if not topic.phrases:
            raise TaxonomyError(f"{where}: empty phrases")
        phrases = _check_phrases(where, "phrases", topic.phrases)
        excluded = _check_phrases(where, "exclude", topic.exclude)
        both = sorted(phrases & excluded)
        if both:
            raise TaxonomyError(f"{where}: phrases also listed in exclude: {both}")


def _check_phrases(where: str, field: str, phrases: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    for phrase in phrases:
        if phrase != phrase.lower() or phrase != phrase.strip() or not _WORD.search(phrase):
            raise TaxonomyError(
                f"{where}: {field} entry {phrase!r} must be lowercase, trimmed and contain a word"
            )
        key = normalize(phrase)
        if key in seen:
            raise TaxonomyError(f"{where}: duplicate {field} entry {phrase!r}")
        seen.add(key)
    return seen


class _CompiledTopic(NamedTuple):
    slug: str
    match: re.Pattern[str]
    cut: re.Pattern[str] | None


def _pattern(phrases: Sequence[str]) -> re.Pattern[str]:
    # Longest first, so the most specific phrase claims a span; each span counts once.
    forms = sorted({normalize(p) for p in phrases}, key=lambda p: (-len(p), p))
    alternation = "|".join(re.escape(form) for form in forms)
    return re.compile(rf"(?<!\w)(?P<p>{alternation})(?:s|es)?(?!\w)")


@functools.lru_cache(maxsize=16)
def _compile(taxonomy: tuple[TopicDefinition, ...]) -> tuple[_CompiledTopic, ...]:
    return tuple(
        _CompiledTopic(
            slug=topic.slug,
            match=_pattern(topic.phrases),
            cut=_pattern(topic.exclude) if topic.exclude else None,
        )
        for topic in taxonomy
    )


def _evidence(topic: _CompiledTopic, title: str, abstract: str) -> tuple[float, float]:
    """(total evidence, part of it from the title) for one topic on normalized text."""
    if topic.cut is not None:
        title = topic.cut.sub(_CUT, title)
        abstract = topic.cut.sub(_CUT, abstract)
    title_points = TITLE_WEIGHT * len({m.group("p") for m in topic.match.finditer(title)})
    abstract_hits: dict[str, int] = {}
    for m in topic.match.finditer(abstract):
        abstract_hits[m.group("p")] = abstract_hits.get(m.group("p"), 0) + 1
    abstract_points = sum(min(count, ABSTRACT_CAP) for count in abstract_hits.values())
    return title_points + abstract_points, title_points


def _all_evidence(
    title: str, abstract: str, taxonomy: Sequence[TopicDefinition]
) -> list[tuple[str, float, float]]:
    compiled = _compile(taxonomy if isinstance(taxonomy, tuple) else tuple(taxonomy))
    norm_title, norm_abstract = normalize(title), normalize(abstract)
    return [(topic.slug, *_evidence(topic, norm_title, norm_abstract)) for topic in compiled]


def topic_evidence(
    title: str, abstract: str, taxonomy: Sequence[TopicDefinition]
) -> dict[str, float]:
    """Raw evidence per topic slug before any threshold (for tuning the taxonomy and debugging)."""
    return {slug: total for slug, total, _ in _all_evidence(title, abstract, taxonomy)}


def classify(
    title: str, abstract: str, taxonomy: Sequence[TopicDefinition]
) -> list[TopicAssignment]:
    """0 to 3 topics for a paper, best first; a paper that fits nothing gets []. Deterministic.

    A topic needs `MIN_EVIDENCE`, and either `RELATIVE_CUTOFF` of the best topic's evidence or a
    title hit corroborated by the abstract. Ties keep taxonomy order.
    """
    evidence = _all_evidence(title, abstract, taxonomy)
    ranked = sorted(
        (item for item in evidence if item[1] >= MIN_EVIDENCE),
        key=lambda item: -item[1],  # stable sort: ties keep taxonomy order
    )
    if not ranked:
        return []
    floor = RELATIVE_CUTOFF * ranked[0][1]
    return [
        TopicAssignment(slug=slug, score=round(total / (total + SCORE_HALF), 3), method=METHOD)
        for slug, total, title_points in ranked
        if total >= floor or 0 < title_points < total
    ][:MAX_TOPICS]
