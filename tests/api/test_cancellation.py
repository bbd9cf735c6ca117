"""An app that gives up on a call frees what the call held upstream, and says nothing alarming in
the sidecar's logs."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.upstream import UpstreamProtocol


async def unary_in_use_drops_to(h: SidecarHarness, n: int, within: float, pool: str = "unary") -> bool:
    assert h.sidecar is not None and h.sidecar.client is not None
    end = time.monotonic() + within
    while h.sidecar.client.pool_stats()[f"{pool}_in_use"] > n:
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_cancelled_long_polls_release_their_upstream_connections() -> None:
    # HTTP/1.1: this checks the --long-poll-connections pool (one request per connection); HTTP/2 below.
    async with SidecarHarness(long_poll_connections=4, upstream_protocol=UpstreamProtocol.HTTP1) as h:
        streams = [f"poll-{i}" for i in range(12)]  # distinct streams: nothing coalesces
        for name in [*streams, "other"]:
            await h.create_stream(name)
        await h.append("other", [b"x"])
        calls = [h.stub.Read(pb.ReadRequest(stream=name, tail_offset=0, wait=20)) for name in streams]
        await asyncio.sleep(1.5)
        assert h.sidecar is not None and h.sidecar.client is not None
        assert h.sidecar.client.pool_stats()["long_poll_in_use"] == 4  # every connection is long-polling
        for call in calls:
            call.cancel()
        started = time.monotonic()
        resp = await h.stub.CheckTail(pb.CheckTailRequest(stream="other", max_staleness_ms=0), timeout=5)
        assert resp.tail.seq_num == 1
        assert time.monotonic() - started < 3  # not after the 20 s polls of callers long gone
        assert await unary_in_use_drops_to(h, 0, within=3, pool="long_poll")
        for call in calls:
            assert call.cancelled() or (await call.code()) == grpc.StatusCode.CANCELLED


async def test_cancelled_long_polls_close_their_http2_streams() -> None:
    async with SidecarHarness(upstream_protocol=UpstreamProtocol.HTTP2) as h:
        streams = [f"poll-{i}" for i in range(12)]  # distinct streams: nothing coalesces
        for name in [*streams, "other"]:
            await h.create_stream(name)
        await h.append("other", [b"x"])
        calls = [h.stub.Read(pb.ReadRequest(stream=name, tail_offset=0, wait=20)) for name in streams]
        await asyncio.sleep(1.5)
        assert h.sidecar is not None and h.sidecar.client is not None
        assert h.sidecar.client.pool_stats()["streams_h2"] == 12  # every poll holds an HTTP/2 stream
        for call in calls:
            call.cancel()
        resp = await h.stub.CheckTail(pb.CheckTailRequest(stream="other", max_staleness_ms=0), timeout=5)
        assert resp.tail.seq_num == 1
        end = time.monotonic() + 3
        while h.sidecar.client.pool_stats()["streams_h2"] > 0:  # closed, not left for the 20 s polls
            assert time.monotonic() < end, h.sidecar.client.pool_stats()
            await asyncio.sleep(0.05)
        assert await unary_in_use_drops_to(h, 0, within=1)
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


async def test_cancelling_a_session_blocked_in_send_logs_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    """The app stops reading (gRPC's flow-control windows fill, the sidecar's send blocks) and
    then cancels: an everyday event, so no ERROR records or tracebacks, with tracing on."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caplog.set_level(logging.INFO)
    async with SidecarHarness(tracer_provider=provider) as h:
        await h.append_many("big", 40, size=900_000, batch=1)  # ~36 MB: far more than the windows
        for _ in range(3):
            call = h.stub.ReadSession(pb.ReadSessionRequest(stream="big", seq_num=0))
            await asyncio.sleep(1.0)  # never read: the sidecar's send blocks
            call.cancel()
            await asyncio.sleep(0.5)
            gc.collect()  # finalize anything the cancellation left behind
        await asyncio.sleep(0.5)
        # still serving
        resp = await h.stub.Read(pb.ReadRequest(stream="big", seq_num=39), timeout=5)
        assert [r.seq_num for r in resp.records] == [39]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, "\n".join(f"{r.name}: {r.getMessage()}" for r in errors)
    sessions = [s for s in exporter.get_finished_spans() if s.name.endswith("/ReadSession")]
    assert len(sessions) == 3
    assert all(s.attributes and s.attributes.get("rpc.grpc.status_code") == 1 for s in sessions)  # CANCELLED
    provider.shutdown()
