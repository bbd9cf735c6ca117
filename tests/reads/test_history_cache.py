"""The history cache's core, without sockets: what it keeps, what a lookup returns, what drops it."""

from __future__ import annotations

import pytest

from sidecar.reads import history
from sidecar.reads.history import Confirmation, EvictionPolicy, HistoryCache, Limits
from sidecar.types import Record, StreamPosition, metered_size
from sidecar.wire.protobuf import ReadBatch, batch_from_records, merge_batches
from sidecar.wire.protobuf import decode_read_batch as decode

KEY = ("basin", "s", "")  # a ReadScope: no encryption key
STREAM = KEY[:2]
BIG = 1 << 40


def recs(lo: int, hi: int, *, ts0: int = 1000, body: bytes = b"x" * 10) -> list[Record]:
    return [Record(i, ts0 + i, ((b"h", b"v"),) if i % 3 == 0 else (), body + str(i).encode()) for i in range(lo, hi)]


def batch(lo: int, hi: int, *, tail: int | None = None, **kw: object) -> ReadBatch:
    return batch_from_records(recs(lo, hi, **kw), None if tail is None else StreamPosition(tail, 5))  # type: ignore[arg-type]


def seqs(pieces: list[ReadBatch]) -> list[int]:
    return [r.seq_num for p in pieces for r in p.records()]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lookup_returns_the_upstream_bytes_sliced_and_stops_at_a_gap() -> None:
    c = HistoryCache(BIG)
    b = batch(0, 10, tail=10)
    c.insert(KEY, b)
    c.insert(KEY, batch(20, 30))
    got = c.lookup(KEY, 0, Limits(), BIG)
    assert seqs(got.pieces) == list(range(10)) and got.next_seq_num == 10 and not got.stopped_by_limit
    assert got.pieces[0].tail is None  # history answers carry no tail
    assert merge_batches(got.pieces).data == b.data[: len(got.pieces[0].data)]  # byte for byte
    mid = c.lookup(KEY, 4, Limits(), BIG)
    assert seqs(mid.pieces) == list(range(4, 10))
    assert mid.pieces[0].records() == b.records()[4:]
    assert c.lookup(KEY, 10, Limits(), BIG).records == 0
    assert c.ranges(KEY) == [(0, 10), (20, 30)]
    assert c.gaps(KEY, 0, 40) == [(10, 20), (30, 40)]
    assert c.gaps(KEY, 5, 25) == [(10, 20)]
    assert c.gaps(KEY, 2, 8) == []
    assert c.gaps(("basin", "other"), 0, 5) == [(0, 5)]


def test_overlapping_inserts_keep_one_copy_of_each_record() -> None:
    c = HistoryCache(BIG)
    c.insert(KEY, batch(5, 10))
    c.insert(KEY, batch(20, 25))
    c.insert(KEY, batch(0, 30))
    assert c.ranges(KEY) == [(0, 30)]
    assert seqs(c.lookup(KEY, 0, Limits(), BIG).pieces) == list(range(30))
    before = c.bytes
    c.insert(KEY, batch(3, 27))
    assert c.bytes == before


def test_count_bytes_and_until_stop_where_s2_stops() -> None:
    c = HistoryCache(BIG)
    c.insert(KEY, batch(0, 50))
    got = c.lookup(KEY, 10, Limits(count=5), BIG)
    assert seqs(got.pieces) == list(range(10, 15)) and got.stopped_by_limit
    sizes = [metered_size(r.headers, r.body) for r in recs(0, 50)]
    budget = sum(sizes[10:13]) + sizes[13] - 1  # record 13 does not fit
    got = c.lookup(KEY, 10, Limits(bytes=budget), BIG)
    assert seqs(got.pieces) == [10, 11, 12] and got.metered == sum(sizes[10:13]) and got.stopped_by_limit
    got = c.lookup(KEY, 10, Limits(until=1000 + 17), BIG)  # timestamps are 1000 + seq_num
    assert seqs(got.pieces) == list(range(10, 17)) and got.stopped_by_limit
    got = c.lookup(KEY, 10, Limits(count=100), BIG)  # the bound is past the cache: not reached
    assert got.records == 40 and not got.stopped_by_limit


def test_pieces_fit_the_message_size() -> None:
    c = HistoryCache(BIG)
    c.insert(KEY, batch(0, 100, body=b"y" * 100))
    got = c.lookup(KEY, 0, Limits(), 1000)
    assert all(len(p.data) <= 1000 for p in got.pieces) and len(got.pieces) > 5
    assert seqs(got.pieces) == list(range(100))


def test_a_trim_command_drops_what_it_trims_and_no_further() -> None:
    c = HistoryCache(BIG)
    c.insert(KEY, batch(0, 10))
    c.insert(KEY, batch(10, 20))
    c.insert(KEY, batch(20, 25))
    trim = Record(25, 2000, ((b"", b"trim"),), (10).to_bytes(8, "big"))
    c.insert(KEY, batch_from_records([trim], None))
    assert c.ranges(KEY) == [(10, 26)]  # below 10 is gone; the command itself stays readable
    assert c.lookup(KEY, 5, Limits(), BIG).records == 0
    c.insert(KEY, batch(0, 10))  # a late answer from before the trim is not taken back in
    assert c.ranges(KEY) == [(10, 26)]
    # Past itself: effective point min(500, 26 + 1) = 27 trims through the command, never further.
    past = Record(26, 2001, ((b"", b"trim"),), (500).to_bytes(8, "big"))
    c.insert(KEY, batch_from_records([past], None))
    c.insert(KEY, batch(27, 30, ts0=2000))
    assert c.ranges(KEY) == [(27, 30)]


