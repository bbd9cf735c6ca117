"""An app that gives up on a call frees what the call held upstream, and says nothing alarming in
the sidecar's logs."""

from __future__ import annotations

import asyncio
import time

import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness


async def unary_in_use_drops_to(h: SidecarHarness, n: int, within: float) -> bool:
    assert h.sidecar is not None and h.sidecar.client is not None
    end = time.monotonic() + within
    while h.sidecar.client.pool_stats()["unary_in_use"] > n:
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_cancelled_long_polls_release_their_upstream_connections() -> None:
    async with SidecarHarness(unary_connections=4) as h:
        streams = [f"poll-{i}" for i in range(12)]  # distinct streams: nothing coalesces
        for name in [*streams, "other"]:
            await h.create_stream(name)
        await h.append("other", [b"x"])
        calls = [h.stub.Read(pb.ReadRequest(stream=name, tail_offset=0, wait=20)) for name in streams]
        await asyncio.sleep(1.5)
        assert h.sidecar is not None and h.sidecar.client is not None
        assert h.sidecar.client.pool_stats()["unary_in_use"] == 4  # every connection is long-polling
        for call in calls:
            call.cancel()
        started = time.monotonic()
        resp = await h.stub.CheckTail(pb.CheckTailRequest(stream="other", max_staleness_ms=0), timeout=5)
        assert resp.tail.seq_num == 1
        assert time.monotonic() - started < 3  # not after the 20 s polls of callers long gone
        assert await unary_in_use_drops_to(h, 0, within=3)
        for call in calls:
            assert call.cancelled() or (await call.code()) == grpc.StatusCode.CANCELLED


async def test_a_new_caller_after_the_last_one_left_starts_a_fresh_request() -> None:
    """Identical calls share one upstream request; once every caller has left it is cancelled,
    and the next identical call is not handed the cancelled one."""
    async with SidecarHarness(unary_connections=4) as h:
        await h.create_stream("shared")
        request = pb.ReadRequest(stream="shared", tail_offset=0, wait=20)
        first = [h.stub.Read(request) for _ in range(3)]
        await asyncio.sleep(0.5)
        for call in first:
            call.cancel()
        await asyncio.sleep(0.2)
        late = h.stub.Read(request, timeout=10)
        await asyncio.sleep(0.3)
        await h.append("shared", [b"news"])
        resp = await late
        assert [r.body for r in resp.records] == [b"news"]
        assert await unary_in_use_drops_to(h, 0, within=3)
