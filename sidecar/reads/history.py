"""The history cache, sans-IO: records below the tail, per stream, as the upstream's protobuf bytes.

Records below a stream's tail never change (until a trim or retention removes them, or the stream
is deleted and re-created), so what the sidecar already read for one app can answer the next.
Every batch the sidecar receives from S2 (one-shot reads, sessions, shared feeds) is kept as it
came: the `ReadBatch.records` fields, byte for byte, with an index of where each record's field
starts and its timestamp. A lookup returns slices of those bytes (concatenated record fields are
a valid `ReadBatch`), never rebuilt records.

Records are kept per *scope* (`ReadScope`: the stream and the fingerprint of the encryption key
the reads used, if any), and a lookup sees only its own scope: what was read with one key is never
served to a read with another key, or none (docs/encryption.md). Below, "stream" is a scope.

Storage is a sorted list of non-overlapping *chunks* per stream (one per upstream batch, or the
part of it not already held); contiguous chunks form the covered ranges. The whole cache is
bounded in bytes and evicts whole chunks (`EvictionPolicy`).

Freshness (the promise: no record of a deleted incarnation, or below a trim, is served later than
`max_age` after it went). Each chunk remembers when the read that brought it was sent
(`asked_at`) and when it arrived (`received_at`); a chunk is served while either holds:
- **age**: it arrived at most `max_age` ago (it existed upstream when it was read);
- **incarnation**: S2's stream listing named the same incarnation (`created_at`) before the chunk
  was asked for (`seen_since`) and again after it arrived (`confirmed_at`, at most `max_age`
  ago). An incarnation is one unbroken interval of time, so two sightings of one `created_at`
  prove every record read between them belongs to it; the confirmation also brings the tail and
  the first remaining record, so trims are known as of `confirmed_at` too.
A chunk that is neither, and never can be (asked before the incarnation was first seen), is
dropped when met. The owner asks S2 (`confirm`); this module only keeps times and decides.
Other signs of change drop entries at once: a trim command record seen in a batch, an upstream
answer that starts past where it was asked (trimmed), a tail below records held, a 404 (`forget`).
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from sidecar.types import ReadScope, StreamKey
from sidecar.wire.protobuf import ReadBatch
from sidecar.wire.records import index_records, metered_sizes, trim_point

# Bytes charged per chunk and per record on top of the record bytes: the chunk object, its two
# index arrays (8 bytes per entry each) and the bookkeeping around them. Keeps the bound honest for
# streams of tiny records, whose index would otherwise be free.
CHUNK_OVERHEAD = 200
RECORD_OVERHEAD = 16

# Streams known (what S2's listing said of them) without records held: at most about this many.
MAX_STREAMS = 100_000


class EvictionPolicy(Enum):
    """Which chunk goes when the cache is over its bound (see `tests/bench/history_eviction.py`)."""

    LRU = "lru"  # least recently read or written
    KEEP_PREFIX = "keep-prefix"  # the highest seq_num of the least recently used stream


@dataclass(eq=False, slots=True)
class Chunk:
    """Contiguous records `first` .. `first + n - 1`; `data` is their record fields and nothing
    else. The index (`offsets`: where record i starts; `timestamps`) is built only when a read, or
    an insert that keeps part of a batch, needs part of the chunk: a replay that takes whole chunks
    never pays for it."""

    key: ReadScope
    first: int
    n: int
    data: bytes
    last_timestamp: int
    asked_at: float  # when the read that brought it was sent (the cache's clock)
    received_at: float  # when it arrived
    _offsets: array[int] | None = None
    _timestamps: array[int] | None = None
    metered: array[int] | None = None  # per record, computed when a read bounds bytes

    @property
    def end(self) -> int:
        """First seq_num after the chunk."""
        return self.first + self.n

    @property
    def charge(self) -> int:
        return len(self.data) + CHUNK_OVERHEAD + RECORD_OVERHEAD * self.n

    @property
    def offsets(self) -> array[int]:
        if self._offsets is None:
            self._offsets, self._timestamps = index_records(self.data, self.n)
        return self._offsets

    @property
    def timestamps(self) -> array[int]:
        if self._timestamps is None:
            self._offsets, self._timestamps = index_records(self.data, self.n)
        return self._timestamps

    def metered_sizes(self) -> array[int]:
        if self.metered is None:
            self.metered = metered_sizes(self.data)
        return self.metered

    def piece(self, lo: int, hi: int) -> ReadBatch:
        """Records [lo, hi) (seq_nums) as a batch without a tail: a byte slice, nothing rebuilt."""
        if lo == self.first and hi == self.end:
            return ReadBatch(self.data, self.n, lo, hi - 1, self.last_timestamp, None)  # no copy
        i, j = lo - self.first, hi - self.first
        offsets = self.offsets
        body = self.data[offsets[i] : offsets[j]]
        return ReadBatch(body, hi - lo, lo, hi - 1, self.timestamps[j - 1], None)


@dataclass(slots=True)
class Limits:
    """What one answer from the cache may hold (the reader's remaining bounds)."""

    count: int | None = None
    bytes: int | None = None  # metered
    until: int | None = None  # exclusive timestamp


@dataclass(slots=True)
class Served:
    """A lookup's answer: contiguous pieces from the asked seq_num, and why it stopped."""

    pieces: list[ReadBatch]
    records: int
    metered: int  # counted only when the limits bound bytes
    stopped_by_limit: bool  # a bound (count, bytes, until) ends the read right after these
    next_seq_num: int  # where the read goes on (a gap, or the end of the cache)
    stale: bool = False  # stopped at a chunk held but not servable until S2 confirms the stream


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What S2 said of a stream between `started` and `ended` (the cache's clock): its
    incarnation from the stream listing (`created_at`; None: no such stream, or being deleted),
    its tail, and its first remaining record (None: none remains below the tail)."""

    started: float
    ended: float
    incarnation: str | None
    tail: int = 0
    first_remaining: int | None = None


@dataclass(slots=True)
class _Stream:
    chunks: list[Chunk] = field(default_factory=list)  # sorted by `first`, never overlapping
    firsts: list[int] = field(default_factory=list)  # `first` of each chunk, for bisection
    incarnation: str | None = None  # S2's `created_at` for the stream, once listed (module docs)
    seen_since: float | None = None  # when that incarnation was first seen (a sighting's end)
    confirmed_at: float | None = None  # when a sighting of it last started
    trim_point: int = 0  # records below this are known gone

    @property
    def end(self) -> int:
        return self.chunks[-1].end if self.chunks else 0


@dataclass
class Stats:
    evictions: int = 0  # chunks evicted to stay within `max_bytes`


class HistoryCache:
    """Records below the tail, per stream, bounded in bytes (module docs)."""

    def __init__(
        self,
        max_bytes: int,
        *,
        max_age: float = 5.0,
        policy: EvictionPolicy = EvictionPolicy.LRU,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.policy = policy
        self._clock = clock
        self._streams: OrderedDict[ReadScope, _Stream] = OrderedDict()  # least recently used first
        # Each stream's scopes (one per encryption key its records were read with, and none): what
        # S2 says of a stream, not of one key's reads (a tail, a deletion), applies to all of them.
        self._scopes: dict[StreamKey, set[ReadScope]] = {}
        self._use: OrderedDict[int, Chunk] = OrderedDict()  # id(chunk) -> chunk, least recently used first
        self.bytes = 0
        self.stats = Stats()
        # Called with the number of chunks evicted, on every eviction (a metric).
        self.on_evict: Callable[[int], None] = lambda _n: None

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._use)

    def ranges(self, key: ReadScope) -> list[tuple[int, int]]:
        """The covered [start, end) ranges of a stream (tests, debugging)."""
        out: list[tuple[int, int]] = []
        s = self._streams.get(key)
        for c in s.chunks if s is not None else ():
            if out and out[-1][1] == c.first:
                out[-1] = (out[-1][0], c.end)
            else:
                out.append((c.first, c.end))
        return out

    # -- freshness --------------------------------------------------------------------------------

    def servable(self, c: Chunk, now: float | None = None) -> bool:
        """Whether `c` may be served now (module docs: by age, or by incarnation)."""
        now = self._clock() if now is None else now
        if now - c.received_at <= self.max_age:
            return True
        s = self._streams.get(c.key)
        return (
            s is not None
            and self._provable(s, c)
            and s.confirmed_at is not None
            and c.received_at <= s.confirmed_at
            and now - s.confirmed_at <= self.max_age
        )

    @staticmethod
    def _provable(s: _Stream, c: Chunk) -> bool:
        """A confirmation can vouch for `c`: it was asked for after its incarnation was seen."""
        return s.seen_since is not None and c.asked_at >= s.seen_since

    def holds(self, key: ReadScope) -> bool:
        s = self._streams.get(key)
        return s is not None and bool(s.chunks)

    def knows_incarnation(self, key: ReadScope) -> bool:
        """Whether S2's listing has named the stream's incarnation (reads asked from now on can be
        confirmed later, not only served by age)."""
        s = self._streams.get(key)
        return s is not None and s.seen_since is not None

    def same_incarnation(self, key: ReadScope, incarnation: str) -> bool:
        s = self._streams.get(key)
        return s is not None and s.incarnation == incarnation

    def servable_at(self, key: ReadScope, seq_num: int) -> bool:
        """Whether a lookup at `seq_num` would serve at least one record now."""
        s = self._streams.get(key)
        c = None if s is None or seq_num < s.trim_point else self._chunk_at(s, seq_num)
        return c is not None and self.servable(c)

    def confirm(self, key: ReadScope, c: Confirmation) -> None:
        """Take what S2 said of the stream (module docs): a new incarnation drops every chunk
        asked before it was seen; a tail below what is held or a trim drops what they rule out;
        chunks no confirmation can vouch for go once their age is past."""
        if c.incarnation is None:
            self.forget(key)  # deleted (or being deleted): whatever comes back is a new stream
            return
        s = self._stream(key)
        if s.incarnation != c.incarnation:
            if s.incarnation is not None:  # re-created since we last looked
                self._drop_where(s, lambda chunk: chunk.asked_at < c.ended)
                s.trim_point = 0
            s.incarnation, s.seen_since = c.incarnation, c.ended
        if self._past_tail(s, c.tail, c.started):
            self._drop_where(s, lambda _chunk: True)  # more than S2 has: not this incarnation
        self.trim(key, c.tail if c.first_remaining is None else c.first_remaining)
        s.confirmed_at = c.started
        now = self._clock()
        self._drop_where(s, lambda chunk: not self.servable(chunk, now))

    # -- what S2 tells us -------------------------------------------------------------------------

    def forget(self, key: ReadScope) -> None:
        """Drop everything held for the stream in this scope (deleted, re-created, or otherwise unknown)."""
        s = self._remove(key)
        for c in s.chunks if s is not None else ():
            self._drop(c)

    def forget_stream(self, stream: StreamKey) -> None:
        """`forget` in every scope of the stream (S2 said it is gone, whatever the key)."""
        for key in list(self._scopes.get(stream, ())):
            self.forget(key)

    def trim(self, key: ReadScope, point: int) -> None:
        """Records below `point` are gone upstream: drop every chunk that holds any of them (a
        chunk straddling the point goes whole; what is above gets fetched again if needed)."""
        s = self._streams.get(key)
        if s is None:
            return
        s.trim_point = max(s.trim_point, point)
        while s.chunks and s.chunks[0].first < point:
            self._drop(s.chunks.pop(0))
            s.firsts.pop(0)

    def observe_tail(self, stream: StreamKey, tail_seq_num: int, asked_at: float | None = None) -> None:
        """A tail below records held means a new incarnation (or a stale tail; dropping is safe).
        Only records that arrived before the tail was asked for (`asked_at`) count: later ones may
        be newer than the tail S2 answered. A tail is the stream's, whatever key read its records."""
        for key in list(self._scopes.get(stream, ())):
            s = self._streams.get(key)
            if s is not None and self._past_tail(s, tail_seq_num, asked_at):
                self.forget(key)

    @staticmethod
    def _past_tail(s: _Stream, tail_seq_num: int, asked_at: float | None) -> bool:
        if s.end <= tail_seq_num:
            return False
        return any(c.end > tail_seq_num and (asked_at is None or c.received_at <= asked_at) for c in s.chunks)

    def insert(self, key: ReadScope, batch: ReadBatch, asked_at: float | None = None) -> None:
        """Keep a batch S2 returned (records only; its tail says nothing about history), from a
        read sent at `asked_at` (default: now)."""
        if not self.enabled or not batch.count:
            return
        assert batch.first_seq_num is not None
        if point := trim_point(batch.data):
            self.trim(key, point)  # trim command records: what they trim is gone
        s = self._stream(key)
        first, end = batch.first_seq_num, batch.first_seq_num + batch.count
        if end <= s.trim_point:
            return
        now = self._clock()
        whole = Chunk(
            key, first, batch.count, batch.record_fields(), batch.last_timestamp or 0,
            now if asked_at is None else min(asked_at, now), now,
        )  # fmt: skip
        lo = max(first, s.trim_point)
        # Keep only what is not held yet: the gaps in [lo, end) between held chunks.
        gaps: list[tuple[int, int]] = []
        pos = lo
        i = bisect.bisect_right(s.firsts, pos) - 1
        if i >= 0 and s.chunks[i].end > pos:
            pos = s.chunks[i].end
        i += 1
        while pos < end:
            nxt = s.chunks[i].first if i < len(s.chunks) else end
            if nxt > pos:
                gaps.append((pos, min(end, nxt)))
            if i >= len(s.chunks):
                break
            pos = max(pos, s.chunks[i].end)
            i += 1
        for a, b in gaps:
            self._add(s, whole, a, b)
        self._evict()

    def _add(self, s: _Stream, whole: Chunk, lo: int, hi: int) -> None:
        if lo == whole.first and hi == whole.end:
            chunk = whole  # the batch as it came: no copy, no index
        else:
            i, j = lo - whole.first, hi - whole.first
            offsets, stamps = whole.offsets, whole.timestamps
            base = offsets[i]
            chunk = Chunk(
                whole.key,
                lo,
                hi - lo,
                whole.data[base : offsets[j]],
                stamps[j - 1],
                whole.asked_at,
                whole.received_at,
                array("q", (o - base for o in offsets[i : j + 1])),
                stamps[i:j],
            )
        k = bisect.bisect_left(s.firsts, lo)
        s.chunks.insert(k, chunk)
        s.firsts.insert(k, lo)
        self._use[id(chunk)] = chunk
        self.bytes += chunk.charge

    # -- serving ----------------------------------------------------------------------------------

    def lookup(
        self, key: ReadScope, seq_num: int, limits: Limits, max_piece_bytes: int, *, max_bytes: int | None = None
    ) -> Served:
        """Cached records from `seq_num` on, as far as they are contiguous, servable now (module
        docs) and within `limits` (count, metered bytes: S2 stops before a record that would pass
        it; until: before the first record at or past it); no further chunk is taken once the
        pieces hold `max_bytes`. Each piece is at most `max_piece_bytes` serialized (a single
        record may be larger). A chunk met that can no longer be served, nor ever confirmed, is
        dropped."""
        pieces: list[ReadBatch] = []
        records = metered = 0
        s = self._streams.get(key)
        pos = seq_num
        stopped = stale = False
        if s is None or seq_num < s.trim_point:
            return Served(pieces, 0, 0, False, seq_num)
        self._streams.move_to_end(key)
        now = self._clock()
        i = bisect.bisect_right(s.firsts, pos) - 1
        taken = 0  # bytes of the pieces so far
        while 0 <= i < len(s.chunks) and not stopped and (max_bytes is None or taken < max_bytes):
            c = s.chunks[i]
            if not c.first <= pos < c.end:
                break
            if not self.servable(c, now):
                if self._provable(s, c):
                    stale = True  # a confirmation from S2 may vouch for it again
                else:
                    self._drop_where(s, lambda chunk, gone=c: chunk is gone)  # type: ignore[misc]
                break
            self._touch(c)
            hi = c.end
            if limits.count is not None:
                hi = min(hi, pos + limits.count - records)
            if limits.until is not None and c.last_timestamp >= limits.until:
                # timestamps never decrease within a stream: bisect for the first at/after `until`.
                k = bisect.bisect_left(c.timestamps, limits.until, pos - c.first, hi - c.first)
                hi = c.first + k
            if limits.bytes is not None:
                sizes = c.metered_sizes()
                k = pos - c.first
                while c.first + k < hi and metered + sizes[k] <= limits.bytes:
                    metered += sizes[k]
                    k += 1
                hi = c.first + k
            if hi < c.end:
                stopped = True  # a bound falls inside this chunk: nothing past it will be read
            if hi <= pos:
                break
            if pos == c.first and hi == c.end and len(c.data) <= max_piece_bytes:
                pieces.append(c.piece(pos, hi))  # the common case of a replay: whole chunks
                records += hi - pos
                taken += len(c.data)
                pos = hi
            # Else cut into pieces that fit a message.
            while pos < hi:
                stop = hi
                base = c.offsets[pos - c.first]
                if c.offsets[hi - c.first] - base > max_piece_bytes:
                    limit = base + max_piece_bytes
                    k = bisect.bisect_right(c.offsets, limit, pos - c.first + 1, hi - c.first + 1) - 1
                    stop = max(pos + 1, c.first + k)
                pieces.append(c.piece(pos, stop))
                records += stop - pos
                taken += len(pieces[-1].data)
                pos = stop
            if limits.count is not None and records >= limits.count:
                stopped = True
            i += 1
        return Served(pieces, records, metered, stopped, pos, stale)

    def gaps(self, key: ReadScope, lo: int, hi: int) -> list[tuple[int, int]]:
        """The [start, end) ranges of [lo, hi) the cache does not hold: what would go upstream."""
        out: list[tuple[int, int]] = []
        pos = lo
        for a, b in self.ranges(key):
            if b <= pos:
                continue
            if a >= hi:
                break
            if a > pos:
                out.append((pos, a))
            pos = max(pos, b)
            if pos >= hi:
                break
        if pos < hi:
            out.append((pos, hi))
        return out

    def iter_chunks(self, key: ReadScope) -> Iterator[Chunk]:
        s = self._streams.get(key)
        return iter(s.chunks if s is not None else ())

    # -- internals --------------------------------------------------------------------------------

    def _stream(self, key: ReadScope) -> _Stream:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _Stream()
            self._scopes.setdefault(key[:2], set()).add(key)
            if len(self._streams) > MAX_STREAMS:
                # Streams that hold nothing keep only what S2 said of them: the least recently
                # used of those go first, so reading many streams cannot grow this for ever.
                for k in [k for k, v in self._streams.items() if not v.chunks and k != key][: len(self._streams) // 10]:
                    self._remove(k)
        self._streams.move_to_end(key)
        return s

    def _remove(self, key: ReadScope) -> _Stream | None:
        s = self._streams.pop(key, None)
        scopes = self._scopes.get(key[:2])
        if scopes is not None:
            scopes.discard(key)
            if not scopes:
                del self._scopes[key[:2]]
        return s

    @staticmethod
    def _chunk_at(s: _Stream, seq_num: int) -> Chunk | None:
        i = bisect.bisect_right(s.firsts, seq_num) - 1
        if i >= 0 and s.chunks[i].first <= seq_num < s.chunks[i].end:
            return s.chunks[i]
        return None

    def _drop_where(self, s: _Stream, doomed: Callable[[Chunk], bool]) -> None:
        keep = [c for c in s.chunks if not doomed(c)]
        if len(keep) == len(s.chunks):
            return
        for c in s.chunks:
            if doomed(c):
                self._drop(c)
        s.chunks = keep
        s.firsts = [c.first for c in keep]

    def _touch(self, c: Chunk) -> None:
        if self.policy is EvictionPolicy.LRU:
            self._use.move_to_end(id(c))

    def _drop(self, c: Chunk) -> None:
        if self._use.pop(id(c), None) is not None:
            self.bytes -= c.charge

    def _evict(self) -> None:
        n = 0
        while self.bytes > self.max_bytes and self._use:
            victim = self._victim()
            s = self._streams[victim.key]
            k = bisect.bisect_left(s.firsts, victim.first)
            del s.chunks[k]
            del s.firsts[k]
            self._drop(victim)
            if not s.chunks:
                self._remove(victim.key)
            n += 1
        if n:
            self.stats.evictions += n
            self.on_evict(n)

    def _victim(self) -> Chunk:
        if self.policy is EvictionPolicy.KEEP_PREFIX:
            # A replay reads from the start: keep each stream's lowest records, drop its highest
            # from the least recently used stream that holds any.
            for s in self._streams.values():
                if s.chunks:
                    return s.chunks[-1]
        return next(iter(self._use.values()))
