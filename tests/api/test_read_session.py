"""`ReadSession` end to end: catch-up, following live, stops, heartbeats, resumption, cleanup."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.types import AppendRecord
from sidecar.upstream import UpstreamFormat
from tests.api.helpers import collect, padded

Code = grpc.StatusCode


async def _open_sessions(h: SidecarHarness, stream: str) -> int:
    stats = await h.emulator_stats()
    return int(stats["open_sessions"].get(f"{h.basin}/{stream}", 0))


async def test_session_with_count_reads_across_batches_and_ends(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 2600)
    records, _ = await collect(harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, count=2500)))
    assert [r.seq_num for r in records] == list(range(2500))
    assert [r.body for r in records[:3]] == [padded(0), padded(1), padded(2)]


async def test_bounded_session_ends_at_the_tail(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 50)
    records, _ = await collect(harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=10, count=1000)))
    assert [r.seq_num for r in records] == list(range(10, 50))


async def test_follow_from_tail_offset_sees_new_records(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 20)
    call = harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, tail_offset=10))
    seen: list[int] = []
    heartbeat_tail = None
    appended_at = None
    async for msg in call:
        if not msg.records:
            heartbeat_tail = msg.tail.seq_num
            if appended_at is None:
                appended_at = time.monotonic()
                await harness.append(stream, [b"live-1", b"live-2"])
            continue
        seen += [r.seq_num for r in msg.records]
        if seen[-1] == 21:
            break
    call.cancel()
    assert seen == list(range(10, 22))
    assert heartbeat_tail == 20  # caught up at the tail before the live records came
    assert appended_at is not None and time.monotonic() - appended_at < 1.0


async def test_session_until_timestamp_ends(harness: SidecarHarness, stream: str) -> None:
    base = int(time.time() * 1000) - 60_000
    await harness.append(stream, [AppendRecord(body=b"x", timestamp=base + i) for i in range(10)])
    records, _ = await collect(
        harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, until=base + 4))
    )
    assert [r.seq_num for r in records] == [0, 1, 2, 3]


async def test_session_from_timestamp(harness: SidecarHarness, stream: str) -> None:
    base = int(time.time() * 1000) - 60_000
    await harness.append(stream, [AppendRecord(body=b"x", timestamp=base + 100 * i) for i in range(10)])
    req = pb.ReadSessionRequest(stream=stream, timestamp=base + 650, count=100)
    records, _ = await collect(harness.stub.ReadSession(req))
    assert [r.seq_num for r in records] == [7, 8, 9]


async def test_session_wait_ends_an_idle_bounded_session(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 3)
    started = time.monotonic()
    req = pb.ReadSessionRequest(stream=stream, seq_num=0, count=100, wait=1)
    records, heartbeats = await collect(harness.stub.ReadSession(req))
    assert [r.seq_num for r in records] == [0, 1, 2]
    assert heartbeats >= 1
    assert 0.9 <= time.monotonic() - started < 10


async def test_heartbeats_carry_the_tail_while_idle(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 4)
    call = harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=4))
    heartbeats = []
    async for msg in call:
        assert not msg.records
        heartbeats.append(msg.tail.seq_num)
        if len(heartbeats) == 2:  # the switch to live, then one after an idle gap
            break
    call.cancel()
    assert heartbeats == [4, 4]


async def test_session_on_a_missing_stream_is_not_found(harness: SidecarHarness, stream: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0)))
    assert info.value.code() == Code.NOT_FOUND


async def test_session_past_the_tail_is_out_of_range(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 2)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=3)))
    assert info.value.code() == Code.OUT_OF_RANGE


@pytest.mark.emulator_only  # emulator hooks: stats, faults
async def test_cancelled_session_closes_its_upstream_session(harness: SidecarHarness, stream: str) -> None:
    # A bounded session has its own upstream session (live followers share one: see test_sharing).
    await harness.append_many(stream, 2)
    call = harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, count=100, wait=60))
    await anext(aiter(call))
    assert await _open_sessions(harness, stream) == 1
    call.cancel()
    for _ in range(50):
        if await _open_sessions(harness, stream) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _open_sessions(harness, stream) == 0


@pytest.mark.emulator_only  # emulator hooks: stats, faults
async def test_session_resumes_after_the_upstream_cuts_it(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 5000, size=100)
    await harness.inject_fault(kind="session", stream=stream, basin=harness.basin, cut_after_bytes=50_000, times=3)
    records, _ = await collect(harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, count=5000)))
    assert [r.seq_num for r in records] == list(range(5000))
    stats = await harness.emulator_stats()
    counts = stats["requests"][f"{harness.basin}/{stream}"]
    assert counts.get("session_s2s", 0) >= 4  # three cut sessions, then one that finished


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@pytest.mark.parametrize("fmt", [UpstreamFormat.JSON])
async def test_sse_upstream_gives_the_same_records(fmt: UpstreamFormat) -> None:
    async with SidecarHarness(upstream_format=fmt) as h:
        recs = [AppendRecord(body=bytes([i % 256]) * i, headers=((b"h", bytes([i % 256])),)) for i in range(300)]
        await h.append("sse", recs)
        records, _ = await collect(h.stub.ReadSession(pb.ReadSessionRequest(stream="sse", seq_num=0, count=300)))
        assert [(r.seq_num, r.body, r.headers[0].value) for r in records] == [
            (i, bytes([i % 256]) * i, bytes([i % 256])) for i in range(300)
        ]
        read = await h.stub.Read(pb.ReadRequest(stream="sse", seq_num=290))
        assert [r.seq_num for r in read.records] == list(range(290, 300))
        stats = await h.emulator_stats()
        assert stats["requests"][f"{h.basin}/sse"].get("session_sse", 0) == 1


@pytest.mark.emulator_only  # emulator hooks: stats, faults
async def test_falls_back_to_sse_when_the_upstream_refuses_s2s(caplog: pytest.LogCaptureFixture) -> None:
    async with SidecarHarness() as h:
        await h.append_many("fallback", 30)
        await h.inject_fault(kind="session", stream="fallback", fail=1, status=415, code="bad_header")
        records, _ = await collect(h.stub.ReadSession(pb.ReadSessionRequest(stream="fallback", seq_num=0, count=30)))
        assert [r.seq_num for r in records] == list(range(30))
        counts = (await h.emulator_stats())["requests"][f"{h.basin}/fallback"]
        assert (counts.get("session_s2s", 0), counts.get("session_sse", 0)) == (1, 1)
        assert "falling back to SSE" in caplog.text
