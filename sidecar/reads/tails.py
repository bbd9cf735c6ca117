"""The tail cache: one view of each stream's tail, shared by every local app.

Fed for free by everything that sees a tail (one-shot batches, session batches, heartbeats, and
`CheckTail` answers). A stream followed by a shared live session is *tracked*: its session
hears every append within milliseconds, so while it is healthy its tail is current (age 0).
Bounded: the least recently used streams are forgotten past `max_streams`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from sidecar.types import StreamKey, StreamPosition


class CachedTail(NamedTuple):
    """A NamedTuple, not a frozen dataclass: made for every CheckTail, and cheaper to build."""

    tail: StreamPosition
    age: float  # seconds since it was known to be the tail (0 while a live session tracks it)
    hit: bool = True  # answered from the cache (False: S2 was asked just now)


@dataclass(slots=True)
class _Entry:
    tail: StreamPosition
    observed_at: float
    tracked_until: float = 0.0  # a live session vouches for this tail until then


class TailCache:
    def __init__(self, max_streams: int = 10_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_streams = max_streams
        self._clock = clock
        self._entries: OrderedDict[StreamKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, key: StreamKey, tail: StreamPosition, *, authoritative: bool = False) -> None:
        """Record a tail someone saw. Tails only grow, so a smaller one is a late answer and is
        ignored, unless `authoritative` (a fresh CheckTail: e.g. the stream was recreated)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(tail, now)
            if len(self._entries) > self.max_streams:
                self._entries.popitem(last=False)
            return
        self._entries.move_to_end(key)
        if authoritative or tail.seq_num > entry.tail.seq_num:
            entry.tail, entry.observed_at = tail, now
        elif tail.seq_num == entry.tail.seq_num:
            entry.observed_at = now

    def track(self, key: StreamKey, tail: StreamPosition, *, for_seconds: float) -> None:
        """A healthy live session is caught up at `tail` and will hear any append at once: the
        tail is current for `for_seconds` (the session's silence bound) unless renewed."""
        self.observe(key, tail)
        entry = self._entries[key]
        entry.tracked_until = self._clock() + for_seconds

    def untrack(self, key: StreamKey) -> None:
        """The live session broke or left: fall back to the age of the last observation."""
        if (entry := self._entries.get(key)) is not None:
            entry.tracked_until = 0.0

    def peek(self, key: StreamKey) -> StreamPosition | None:
        """The newest tail known for the stream, however old (tails only grow: an old one
        understates how far the stream has gone); does not count as a use for the LRU."""
        entry = self._entries.get(key)
        return None if entry is None else entry.tail

    def get(self, key: StreamKey, max_age: float) -> CachedTail | None:
        """The cached tail if it is at most `max_age` seconds old, else None (a miss)."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None:
            age = 0.0 if entry.tracked_until > now else now - entry.observed_at
            if age <= max_age:
                self._entries.move_to_end(key)
                return CachedTail(entry.tail, age)
        return None
