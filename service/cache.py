"""Answers computed from the corpus, kept in the process until the corpus changes.

The key of every entry includes nothing about time: instead the whole cache belongs to one
corpus version (`corpus_state.version`, bumped by triggers in every transaction that writes
papers, their topics or the taxonomy; migration 0006). A reader asks for the version first,
then for the entry: a version read before the data it caches can only be older than that
data, and entries of an older version are dropped the first time a newer one is seen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class CorpusCache(Generic[V]):
    """A least-recently-used cache of at most `max_weight` (each entry weighs what `put` is
    told, e.g. its number of hits) for one corpus version at a time. 0 disables it."""

    def __init__(self, max_weight: int) -> None:
        self.max_weight = max_weight
        self._version: int | None = None
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._weight = 0

    def get(self, version: int, key: Hashable) -> V | None:
        """The entry for `key` at this corpus version, or None."""
        if version != self._version:
            self._reset(version)
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, version: int, key: Hashable, value: V, weight: int = 1) -> None:
        """Keep `value` for `key` at this corpus version (not when it alone is too heavy)."""
        if version != self._version:
            self._reset(version)
        if weight > self.max_weight:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._weight -= old[1]
        self._entries[key] = (value, weight)
        self._weight += weight
        while self._weight > self.max_weight:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._weight -= dropped

    def _reset(self, version: int) -> None:
        self._version = version
        self._entries.clear()
        self._weight = 0