def test_a_shorter_tail_or_a_forget_drops_the_stream() -> None:
    c = HistoryCache(BIG)
    c.insert(KEY, batch(0, 10))
    c.observe_tail(STREAM, 10)
    assert c.ranges(KEY) == [(0, 10)]
    c.observe_tail(STREAM, 3)  # the tail went backwards: another incarnation
    assert c.ranges(KEY) == [] and c.bytes == 0
    c.insert(KEY, batch(0, 10))
    c.forget(KEY)
    assert c.bytes == 0 and len(c) == 0


def test_what_s2_says_of_a_stream_reaches_every_scope_and_a_scope_only_its_own() -> None:
    """Records read with a key are kept in that key's scope: a lookup in another (or none)
    sees nothing; a tail and a deletion are the stream's, so they reach every scope."""
    keyed = ("basin", "s", "fingerprint-of-a-key")
    c = HistoryCache(BIG)
    c.insert(keyed, batch(0, 10))
    assert c.lookup(KEY, 0, Limits(), BIG).records == 0 and c.lookup(keyed, 0, Limits(), BIG).records == 10
    c.insert(KEY, batch(0, 5))
    c.observe_tail(STREAM, 3)
    assert c.ranges(KEY) == c.ranges(keyed) == [] and c.bytes == 0
    c.insert(KEY, batch(0, 5))
    c.insert(keyed, batch(0, 5))
    c.insert(("basin", "other", ""), batch(0, 5))
    c.forget_stream(STREAM)
    assert c.ranges(KEY) == c.ranges(keyed) == [] and c.ranges(("basin", "other", "")) == [(0, 5)]


def test_age_serves_a_chunk_for_max_age_after_it_arrived_then_it_is_dropped() -> None:
    clock = Clock()
    c = HistoryCache(BIG, max_age=5.0, clock=clock)
    c.insert(KEY, batch(0, 10), asked_at=clock.now - 1.0)
    clock.now += 5.0
    assert c.lookup(KEY, 0, Limits(), BIG).records == 10  # arrived 5.0 s ago: still within
    clock.now += 0.1
    got = c.lookup(KEY, 0, Limits(), BIG)
    # No incarnation was ever seen, so no confirmation could vouch for it: gone, not "stale".
    assert got.records == 0 and not got.stale and c.ranges(KEY) == [] and c.bytes == 0


def test_two_sightings_of_one_incarnation_vouch_for_what_was_read_between_them() -> None:
    clock = Clock()
    c = HistoryCache(BIG, max_age=5.0, clock=clock)
    c.insert(KEY, batch(0, 10), asked_at=99.0)  # asked before the incarnation was first seen
    c.confirm(KEY, Confirmation(100.0, 100.5, "2026-12-07T08:00:00.000000001Z", tail=20, first_remaining=0))
    assert c.knows_incarnation(KEY)
    clock.now = 101.0
    c.insert(KEY, batch(10, 20), asked_at=101.0)
    clock.now = 106.5  # both past their age
    got = c.lookup(KEY, 10, Limits(), BIG)
    assert got.records == 0 and got.stale  # 10..19 can be vouched for: ask S2
    assert c.lookup(KEY, 0, Limits(), BIG).records == 0 and c.ranges(KEY) == [(10, 20)]  # 0..9 never: gone
    c.confirm(KEY, Confirmation(106.5, 106.7, "2026-12-07T08:00:00.000000001Z", tail=20, first_remaining=0))
    clock.now = 111.5
    assert seqs(c.lookup(KEY, 10, Limits(), BIG).pieces) == list(range(10, 20))  # 5.0 s after the confirmation
    clock.now = 111.6
    assert c.lookup(KEY, 10, Limits(), BIG).stale


def test_a_new_incarnation_drops_everything_asked_before_it_was_seen() -> None:
    clock = Clock()
    c = HistoryCache(BIG, max_age=5.0, clock=clock)
    c.confirm(KEY, Confirmation(100.0, 100.1, "A", tail=0))
    clock.now = 100.2
    c.insert(KEY, batch(100, 300), asked_at=100.2)  # incarnation A, 100..299
    clock.now = 101.0
    c.insert(KEY, batch(0, 100, ts0=5000), asked_at=101.0)  # already incarnation B (unknown yet)
    c.confirm(KEY, Confirmation(101.5, 101.6, "B", tail=400, first_remaining=0))
    assert c.ranges(KEY) == []  # none of it is proven B: all asked before B was seen
    clock.now = 102.0
    c.insert(KEY, batch(0, 100, ts0=5000), asked_at=102.0)
    clock.now = 110.0
    assert c.lookup(KEY, 0, Limits(), BIG).stale
    c.confirm(KEY, Confirmation(110.0, 110.1, "B", tail=400, first_remaining=0))
    assert seqs(c.lookup(KEY, 0, Limits(), BIG).pieces) == list(range(100))


