"""A shared-feed subscriber's queue, without sockets: a lagging app's backlog goes out merged, but
never as a message larger than `MERGE_BYTES` (a lagging follower with large records once got a
6,288,072-byte message and failed RESOURCE_EXHAUSTED at its gRPC client)."""

from __future__ import annotations

from sidecar.reads.hub import Subscription
from sidecar.types import Record, StreamPosition
from sidecar.upstream.client import MERGE_BYTES
from sidecar.wire.protobuf import ReadBatch, batch_from_records

ONE_AND_A_HALF_MIB = 1536 * 1024


def big_batch(first: int, n: int = 3) -> ReadBatch:
    """`n` records of about 0.5 MiB each: ~1.5 MiB of protobuf."""
    return batch_from_records(
        [Record(s, s, (), b"x" * (ONE_AND_A_HALF_MIB // n)) for s in range(first, first + n)], None
    )


async def test_a_backlog_is_merged_without_passing_the_merge_limit() -> None:
    sub = Subscription(maxsize=64)
    for i in range(4):
        assert sub.offer(big_batch(3 * i))
    sizes, seq_nums = [], []
    while sub.items:
        batch = await sub.next()
        assert batch is not None
        sizes.append(len(batch.data))
        seq_nums.extend(r.seq_num for r in batch.records())
    assert seq_nums == list(range(12))
    assert max(sizes) <= MERGE_BYTES  # before: 1.5 + 1.5 MiB merged into one 3 MiB message


async def test_small_batches_still_merge_and_heartbeats_go_alone() -> None:
    sub = Subscription(maxsize=64)
    small = [batch_from_records([Record(s, s, (), b"y")], None) for s in range(5)]
    for b in small[:3]:
        sub.offer(b)
    sub.offer(batch_from_records([], StreamPosition(3, 3)))  # a heartbeat
    for b in small[3:]:
        sub.offer(b)
    first = await sub.next()
    assert first is not None and first.count == 3  # merged
    hb = await sub.next()
    assert hb is not None and hb.count == 0 and hb.tail == StreamPosition(3, 3)
    rest = await sub.next()
    assert rest is not None and rest.count == 2
