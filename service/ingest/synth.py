"""Synthetic paper corpora for benchmarks: realistic, deterministic for a seed, streamed.

Everything is learnt once from a seed listing (`build_model`):

* abstracts: an order-2 Markov chain over the words of the seed abstracts, walked by splicing
  stretches of seed text at shared word pairs (see `_Abstracts`);
* titles: an order-1 chain over the words of the seed titles, often behind a made-up system
  name ("LongCoder: ...");
* lengths: drawn from the seed papers' title and abstract lengths, scaled by a random factor.

Each synthetic paper has one or two "parent" seed papers whose text both chains prefer (the
abstract chain: their "families", the seed papers nearest to them in vocabulary), so the topic
mix that the classifier finds follows the seeds'. Authors, links, arXiv ids and dates are
made up. One `random.Random(seed)` drives everything: the same count and seed give the same
bytes, and a smaller count gives a prefix of the larger corpus. Titles (by `title_key`) and
abstracts are unique, checked with Bloom filters, so memory stays flat at a million papers.

Each output line is one JSON object in the per-paper schema that the JSON Lines parser reads:
`title`, `abstract`, `authors`, `published`, `arxiv_id`, `links`.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import math
import random
import re
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import msgspec

from service.ingest.listing import parse_listing
from service.ingest.records import PaperRecord
from service.ingest.text import title_key
from service.models import Links

BATCH = 1000  # lines encoded and written at a time
BLOOM_BITS = 1 << 26  # size of each filter that keeps titles and abstracts unique (8 MiB)
MIX_SHARE = 0.5  # share of papers with a second parent: a seed paper of the first's family
PREFER_PARENT = 0.9  # at an abstract jump: stay in a parent's family (if it can), else anywhere
TITLE_PREFER_PARENT = 0.7  # at each title word: follow a parent's title (if it can), else any
JUMP = 0.15  # chance that an abstract leaves its current seed text at a jump point
LENGTH_JITTER = (0.8, 1.25)  # sampled seed lengths are scaled by a factor in this range
TITLE_MIN = 20
TITLE_MAX = 250
ABSTRACT_CAP_FACTOR = 1.5  # an abstract with no sentence end soon enough is cut ...
ABSTRACT_MAX = 2700  # ... at this many times its target, or this many characters
ABSTRACT_MIN = 700  # where an abstract is cut, its last sentence end must be past this
NAME_SHARE = 0.6  # share of titles that start with a system name ("Magpie: ...")
CODE_SHARE = 0.2  # share of papers with a GitHub code link
CODE_IN_ABSTRACT = 0.6  # of those, share whose abstract says where the code is
PROJECT_SHARE = 0.05  # share of papers with a project page
FIRST_MONTH = (2018, 1)  # arXiv ids are sequential within a month, starting here
MONTH_SIZE = (14_000, 24_000)  # papers per month, drawn when a month starts
FAMILY_SIZE = 5  # a seed paper and its nearest seed papers: where its abstracts may wander
SEED_WORDS_MIN = 30  # seed abstracts shorter than this (without URL sentences) are not used
AUTHOR_COUNT_WEIGHTS = (3, 8, 12, 13, 13, 12, 10, 8, 7, 5, 5, 4)  # for 1 to 12 authors

_BOS = "\x02"
_EOS = "\x03"
_URL = re.compile(r"https?://")
_SENTENCE_END = re.compile(r"[.!?](?<!e\.g\.)(?<!i\.e\.)(?<!\bvs\.)(?<!\bal\.)(?<!\bcf\.)(?=\s|$)")
_SIMILARITY_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_ABBREVIATIONS = frozenset({"e.g.", "i.e.", "vs.", "al.", "cf.", "Fig.", "Eq."})
_TITLE_WEAK_ENDS = frozenset(
    {
        "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or",
        "the", "to", "via", "with", "without", "towards", "through", "between", "over", "is",
        "are", "your", "its", "their", "our", "--", "-", "&", "A", "The", "An",
    }
)  # fmt: skip
_TITLE_JOINERS = ("for", "with", "via", "in", "of")
_NON_ALNUM = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})
# How many jump points an abstract passes before it jumps: geometric, as a table of quantiles.
_SKIP_BITS = 10
_SKIPS = tuple(
    int(math.log(1 - (i + 0.5) / (1 << _SKIP_BITS)) / math.log(1 - JUMP))
    for i in range(1 << _SKIP_BITS)
)

_FIRST_NAMES = (
    "Wei", "Jing", "Yu", "Xin", "Hao", "Yang", "Lei", "Min", "Jun", "Zhen", "Hyun", "Ji-woo",
    "Seo-yeon", "Minh", "Anh", "Takeshi", "Yuki", "Haruto", "Aarav", "Priya", "Rahul", "Ananya",
    "Vikram", "Deepa", "Arjun", "Mohammed", "Fatima", "Omar", "Layla", "Yusuf", "Amir", "Sara",
    "Noa", "Daniel", "Michael", "Sarah", "Emily", "David", "James", "Laura", "Anna", "Thomas",
    "Julia", "Lukas", "Sophie", "Jonas", "Elena", "Marco", "Giulia", "Luca", "Chiara", "Pierre",
    "Camille", "Antoine", "Chloe", "Javier", "Lucia", "Pablo", "Carmen", "Joao", "Beatriz",
    "Ivan", "Olga", "Dmitri", "Natalia", "Piotr", "Katarzyna", "Erik", "Ingrid", "Lars", "Freya",
    "Kwame", "Amara", "Chidi", "Ngozi", "Tunde", "Aisha", "Kofi", "Zanele", "Mateo", "Valentina",
    "Diego", "Isabella", "Nikhil", "Shreya", "Kenji", "Sakura", "Tuan", "Linh", "Emre", "Elif",
    "Can", "Zeynep", "Ali", "Reza", "Maryam", "Noah", "Olivia", "Ethan", "Grace", "Samuel",
)  # fmt: skip
_LAST_NAMES = (
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
    "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Kim", "Lee", "Park", "Choi", "Jung",
    "Nguyen", "Tran", "Pham", "Tanaka", "Suzuki", "Sato", "Watanabe", "Yamamoto", "Sharma",
    "Gupta", "Patel", "Singh", "Kumar", "Iyer", "Reddy", "Rao", "Das", "Banerjee", "Hassan",
    "Haddad", "Rahman", "Karimi", "Hosseini", "Cohen", "Levi", "Smith", "Johnson", "Brown",
    "Miller", "Davis", "Wilson", "Taylor", "Anderson", "Thompson", "Clark", "Lewis", "Walker",
    "Hall", "Young", "Allen", "Wright", "Scott", "Green", "Baker", "Mueller", "Schmidt",
    "Schneider", "Fischer", "Weber", "Becker", "Wagner", "Rossi", "Russo", "Ferrari", "Bianchi",
    "Romano", "Martin", "Bernard", "Dubois", "Laurent", "Garcia", "Martinez", "Lopez",
    "Gonzalez", "Rodriguez", "Fernandez", "Silva", "Santos", "Oliveira", "Costa", "Ivanov",
    "Petrov", "Smirnov", "Kowalski", "Nowak", "Johansson", "Andersson", "Nielsen", "Hansen",
    "Mensah", "Okafor", "Adeyemi", "Mwangi", "Diallo", "Ndlovu", "Yilmaz", "Demir", "Kaya",
    "Sahin", "Novak", "Horvat", "Papadopoulos", "Georgiou", "OConnor", "Murphy", "Kelly",
)  # fmt: skip
_NAME_HEADS = (
    "Align", "Long", "Open", "Pro", "Meta", "Omni", "Hyper", "Flash", "Deep", "Fast", "Tiny",
    "Mega", "Evo", "Bio", "Chat", "Code", "Math", "Poly", "Lingo", "Scale", "Quant", "Sparse",
    "Turbo", "Auto", "Self", "Multi", "Uni", "Gen", "Mind", "Sage", "Nova", "Star", "Echo",
    "Prism", "Atlas", "Orca", "Lumen", "Vita", "Geo", "Chrono",
)  # fmt: skip
_NAME_TAILS = (
    "GPT", "LLaMA", "Bench", "Eval", "Former", "Writer", "Coder", "Align", "Net", "LM", "Mix",
    "Tune", "KV", "Scale", "Lens", "Gen", "Chat", "Mind", "Pipe", "Shard", "Cache", "RAG",
    "Instruct", "Judge", "Guard", "Sense", "Flow", "Fusion", "Zip", "Bridge",
)  # fmt: skip
_NAME_WORDS = (
    "Magpie", "Falcon", "Heron", "Otter", "Lynx", "Kestrel", "Marmot", "Pangolin", "Ibis",
    "Quokka", "Tapir", "Wombat", "Condor", "Puffin", "Mantis", "Cobalt", "Basalt", "Quartz",
    "Juniper", "Sequoia", "Aurora", "Zephyr", "Meridian", "Tessera", "Mosaic", "Lantern",
    "Compass", "Beacon", "Anvil", "Loom", "Sextant", "Harbor", "Citadel", "Tranquil", "Cascade",
)  # fmt: skip
_ORG_SUFFIXES = ("lab", "nlp", "ai", "ml", "group", "research", "team")
_CODE_SENTENCES = (
    "Code is available at {url}.",
    "Our code is publicly available at {url}.",
    "The code and models are released at {url}.",
    "Code and data are available at {url}.",
    "We release our code at {url}.",
)
_PROJECT_SENTENCES = (
    "More results are on our project page: {url}.",
    "Demos are available at {url}.",
)


class SynthRecord(msgspec.Struct, frozen=True):
    """One synthetic paper, as written (fields in the per-paper schema's order)."""

    title: str
    abstract: str
    authors: list[str]
    published: str
    arxiv_id: str
    links: Links


# Where a jump point can continue: every occurrence of its two words, and per parent paper
# those in the parent's family.
_Targets = tuple[tuple[tuple[int, int], ...], dict[int, tuple[tuple[int, int], ...]]]
# One seed abstract: body, word offsets, jump points (word positions and offsets), the first
# jump point after each position, and what each jump point can jump to.
_Text = tuple[str, list[int], list[int], list[int], list[int], list[_Targets]]


class _Abstracts:
    """The seed abstracts as an order-2 word chain, walked by splicing stretches of seed text.

    A position in a seed abstract is a jump point when the two words before it also occur
    elsewhere in the seeds. The walk copies a stretch of one abstract (a precomputed slice),
    then at a jump point continues from another occurrence of the same two words: with
    probability `PREFER_PARENT` one in the first parent's family (else the second's, else
    anywhere), otherwise anywhere. Jumping at every jump point would be a plain order-2 chain;
    jumping at each with probability `JUMP` keeps longer stretches, and the number of jump
    points to pass is drawn at once, so a walk costs a few draws per jump, not per word.
    """

    def __init__(
        self,
        texts: Sequence[Sequence[str]],
        families: Sequence[Sequence[int]],
        is_end: Callable[[str], bool],
    ) -> None:
        ids: dict[str, int] = {_BOS: 0}
        states: list[list[int]] = []  # per paper and position: the two words before it
        bodies: list[str] = []  # per paper: its words, each with a leading space
        all_offsets: list[list[int]] = []  # per paper: where each word starts in the body
        self.sentence_starts: list[list[tuple[int, int]]] = []  # per paper: (paper, position)
        occurrences: dict[int, list[tuple[int, int]]] = {}
        for paper, words in enumerate(texts):
            numbers = [0, 0] + [ids.setdefault(word, len(ids)) for word in words]
            paper_states = [(numbers[i] << 32) | numbers[i + 1] for i in range(len(words) + 1)]
            for position, state in enumerate(paper_states[: len(words)]):
                occurrences.setdefault(state, []).append((paper, position))
            states.append(paper_states)
            offsets = [0]
            for word in words:
                offsets.append(offsets[-1] + 1 + len(word))
            all_offsets.append(offsets)
            bodies.append("".join(" " + word for word in words))
            self.sentence_starts.append(
                [(paper, i) for i in range(1, len(words)) if is_end(words[i - 1])]
            )
        member_of: dict[int, list[int]] = {}  # paper -> the parents whose family it is in
        for parent, family in enumerate(families):
            for paper in family:
                member_of.setdefault(paper, []).append(parent)
        targets: dict[int, _Targets] = {}
        for state, found in occurrences.items():
            if len(found) > 1:
                per_family: dict[int, list[tuple[int, int]]] = {}
                for paper, position in found:
                    for parent in member_of.get(paper, ()):
                        per_family.setdefault(parent, []).append((paper, position))
                targets[state] = (
                    tuple(found),
                    {parent: tuple(places) for parent, places in per_family.items()},
                )
        # Per paper: the jump points (never the opening two words), what each can jump to, and
        # for every position the index of the first jump point after it.
        self.texts: list[_Text] = []
        for paper, paper_states in enumerate(states):
            jumps = [i for i in range(2, len(paper_states) - 1) if paper_states[i] in targets]
            self.texts.append(
                (
                    bodies[paper],
                    all_offsets[paper],
                    jumps,
                    [all_offsets[paper][i] for i in jumps],
                    [bisect.bisect_right(jumps, i) for i in range(len(paper_states))],
                    [targets[paper_states[i]] for i in jumps],
                )
            )

    def walk(self, first: int, second: int, target: int, rng: random.Random) -> str:
        """An abstract of about `target` characters, cut at the first sentence end past it."""
        texts, skips, bits, rnd, prefer = (
            self.texts,
            _SKIPS,
            rng.getrandbits,
            rng.random,
            PREFER_PARENT,
        )
        cap = min(int(target * ABSTRACT_CAP_FACTOR), ABSTRACT_MAX)
        parts: list[str] = []
        length = 0
        paper, position = first, 0
        while True:
            body, offsets, points, stops, next_jump, targets = texts[paper]
            index = next_jump[position] + skips[bits(_SKIP_BITS)]
            ends = index >= len(points)  # this seed abstract ends before the next jump
            text = body[offsets[position] : len(body) if ends else stops[index]]
            length += len(text)
            if length >= target or ends:
                if length >= target:
                    found = _SENTENCE_END.search(text, max(0, target - length + len(text)))
                    if found is not None:
                        parts.append(text[: found.end()])
                        break
                parts.append(text)
                if length >= cap or (ends and length >= target * 0.8):
                    break
                if ends:
                    parent = first if second < 0 or rnd() < 0.5 else second
                    starts = self.sentence_starts[parent] or self.sentence_starts[first]
                    if not starts:
                        break
                    paper, position = starts[int(rnd() * len(starts))]
                    continue
            else:
                parts.append(text)
            anywhere, by_family = targets[index]
            if rnd() < prefer:
                choices = by_family.get(first) or by_family.get(second) or anywhere
            else:
                choices = anywhere
            landing = choices[int(rnd() * len(choices))]
            if len(choices) > 1:  # a jump moves: draw again while it lands where it is
                while landing[0] == paper and landing[1] == points[index]:
                    landing = choices[int(rnd() * len(choices))]
            paper, position = landing
        return _end_cleanly("".join(parts).strip(), cap)


class _Titles:
    """The descriptive parts of the seed titles as an order-1 word chain."""

    def __init__(self, texts: Sequence[Sequence[str]]) -> None:
        words: list[str] = [_BOS, _EOS]
        ids: dict[str, int] = {_BOS: 0, _EOS: 1}
        following: dict[int, list[int]] = {}
        by_paper: dict[int, dict[int, list[int]]] = {}
        for paper, text in enumerate(texts):
            row = [0]
            for word in text:
                if word not in ids:
                    ids[word] = len(words)
                    words.append(word)
                row.append(ids[word])
            row.append(1)
            for number, after in itertools.pairwise(row):
                following.setdefault(number, []).append(after)
                by_paper.setdefault(number, {}).setdefault(paper, []).append(after)
        self.words = words
        self.sizes = [len(word) + 1 for word in words]
        # A title may end on a word that ends a seed title or comes before a preposition in one
        # ("Models for ..."): a head noun, rarely an adjective.
        self.good_end = [False] * len(words)
        for number, nexts in following.items():
            if number > 1 and _is_title_end(words[number]):
                self.good_end[number] = any(n == 1 or words[n] in _TITLE_WEAK_ENDS for n in nexts)
        # Per word id: every following word id, and the following word ids per seed paper.
        self.after: list[tuple[tuple[int, ...], dict[int, tuple[int, ...]]]] = [
            (
                tuple(following.get(number, ())),
                {p: tuple(f) for p, f in by_paper.get(number, {}).items()},
            )
            for number in range(len(words))
        ]
        self.joiners = tuple(
            ids[word] for word in _TITLE_JOINERS if word in ids and following.get(ids[word])
        )

    def walk(self, first: int, second: int, target: int, rnd: Callable[[], float]) -> str:
        """A descriptive title of about `target` characters, ending on a head word."""
        after, sizes, good_end, joiners = self.after, self.sizes, self.good_end, self.joiners
        prefer = TITLE_PREFER_PARENT
        chosen: list[int] = []
        length = 0
        options = after[0][1][first]
        for _ in range(40):
            word = options[int(rnd() * len(options))]
            if word == 1:  # the seed title ended here
                if (length >= target * 0.75 and length >= TITLE_MIN) or not joiners:
                    break
                word = joiners[int(rnd() * len(joiners))]
            chosen.append(word)
            length += sizes[word]
            if length >= target and good_end[word]:
                break
            anywhere, by_paper = after[word]
            if rnd() < prefer:
                options = by_paper.get(first) or by_paper.get(second) or anywhere
            else:
                options = anywhere
        while len(chosen) > 1 and not good_end[chosen[-1]]:
            chosen.pop()
        words = self.words
        return " ".join([words[word] for word in chosen])


def _end_cleanly(abstract: str, cap: int) -> str:
    """An abstract that ends with a sentence, within `cap` characters."""
    if len(abstract) <= cap and _is_sentence_end(abstract.rpartition(" ")[2]):
        return abstract
    last = abstract.rfind(". ", 0, cap)
    if last >= ABSTRACT_MIN:
        return abstract[: last + 1]
    return abstract[:cap].rpartition(" ")[0].rstrip(",;:") + "."


def _is_sentence_end(word: str) -> bool:
    return word[-1:] in (".", "!", "?") and word not in _ABBREVIATIONS


def _is_title_end(word: str) -> bool:
    return word not in _TITLE_WEAK_ENDS and word[-1] not in ":,;-(&"


def _split_title(title: str) -> tuple[str | None, str]:
    """A seed title as (system name or None, the descriptive rest)."""
    head, colon, rest = title.partition(": ")
    if colon and len(head.split()) <= 3 and rest:
        return head, rest
    return None, title


class Model(NamedTuple):
    """Everything precomputed from a seed listing."""

    abstracts: _Abstracts
    titles: _Titles
    title_lengths: tuple[int, ...]
    abstract_lengths: tuple[int, ...]
    papers: int
    families: list[list[int]]  # per seed paper: itself and its nearest seed papers
    seed_abstracts: tuple[str, ...]  # as written and without their URL sentences: never output


def build_model(seed_listing: Path) -> Model:
    """Train the title and abstract chains on a seed listing and keep its length distributions."""
    titles: list[list[str]] = []
    abstracts: list[list[str]] = []
    title_lengths: list[int] = []
    abstract_lengths: list[int] = []
    seed_abstracts: list[str] = []
    for record in parse_listing(seed_listing):
        if not isinstance(record, PaperRecord):
            continue  # a seed paper the parser rejected teaches nothing
        # Seed URLs point at real repositories: leave out the sentences that carry them.
        sentences = [s for s in _SENTENCES.split(record.abstract) if not _URL.search(s)]
        words = " ".join(sentences).split()
        if len(words) < SEED_WORDS_MIN:
            continue
        abstracts.append(words)
        seed_abstracts.extend((record.abstract, " ".join(words)))
        titles.append(_split_title(record.title)[1].split())
        title_lengths.append(len(record.title))
        abstract_lengths.append(len(record.abstract))
    families = _families(titles, abstracts)
    if not titles:
        raise ValueError(
            f"{seed_listing}: no seed paper with an abstract of {SEED_WORDS_MIN}+ words"
        )
    return Model(
        abstracts=_Abstracts(abstracts, families, _is_sentence_end),
        families=families,
        titles=_Titles(titles),
        title_lengths=tuple(title_lengths),
        abstract_lengths=tuple(abstract_lengths),
        papers=len(titles),
        seed_abstracts=tuple(seed_abstracts),
    )


def _families(
    titles: Sequence[Sequence[str]], abstracts: Sequence[Sequence[str]]
) -> list[list[int]]:
    """Per seed paper: itself and the `FAMILY_SIZE - 1` papers nearest to it in vocabulary.

    Nearness is the cosine of TF-IDF word vectors of title and abstract; ties go to the earlier
    paper. An abstract that leaves its parents' text stays within their families, on topic.
    """
    counts = [
        Counter(_SIMILARITY_WORD.findall(" ".join([*title, *abstract]).lower()))
        for title, abstract in zip(titles, abstracts, strict=True)
    ]
    documents = Counter(word for count in counts for word in count)
    vectors: list[dict[str, float]] = []
    for count in counts:
        vector = {w: n * math.log(len(counts) / documents[w]) for w, n in count.items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        vectors.append({w: v / norm for w, v in vector.items()})
    families: list[list[int]] = []
    for paper, vector in enumerate(vectors):
        nearness = [
            (-sum(v * other.get(w, 0.0) for w, v in vector.items()), number)
            for number, other in enumerate(vectors)
            if number != paper
        ]
        families.append([paper] + [number for _, number in sorted(nearness)[: FAMILY_SIZE - 1]])
    return families


def _system_name(rest: str, rnd: Callable[[], float]) -> str:
    """A made-up system name such as `LongCoder`, `EKCC` or `Heron-2` for a title's head."""
    draw = rnd()
    if draw < 0.3:
        initials = [w[0] for w in rest.split() if w[0].isupper() and w not in _TITLE_WEAK_ENDS]
        if 3 <= len(initials) <= 6:
            return "".join(initials).upper()
    if draw < 0.75:
        name = _NAME_HEADS[int(rnd() * len(_NAME_HEADS))]
        name += _NAME_TAILS[int(rnd() * len(_NAME_TAILS))]
    else:
        name = _NAME_WORDS[int(rnd() * len(_NAME_WORDS))]
    if rnd() < 0.15:
        name += f"-{1 + int(rnd() * 4)}"
    return name


_FULL_NAMES = tuple(f"{first} {last}" for first in _FIRST_NAMES for last in _LAST_NAMES)
_AUTHOR_CUM_WEIGHTS = tuple(itertools.accumulate(AUTHOR_COUNT_WEIGHTS))


def _authors(rnd: Callable[[], float]) -> list[str]:
    """1 to 12 distinct made-up author names."""
    count = 1 + bisect.bisect_right(_AUTHOR_CUM_WEIGHTS, rnd() * _AUTHOR_CUM_WEIGHTS[-1])
    names = _FULL_NAMES
    authors = [names[int(rnd() * len(names))] for _ in range(count)]
    while len(set(authors)) < count:  # a name drawn twice: draw that one again
        authors = list(dict.fromkeys(authors))
        authors.append(names[int(rnd() * len(names))])
    return authors


def _handle(author: str) -> str:
    first, _, last = author.partition(" ")
    return (first[0] + last).lower()


class _Months:
    """Sequential arXiv ids (`YYMM.NNNNN`) and matching submission dates, month by month."""

    def __init__(self, rnd: Callable[[], float]) -> None:
        self.rnd = rnd
        self.year, self.month = FIRST_MONTH
        self.month -= 1
        self.number = 0
        self.size = 0
        self.dates: list[str] = []
        self.prefix = ""

    def _next_month(self) -> None:
        self.month += 1
        if self.month > 12:
            self.year, self.month = self.year + 1, 1
        low, high = MONTH_SIZE
        self.size = low + int(self.rnd() * (high - low + 1))
        self.number = 0
        days = calendar.monthrange(self.year, self.month)[1]
        self.dates = [f"{self.year:04d}-{self.month:02d}-{day:02d}" for day in range(1, days + 1)]
        self.prefix = f"{self.year % 100:02d}{self.month:02d}."

    def next(self) -> tuple[str, str]:
        """(arxiv id, published date) of the next paper."""
        if self.number == self.size:
            self._next_month()
        number = self.number
        self.number += 1
        day = number * len(self.dates) // self.size
        return f"{self.prefix}{number + 1:05d}", self.dates[day]


class _Seen:
    """A Bloom filter: knows every key added, and rarely claims one it was not given.

    With `BLOOM_BITS` = 2**26 and two bits a key, it is wrong for 0.1% of keys after a million
    keys, 7% after ten million: a wrong "seen" only costs a redraw.
    """

    def __init__(self) -> None:
        # One size for every count, so that a smaller corpus is a prefix of a larger one.
        self.mask = BLOOM_BITS - 1
        self.bits = bytearray(BLOOM_BITS >> 3)

    def add(self, key: bytes) -> bool:
        """Add a key; False when it (probably) was added before."""
        fresh = False
        for start in (0, 0x5BD1E995):
            bit = zlib.crc32(key, start) & self.mask
            byte, flag = bit >> 3, 1 << (bit & 7)
            if not self.bits[byte] & flag:
                self.bits[byte] |= flag
                fresh = True
        return fresh


def _title_key(title: str) -> bytes:
    """`title_key(title)` as bytes, with a fast path for ASCII titles."""
    if title.isascii():
        return " ".join(title.lower().translate(_NON_ALNUM).split()).encode()
    return title_key(title).encode()


class _Seens(NamedTuple):
    titles: _Seen
    abstracts: _Seen


def _title(
    model: Model, first: int, second: int, seen: _Seen, rnd: Callable[[], float]
) -> tuple[str, str | None]:
    """A title not given before (by `title_key`), and its system name if it has one."""

    def fresh(title: str) -> bool:
        return (
            TITLE_MIN <= len(title) <= TITLE_MAX
            and title.count(": ") <= 1
            and seen.add(_title_key(title))
        )

    low, high = LENGTH_JITTER
    title, name = "", None
    for _ in range(50):
        target = int(model.title_lengths[int(rnd() * model.papers)] * (low + (high - low) * rnd()))
        named = rnd() < NAME_SHARE
        title = model.titles.walk(
            first, second, max(target - 12, TITLE_MIN) if named else target, rnd
        )
        if ": " in title:  # it has a head already
            if fresh(title):
                return title, None
            continue
        if not named and fresh(title):
            return title, None
        # Named, or taken: the same words behind a system name most likely are not.
        name = _system_name(title, rnd)
        title = f"{name}: {title}"
        if fresh(title):
            return title, name
    return title, name


def _paper(model: Model, rng: random.Random, seen: _Seens, months: _Months) -> SynthRecord:
    """One synthetic paper; its title key and abstract differ from all before (and the seeds')."""
    rnd = rng.random
    papers = model.papers
    first = int(rnd() * papers)
    second = -1
    relatives = model.families[first][1:]
    if relatives and rnd() < MIX_SHARE:
        second = relatives[int(rnd() * len(relatives))]
    title, name = _title(model, first, second, seen.titles, rnd)
    low, high = LENGTH_JITTER
    target = int(model.abstract_lengths[int(rnd() * papers)] * (low + (high - low) * rnd()))
    for _ in range(50):
        abstract = model.abstracts.walk(first, second, target, rng)
        if seen.abstracts.add(abstract.encode()):  # holds the seed abstracts from the start
            break
    authors = _authors(rnd)
    arxiv_id, published = months.next()
    abstract, links = _links(abstract, title, name, authors, arxiv_id, rnd)
    return SynthRecord(title, abstract, authors, published, arxiv_id, links)


def _links(
    abstract: str,
    title: str,
    name: str | None,
    authors: list[str],
    arxiv_id: str,
    rnd: Callable[[], float],
) -> tuple[str, Links]:
    """A paper's links (some code, a few project pages, always the PDF), and its abstract with
    the sentences that mention some of them."""
    code: list[str] = []
    project: list[str] = []
    if rnd() < CODE_SHARE:
        if rnd() < 0.6:
            owner = _handle(authors[0])
        else:
            suffix = _ORG_SUFFIXES[int(rnd() * len(_ORG_SUFFIXES))]
            owner = f"{authors[-1].rpartition(' ')[2].lower()}-{suffix}"
        words = [w for w in title.split() if w.isalnum() and w not in _TITLE_WEAK_ENDS]
        repo = name or "".join(w[0].upper() + w[1:] for w in words[:2]) or "code"
        code.append(f"https://github.com/{owner}/{repo}")
        if rnd() < CODE_IN_ABSTRACT:
            sentence = _CODE_SENTENCES[int(rnd() * len(_CODE_SENTENCES))]
            abstract += " " + sentence.format(url=code[0])
    if rnd() < PROJECT_SHARE:
        site = (name or _handle(authors[0])).lower()
        project.append(f"https://{site}.github.io/")
        if rnd() < 0.5:
            sentence = _PROJECT_SENTENCES[int(rnd() * len(_PROJECT_SENTENCES))]
            abstract += " " + sentence.format(url=project[0])
    return abstract, Links(code=code, project=project, pdf=[f"https://arxiv.org/pdf/{arxiv_id}"])


def synthesize(count: int, seed: int, seed_listing: Path, out: IO[str]) -> int:
    """Write `count` synthetic papers as JSON Lines to `out`; the same arguments give the same bytes."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    model = build_model(seed_listing)
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    seen = _Seens(_Seen(), _Seen())
    for abstract in model.seed_abstracts:
        seen.abstracts.add(abstract.encode())
    months = _Months(rng.random)
    encoder = msgspec.json.Encoder()
    batch: list[SynthRecord] = []
    for _ in range(count):
        batch.append(_paper(model, rng, seen, months))
        if len(batch) == BATCH:
            out.write(encoder.encode_lines(batch).decode())
            batch.clear()
    if batch:
        out.write(encoder.encode_lines(batch).decode())
    return count