def test_a_deleted_stream_is_forgotten_and_a_trim_drops_what_it_removed() -> None:
    clock = Clock()
    c = HistoryCache(BIG, max_age=5.0, clock=clock)
    c.confirm(KEY, Confirmation(100.0, 100.1, "A", tail=0))
    clock.now = 100.5
    c.insert(KEY, batch(0, 10), asked_at=100.2)
    c.insert(KEY, batch(10, 20), asked_at=100.2)
    c.confirm(KEY, Confirmation(101.0, 101.1, "A", tail=20, first_remaining=10))  # trimmed below 10
    assert c.ranges(KEY) == [(10, 20)]
    c.confirm(KEY, Confirmation(102.0, 102.1, None))  # not listed any more (or being deleted)
    assert not c.holds(KEY) and not c.knows_incarnation(KEY) and c.bytes == 0


def test_a_tail_only_rules_out_records_that_arrived_before_it_was_asked_for() -> None:
    clock = Clock()
    c = HistoryCache(BIG, max_age=5.0, clock=clock)
    c.insert(KEY, batch(0, 10))
    clock.now = 101.0
    c.insert(KEY, batch(10, 20))  # appended and read after the tail below was asked for
    c.observe_tail(STREAM, 10, asked_at=100.5)
    assert c.ranges(KEY) == [(0, 20)]
    c.observe_tail(STREAM, 10, asked_at=101.0)  # now the tail is below records it should have seen
    assert c.ranges(KEY) == []


def test_a_lookup_takes_no_chunk_past_max_bytes() -> None:
    c = HistoryCache(BIG)
    for lo in range(0, 30, 10):
        c.insert(KEY, batch(lo, lo + 10))
    one = len(batch(10, 20).data)
    got = c.lookup(KEY, 5, Limits(), BIG, max_bytes=1)
    assert seqs(got.pieces) == list(range(5, 10)) and got.next_seq_num == 10 and not got.stopped_by_limit
    assert c.lookup(KEY, 10, Limits(), BIG, max_bytes=one).records == 10
    assert c.lookup(KEY, 10, Limits(), BIG, max_bytes=one + 1).records == 20


def test_streams_that_hold_nothing_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "MAX_STREAMS", 50)
    c = HistoryCache(BIG)
    for i in range(500):
        c.confirm(("basin", f"s{i}"), Confirmation(1.0, 2.0, "A", tail=0))
    c.insert(KEY, batch(0, 10))
    assert len(c._streams) <= 51 and c.ranges(KEY) == [(0, 10)]


def test_bytes_stay_within_the_bound_and_lru_keeps_what_was_read() -> None:
    one = batch(0, 10).data
    c = HistoryCache(len(one) * 3 + 3 * 400, policy=EvictionPolicy.LRU)
    for lo in range(0, 40, 10):
        c.insert(KEY, batch(lo, lo + 10))
        if lo == 10:
            c.lookup(KEY, 0, Limits(count=1), BIG)  # 0..9 read again: most recently used
    assert c.bytes <= c.max_bytes and c.stats.evictions == 1
    assert c.ranges(KEY) == [(0, 10), (20, 40)]


def test_keep_prefix_keeps_the_start_of_the_stream() -> None:
    one = batch(0, 10).data
    c = HistoryCache(len(one) * 3 + 3 * 400, policy=EvictionPolicy.KEEP_PREFIX)
    for lo in range(0, 50, 10):
        c.insert(KEY, batch(lo, lo + 10))
    assert c.bytes <= c.max_bytes
    assert c.ranges(KEY) == [(0, 30)]


def test_disabled_cache_keeps_nothing() -> None:
    c = HistoryCache(0)
    c.insert(KEY, batch(0, 10))
    assert not c.enabled and c.bytes == 0 and c.lookup(KEY, 0, Limits(), BIG).records == 0


def test_tails_inside_merged_live_batches_never_reach_a_history_answer() -> None:
    c = HistoryCache(BIG)
    merged = merge_batches([batch(0, 3, tail=3), batch(3, 6, tail=6)])  # a tail between records
    assert merged.data.count(b"\x12") >= 2
    c.insert(KEY, merged)
    for start in (0, 2):
        got = c.lookup(KEY, start, Limits(), BIG)
        data = merge_batches(got.pieces).data
        assert seqs(got.pieces) == list(range(start, 6))
        assert data == batch(start, 6).data  # exactly the record fields, no tail
        assert decode(data).tail is None


def test_whole_chunks_are_served_without_indexing_or_copying() -> None:
    c = HistoryCache(BIG)
    b = batch(0, 10)
    c.insert(KEY, b)
    got = c.lookup(KEY, 0, Limits(), BIG)
    assert got.pieces[0].data is b.data
    [chunk] = c.iter_chunks(KEY)
    assert chunk._offsets is None  # nobody needed the index
