"""Upstream connection pools under load: over HTTP/1.1 every waiting `Read` holds an upstream
connection for up to its `wait`; a call that does not wait must never queue behind them."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.upstream import UpstreamProtocol
from tests.api.helpers import error_info, retry_info


async def test_long_polls_never_delay_calls_that_do_not_wait() -> None:
    """Observed: 100 `Read(wait=20)` took all 100 unary connections, and a `CheckTail` and a plain
    `Read` failed DEADLINE_EXCEEDED at their 5 s deadline. Long polls have their own bound
    (--long-poll-connections, 3 here): past it they wait for a connection within their own
    deadline, and still get their records."""
    async with SidecarHarness(
        unary_connections=2, long_poll_connections=3, upstream_protocol=UpstreamProtocol.HTTP1
    ) as h:
        polled = [f"poll-{i}" for i in range(8)]  # distinct streams: nothing coalesces
        for name in [*polled, "other"]:
            await h.create_stream(name)
        await h.append("other", [b"x"])
        polls = [
            asyncio.ensure_future(h.stub.Read(pb.ReadRequest(stream=name, seq_num=0, wait=10), timeout=30))
            for name in polled
        ]
        await asyncio.sleep(1.0)
        assert h.sidecar is not None and h.sidecar.client is not None
        stats = h.sidecar.client.pool_stats()
        assert (stats["long_poll_in_use"], stats["unary_in_use"]) == (3, 0), stats
        tail = await h.stub.CheckTail(pb.CheckTailRequest(stream="other", max_staleness_ms=0), timeout=5)
        assert tail.tail.seq_num == 1
        read = await h.stub.Read(pb.ReadRequest(stream="other", seq_num=0), timeout=5)
        assert [r.body for r in read.records] == [b"x"]
        assert not any(p.done() for p in polls)
        # The 5 polls past the bound are waiting for a connection: records arrive, and each poll
        # gets its own once a connection is free, well within its deadline.
        for i, name in enumerate(polled):
            await h.append(name, [f"r{i}".encode()])
        answers = await asyncio.gather(*polls)
        assert [[r.body for r in a.records] for a in answers] == [[f"r{i}".encode()] for i in range(8)]


async def _first(call: Any) -> str:
    """What a ReadSession says first: "heartbeat" (no records), "records", or its error code."""
    try:
        msg = await call.read()
    except grpc.aio.AioRpcError as e:
        return str(e.code().name)
    return "records" if msg.records else "heartbeat"


async def test_a_session_past_session_connections_is_refused_at_once_never_left_silent() -> None:
    """Observed: with 1,200 sessions (tail_offset 0, wait 20) and --session-connections 1000, 200
    got no heartbeat for 20 s and ended at 40 s. Now a session that would need a connection past
    the bound ends at once RESOURCE_EXHAUSTED, naming the setting, with RetryInfo (the clients retry
    it). Live followers of one stream share one upstream session, so they take one connection."""
    async with SidecarHarness(session_connections=5, upstream_protocol=UpstreamProtocol.HTTP1) as h:
        names = ["shared", *(f"own-{i}" for i in range(8))]
        for name in names:
            await h.create_stream(name)
        followers = [h.stub.ReadSession(pb.ReadSessionRequest(stream="shared", tail_offset=0)) for _ in range(10)]
        # `wait` makes a session its own: it ends after 20 s without records, so it cannot share.
        own = [h.stub.ReadSession(pb.ReadSessionRequest(stream=f"own-{i}", tail_offset=0, wait=20)) for i in range(7)]
        firsts = await asyncio.wait_for(asyncio.gather(*(_first(c) for c in followers + own)), 5)
        assert firsts[:10] == ["heartbeat"] * 10  # one upstream session serves all ten
        assert sorted(firsts[10:]) == ["RESOURCE_EXHAUSTED"] * 3 + ["heartbeat"] * 4, firsts
        refused = next(c for c, f in zip(own, firsts[10:], strict=True) if f == "RESOURCE_EXHAUSTED")
        details = await refused.details()
        assert "all 5 (--session-connections / S2_SIDECAR_SESSION_CONNECTIONS)" in details, details
        err = grpc.aio.AioRpcError(
            await refused.code(), await refused.initial_metadata(), await refused.trailing_metadata(), details
        )
        assert retry_info(err).retry_delay.seconds == 1
        assert error_info(err).reason == "session_connections"
        # Once sessions end, their connections serve new ones.
        for call in own:
            call.cancel()
        for _ in range(50):
            assert h.sidecar is not None and h.sidecar.client is not None
            if h.sidecar.client.pool_stats()["session_in_use"] <= 1:
                break
            await asyncio.sleep(0.1)
        late = h.stub.ReadSession(pb.ReadSessionRequest(stream="own-7", tail_offset=0, wait=20))
        assert await asyncio.wait_for(_first(late), 5) == "heartbeat"
        late.cancel()
        for call in followers:
            call.cancel()
