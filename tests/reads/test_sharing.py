"""One upstream for many apps: shared live sessions, the tail cache, and request coalescing.

The emulator's request counts and open sessions are the witness of what went upstream."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness


async def upstream(h: SidecarHarness, stream: str) -> tuple[dict[str, int], int]:
    stats = await h.emulator_stats()
    key = f"{h.basin}/{stream}"
    return stats["requests"].get(key, {}), int(stats["open_sessions"].get(key, 0))


async def follow(h: SidecarHarness, req: pb.ReadSessionRequest, want: int, out: list[int]) -> None:
    async for msg in h.stub.ReadSession(req):
        out.extend(r.seq_num for r in msg.records)
        if len(out) >= want:
            return


async def wait_until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_hundred_followers_share_one_upstream_session() -> None:
    async with SidecarHarness() as h:
        await h.append_many("shared", 10)
        seen: list[list[int]] = [[] for _ in range(100)]
        req = pb.ReadSessionRequest(stream="shared", tail_offset=0)
        tasks = [asyncio.create_task(follow(h, req, 500, out)) for out in seen]
        await wait_until(lambda: _subscribers(h, 100))
        for _ in range(5):
            await h.append_many("shared", 100)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for out in seen:
            assert out == list(range(10, 510))
        counts, _ = await upstream(h, "shared")
        assert counts["session_s2s"] == 1  # the shared feed, and nobody else


async def _subscribers(h: SidecarHarness, n: int) -> bool:
    assert h.sidecar is not None and h.sidecar.reader is not None
    return h.sidecar.reader.hub.subscribers >= n


async def test_a_reader_behind_catches_up_alone_then_joins_without_gap_or_repeat() -> None:
    async with SidecarHarness() as h:
        await h.append_many("behind", 5000)
        live: list[int] = []
        leader = asyncio.create_task(follow(h, pb.ReadSessionRequest(stream="behind"), 300, live))
        await wait_until(lambda: _subscribers(h, 1))
        late: list[int] = []
        laggard = asyncio.create_task(follow(h, pb.ReadSessionRequest(stream="behind", seq_num=0), 5300, late))
        await wait_until(lambda: _subscribers(h, 2))  # it caught up on its own and joined the feed
        _, open_sessions = await upstream(h, "behind")
        assert open_sessions == 1  # its own catch-up session is closed again
        for _ in range(3):
            await h.append_many("behind", 100)
        await asyncio.wait_for(asyncio.gather(leader, laggard), 30)
        assert live == list(range(5000, 5300))
        assert late == list(range(5300))
        counts, _ = await upstream(h, "behind")
        assert counts["session_s2s"] == 2  # the feed, plus the laggard's catch-up


async def test_a_slow_follower_neither_delays_the_others_nor_loses_records() -> None:
    async with SidecarHarness(subscriber_queue=4) as h:
        await h.append_many("slow", 1)
        fast: list[list[int]] = [[] for _ in range(5)]
        req = pb.ReadSessionRequest(stream="slow", tail_offset=0)
        fast_tasks = [asyncio.create_task(follow(h, req, 40, out)) for out in fast]
        slow_call = h.stub.ReadSession(req)
        slow_seen: list[int] = []
        await wait_until(lambda: _subscribers(h, 6))
        # 40 separate appends: 40 batches, ten times the slow one's queue; 20 MB in all, more than
        # gRPC's flow-control windows hold for an app that does not read.
        for _ in range(40):
            await h.append("slow", [b"x" * 500_000])
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*fast_tasks), 10)
        assert time.monotonic() - started < 5
        for out in fast:
            assert out == list(range(1, 41))
        async for msg in slow_call:  # the slow app wakes up: everything is there, once, in order
            slow_seen.extend(r.seq_num for r in msg.records)
            if len(slow_seen) >= 40:
                break
        slow_call.cancel()
        assert slow_seen == list(range(1, 41))
        counts, _ = await upstream(h, "slow")
        assert counts["session_s2s"] >= 2  # it was moved to its own upstream session


async def test_thousand_cold_check_tails_make_one_upstream_request() -> None:
    async with SidecarHarness() as h:
        await h.append_many("cold", 7)
        answers = await asyncio.gather(*(h.stub.CheckTail(pb.CheckTailRequest(stream="cold")) for _ in range(1000)))
        assert {a.tail.seq_num for a in answers} == {7}
        counts, _ = await upstream(h, "cold")
        assert counts["tail"] == 1, counts  # the first miss goes upstream; the rest share it or its answer


async def test_concurrent_check_tails_arriving_together_share_one_request() -> None:
    async with SidecarHarness() as h:
        await h.append_many("together", 3)
        await h.inject_fault(kind="tail", stream="together", stall_seconds=0.5)  # keep the first in flight
        answers = await asyncio.gather(*(h.stub.CheckTail(pb.CheckTailRequest(stream="together")) for _ in range(200)))
        assert {a.tail.seq_num for a in answers} == {3}
        counts, _ = await upstream(h, "together")
        assert counts["tail"] == 1


async def test_identical_reads_share_one_upstream_request() -> None:
    async with SidecarHarness() as h:
        await h.append_many("poll", 2)
        req = pb.ReadRequest(stream="poll", seq_num=2, wait=10)  # long polls: all in flight at once
        calls = [h.stub.Read(req) for _ in range(50)]
        await asyncio.sleep(0.5)
        await h.append("poll", [b"news"])
        answers = await asyncio.gather(*calls)
        assert all([r.body for r in a.records] == [b"news"] for a in answers)
        counts, _ = await upstream(h, "poll")
        assert counts["read"] == 1


async def test_a_follower_keeps_the_tail_current_for_everyone() -> None:
    async with SidecarHarness() as h:
        await h.append_many("hot", 3)
        seen: list[int] = []
        follower = asyncio.create_task(follow(h, pb.ReadSessionRequest(stream="hot"), 10**9, seen))
        await wait_until(lambda: _subscribers(h, 1))
        await h.append_many("hot", 4)
        await wait_until(lambda: _returns(seen, 7))
        before, _ = await upstream(h, "hot")
        answer = await h.stub.CheckTail(pb.CheckTailRequest(stream="hot", max_staleness_ms=0))  # must be current
        assert answer.tail.seq_num == 7 and answer.age_ms == 0
        after, _ = await upstream(h, "hot")
        assert after.get("tail", 0) == before.get("tail", 0)  # answered from memory
        follower.cancel()


async def _returns(seen: list[int], n: int) -> bool:
    """The follower started at the tail (seq_num 3): it has everything up to seq_num n - 1."""
    return len(seen) >= n - 3


async def test_cached_tails_honour_max_staleness() -> None:
    async with SidecarHarness() as h:
        await h.append_many("stale", 5)
        first = await h.stub.CheckTail(pb.CheckTailRequest(stream="stale", max_staleness_ms=0))  # fills the cache
        assert first.tail.seq_num == 5
        await h.append_many("stale", 1)
        cached = await h.stub.CheckTail(pb.CheckTailRequest(stream="stale", max_staleness_ms=60_000))
        assert cached.tail.seq_num == 5  # what was seen, within the allowed age
        counts, _ = await upstream(h, "stale")
        assert counts.get("tail", 0) == 1
        fresh = await h.stub.CheckTail(pb.CheckTailRequest(stream="stale", max_staleness_ms=0))
        assert fresh.tail.seq_num == 6 and fresh.age_ms == 0
        again = await h.stub.CheckTail(pb.CheckTailRequest(stream="stale"))  # the default: up to 1 s old
        assert again.tail.seq_num == 6 and again.age_ms < 1000
        counts, _ = await upstream(h, "stale")
        assert counts["tail"] == 2


async def test_errors_are_not_cached() -> None:
    async with SidecarHarness() as h:
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await h.stub.CheckTail(pb.CheckTailRequest(stream="nope", max_staleness_ms=60_000))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
        counts, _ = await upstream(h, "nope")
        assert counts["tail"] == 2


async def test_an_idle_shared_feed_closes_its_upstream_session() -> None:
    async with SidecarHarness() as h:
        assert h.sidecar is not None and h.sidecar.reader is not None
        h.sidecar.reader.hub.linger = 0.2
        await h.append_many("idle", 1)
        call = h.stub.ReadSession(pb.ReadSessionRequest(stream="idle"))
        await anext(aiter(call))  # the heartbeat at the tail
        assert (await upstream(h, "idle"))[1] == 1
        call.cancel()
        await wait_until(lambda: _closed(h, "idle"))


async def _closed(h: SidecarHarness, stream: str) -> bool:
    return (await upstream(h, stream))[1] == 0
