"""Upstream connection pools under load (issue 20): over HTTP/1.1 every waiting `Read` holds an
upstream connection for up to its `wait`; a call that does not wait must never queue behind them."""

from __future__ import annotations

import asyncio

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.config import UpstreamProtocol
from sidecar.testing import SidecarHarness


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
