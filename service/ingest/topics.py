"""Topic taxonomy (loaded from `seeds/topics.toml`) and a phrase-based topic classifier.

Matching rules, shared by the taxonomy file and the classifier:

* Text and phrases are compared as sequences of lowercase words (NFKC-normalised). Hyphens and
  dashes separate words like spaces, so `long-context` matches "long context" and "Long-Context";
  other punctuation is kept, so "alignment, methods" is not the phrase `alignment methods`.
* A phrase matches whole words only, and also its simple plural (a trailing `s` or `es` on its
  last word): `kv cache` matches "KV caches", but `law` never matches "lawful".
* Before a topic's phrases are matched, every occurrence of that topic's `exclude` phrases is cut
  out of the text, so "DNA sequence alignment" cannot count as evidence for LLM alignment.
* Where a topic's phrases overlap, the leftmost, then longest, occurrence counts; once.
* A phrase found in the title weighs `TITLE_WEIGHT`; each occurrence in the abstract weighs 1, up
  to `ABSTRACT_CAP` occurrences per phrase. A topic needs `MIN_EVIDENCE` in total, and must reach
  `RELATIVE_CUTOFF` of the best topic's evidence unless it is named in the title and the abstract
  backs it up; at most `MAX_TOPICS` topics are returned.

The taxonomy is compiled once into a token index (cached per taxonomy), so classifying a paper is
one pass over its words, cheap enough for a bulk load of a million papers.
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
_WORD = re.compile(r"\w")
# Words, and every other character on its own except spaces and hyphens/dashes (which only
# separate words): "zero++" is ["zero", "+", "+"], "long-context" is ["long", "context"].
_TOKEN = re.compile(r"\w+|[^\w\s\-\u2010-\u2014\u2212]")
# The same on ASCII text (where Unicode \s also takes \x1c-\x1f).
_ASCII_TOKEN = re.compile(r"\w+|[^\w\s\x1c-\x1f\-]", re.ASCII)


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
        key = " ".join(_tokens(phrase))
        if key in seen:
            raise TaxonomyError(f"{where}: duplicate {field} entry {phrase!r}")
        seen.add(key)
    return seen


class _Entry(NamedTuple):
    """One phrase of one topic, as tokens; `exclude` marks an exclude phrase."""

    tokens: tuple[str, ...]
    key: str
    topic: int
    exclude: bool
    last: frozenset[str]  # spellings the last token may take: itself, and plurals for words


class _Index(NamedTuple):
    """A taxonomy compiled for matching.

    One-token phrases are keyed by every spelling they match; longer phrases by their first two
    tokens (with plural spellings of the second when it is the last). Most text tokens cost a
    single dictionary lookup.
    """

    slugs: tuple[str, ...]
    singles: dict[str, tuple[_Entry, ...]]
    firsts: frozenset[str]
    pairs: dict[tuple[str, str], tuple[_Entry, ...]]
    starts: frozenset[str]  # every token a phrase can start with: the rest are skipped


def _tokens(text: str) -> list[str]:
    if text.isascii():  # most text: the same tokens, without normalising, found faster
        return _ASCII_TOKEN.findall(text.lower())
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


@functools.lru_cache(maxsize=16)
def _compile(taxonomy: tuple[TopicDefinition, ...]) -> _Index:
    singles: dict[str, list[_Entry]] = {}
    pairs: dict[tuple[str, str], list[_Entry]] = {}
    for number, topic in enumerate(taxonomy):
        for exclude, phrases in ((False, topic.phrases), (True, topic.exclude)):
            for phrase in phrases:
                tokens = tuple(_tokens(phrase))
                if not tokens:
                    continue
                final = tokens[-1]
                last = {final}
                if _WORD.match(final):
                    last |= {final + "s", final + "es"}
                entry = _Entry(tokens, " ".join(tokens), number, exclude, frozenset(last))
                if len(tokens) == 1:
                    for spelling in sorted(last):
                        singles.setdefault(spelling, []).append(entry)
                elif len(tokens) == 2:
                    for spelling in sorted(last):
                        pairs.setdefault((tokens[0], spelling), []).append(entry)
                else:
                    pairs.setdefault((tokens[0], tokens[1]), []).append(entry)
    return _Index(
        slugs=tuple(topic.slug for topic in taxonomy),
        singles={key: tuple(entries) for key, entries in singles.items()},
        firsts=frozenset(first for first, _ in pairs),
        pairs={key: tuple(entries) for key, entries in pairs.items()},
        starts=frozenset(singles) | frozenset(first for first, _ in pairs),
    )


def _find(index: _Index, tokens: list[str]) -> list[tuple[int, int, _Entry]]:
    """Every (start, end, entry) where a phrase occurs in the token list; overlaps included."""
    found: list[tuple[int, int, _Entry]] = []
    present = index.starts.intersection(tokens)  # one C-level pass; most tokens start nothing
    if not present:
        return found
    count = len(tokens)
    singles, firsts, pairs = index.singles, index.firsts, index.pairs
    for start, token in enumerate(tokens):
        if token not in present:
            continue
        for entry in singles.get(token, ()):
            found.append((start, start + 1, entry))
        if token not in firsts or start + 1 == count:
            continue
        for entry in pairs.get((token, tokens[start + 1]), ()):
            end = start + len(entry.tokens)
            if end == start + 2 or (
                end <= count
                and tokens[end - 1] in entry.last
                and tuple(tokens[start + 2 : end - 1]) == entry.tokens[2:-1]
            ):
                found.append((start, end, entry))
    return found


def _hits(index: _Index, tokens: list[str]) -> list[dict[str, int]]:
    """Per topic: how often each phrase occurs once excluded spans are cut out.

    Where phrases overlap, the leftmost and then longest occurrence wins; each span counts once.
    """
    found = _find(index, tokens)
    hits: list[dict[str, int]] = [{} for _ in index.slugs]
    if not found:
        return hits
    cut: dict[int, set[int]] = {}
    for start, end, entry in found:
        if entry.exclude:
            cut.setdefault(entry.topic, set()).update(range(start, end))
    reach = [0] * len(index.slugs)
    found.sort(key=lambda item: (item[0], item[0] - item[1], -len(item[2].key)))
    for start, end, entry in found:
        topic = entry.topic
        if entry.exclude or start < reach[topic]:
            continue
        removed = cut.get(topic)
        if removed and not removed.isdisjoint(range(start, end)):
            continue
        reach[topic] = end
        hits[topic][entry.key] = hits[topic].get(entry.key, 0) + 1
    return hits


def _all_evidence(
    title: str, abstract: str, taxonomy: Sequence[TopicDefinition]
) -> list[tuple[str, float, float]]:
    """(slug, total evidence, evidence from the title) for every topic, in taxonomy order."""
    index = _compile(taxonomy if isinstance(taxonomy, tuple) else tuple(taxonomy))
    title_hits = _hits(index, _tokens(title))
    abstract_hits = _hits(index, _tokens(abstract))
    evidence: list[tuple[str, float, float]] = []
    for number, slug in enumerate(index.slugs):
        title_points = TITLE_WEIGHT * len(title_hits[number])
        abstract_points = sum(min(n, ABSTRACT_CAP) for n in abstract_hits[number].values())
        evidence.append((slug, title_points + abstract_points, title_points))
    return evidence


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
