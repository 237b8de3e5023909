"""Answers computed from the corpus, kept in the process until the corpus changes.

The key of every entry includes nothing about time: instead the whole cache belongs to one
corpus version (`corpus_state.version`, bumped by triggers in every transaction that writes
papers, their topics or the taxonomy; migration 0006). A reader asks for the version first,
then for the entry: a version read before the data it caches can only be older than that
data, and entries of an older version are dropped the first time a newer one is seen.

`get_or_compute` computes a missing entry once however many requests ask for it meanwhile:
after a load changes the version, every popular search misses at once, and sixteen copies of
the same half-second query would each take sixteen times as long on a two-core machine.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
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
        self._computing: dict[tuple[int, Hashable], asyncio.Task[V]] = {}

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

    async def get_or_compute(
        self,
        version: int,
        key: Hashable,
        compute: Callable[[], Awaitable[V]],
        weight: Callable[[V], int],
    ) -> V:
        """The entry for `key` at this version; when missing, `compute()` it, once for all the
        callers asking meanwhile, and keep it with `weight(value)`.

        The computation runs in a task of its own: a caller that goes away (a client that
        disconnects) cancels only its own wait. Its error reaches every caller waiting.
        """
        cached = self.get(version, key)
        if cached is not None:
            return cached
        if self.max_weight <= 0:
            return await compute()
        flight = (version, key)
        task = self._computing.get(flight)
        if task is None:
            task = asyncio.ensure_future(compute())
            self._computing[flight] = task
            task.add_done_callback(lambda done: self._landed(flight, done, weight))
        return await asyncio.shield(task)

    def _landed(
        self, flight: tuple[int, Hashable], task: asyncio.Task[V], weight: Callable[[V], int]
    ) -> None:
        del self._computing[flight]
        if task.cancelled() or task.exception() is not None:  # retrieved: waiters re-raise it
            return
        value = task.result()
        self.put(flight[0], flight[1], value, weight(value))

    def _reset(self, version: int) -> None:
        self._version = version
        self._entries.clear()
        self._weight = 0
