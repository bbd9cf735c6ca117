"""Traces through the real sidecar: server spans under the app's trace, upstream client spans
under them with the trace context propagated to S2, session events, links to shared work."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.testing import SidecarHarness, SidecarProcess
from sidecar.upstream import UpstreamProtocol
from tests.telemetry.otlp_receiver import OtlpHttpReceiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
APP_SPAN = "00f067aa0ba902b7"
TRACEPARENT = (("traceparent", f"00-{TRACE_ID}-{APP_SPAN}-01"),)


@pytest.fixture
async def traced() -> AsyncIterator[tuple[SidecarHarness, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with SidecarHarness(tracer_provider=provider) as h:
        yield h, exporter


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def hexid(n: int, width: int) -> str:
    return format(n, f"0{width}x")


async def test_read_span_tree_and_propagation(traced: tuple[SidecarHarness, InMemorySpanExporter]) -> None:
    h, exporter = traced
    await h.append("t", [b"a", b"b"])
    await h.stub.Read(pb.ReadRequest(stream="t", seq_num=0, count=10, clamp=True), metadata=TRACEPARENT)
    spans = exporter.get_finished_spans()
    (server,) = by_name(spans, "s2sidecar.v1.StreamService/Read")
    assert server.kind == SpanKind.SERVER
    assert hexid(server.context.trace_id, 32) == TRACE_ID  # the app's trace
    assert server.parent is not None and hexid(server.parent.span_id, 16) == APP_SPAN
    attrs = server.attributes or {}
    assert attrs["rpc.system"] == "grpc" and attrs["rpc.service"] == "s2sidecar.v1.StreamService"
    assert attrs["rpc.method"] == "Read" and attrs["rpc.grpc.status_code"] == 0
    assert (attrs["s2.basin"], attrs["s2.stream"], attrs["s2.start.seq_num"]) == (h.basin, "t", 0)
    assert (attrs["s2.limit.count"], attrs["s2.clamp"], attrs["s2.records"]) == (10, True, 2)
    (client,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.context.trace_id == server.context.trace_id]
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    cattrs = client.attributes or {}
    assert cattrs["http.request.method"] == "GET" and cattrs["http.response.status_code"] == 200
    assert "/v1/streams/t/records?" in str(cattrs["url.full"]) and "seq_num=0" in str(cattrs["url.full"])
    assert cattrs["server.address"] == "127.0.0.1"


async def test_traceparent_reaches_the_upstream(traced: tuple[SidecarHarness, InMemorySpanExporter]) -> None:
    """S2 sees the same trace: the emulator echoes nothing, so check via a tiny upstream."""
    _h, exporter = traced
    seen: list[str] = []

    async def tail(request: aiohttp.web.Request) -> aiohttp.web.Response:
        seen.append(request.headers.get("traceparent", ""))
        return aiohttp.web.json_response({"tail": {"seq_num": 1, "timestamp": 2}})

    app = aiohttp.web.Application()
    app.router.add_get("/v1/streams/{stream}/records/tail", tail)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        # HTTP/1.1: aiohttp serves nothing else (traceparent over HTTP/2: tests/upstream/test_protocol_choice.py).
        upstream = {"basin_endpoint": f"http://127.0.0.1:{port}/v1", "upstream_protocol": UpstreamProtocol.HTTP1}
        async with SidecarHarness(tracer_provider=provider, **upstream) as x:
            await x.stub.CheckTail(pb.CheckTailRequest(stream="s", max_staleness_ms=0), metadata=TRACEPARENT)
    finally:
        await runner.cleanup()
    (header,) = seen
    assert header.startswith(f"00-{TRACE_ID}-")
    client = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT][-1]
    assert header.split("-")[2] == hexid(client.context.span_id, 16)  # parent at S2 = our client span


async def test_check_tail_cache_attribute(traced: tuple[SidecarHarness, InMemorySpanExporter]) -> None:
    h, exporter = traced
    await h.append("c", [b"x"])
    await h.stub.CheckTail(pb.CheckTailRequest(stream="c", max_staleness_ms=0))
    await h.stub.CheckTail(pb.CheckTailRequest(stream="c", max_staleness_ms=60_000))
    first, second = by_name(exporter.get_finished_spans(), "s2sidecar.v1.StreamService/CheckTail")
    assert (first.attributes or {})["s2.cache"] == "miss"
    assert (second.attributes or {})["s2.cache"] == "hit"


async def test_errors_set_status_and_code(traced: tuple[SidecarHarness, InMemorySpanExporter]) -> None:
    h, exporter = traced
    with pytest.raises(grpc.aio.AioRpcError):
        await h.stub.Read(pb.ReadRequest(stream="missing", seq_num=0))
    (server,) = by_name(exporter.get_finished_spans(), "s2sidecar.v1.StreamService/Read")
    assert (server.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert not server.status.is_ok
    client = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT][-1]
    assert (client.attributes or {})["http.response.status_code"] == 404


async def test_session_span_has_reconnect_and_heartbeat_events(
    traced: tuple[SidecarHarness, InMemorySpanExporter],
) -> None:
    h, exporter = traced
    await h.append_many("sess", 3000, size=100)
    await h.inject_fault(kind="session", stream="sess", cut_after_bytes=5000)
    got = 0
    async for msg in h.stub.ReadSession(
        pb.ReadSessionRequest(stream="sess", seq_num=0, count=3001, wait=1), metadata=TRACEPARENT
    ):
        got += len(msg.records)
    assert got == 3000
    (server,) = by_name(exporter.get_finished_spans(), "s2sidecar.v1.StreamService/ReadSession")
    names = [e.name for e in server.events]
    assert "reconnect" in names
    assert "heartbeat" in names  # caught up at the tail, waiting out `wait`
    assert (server.attributes or {})["s2.records"] == 3000
    upstream = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT and s.parent]
    children = [s for s in upstream if s.parent and s.parent.span_id == server.context.span_id]
    assert len(children) >= 2  # the cut session and the resumed one
    assert any((s.attributes or {}).get("s2.protocol") == "s2s" for s in children)


async def test_shared_session_and_coalesced_reads_are_linked(
    traced: tuple[SidecarHarness, InMemorySpanExporter],
) -> None:
    h, exporter = traced
    await h.append("share", [b"0"])
    calls = [h.stub.ReadSession(pb.ReadSessionRequest(stream="share")) for _ in range(2)]
    for call in calls:
        await anext(aiter(call))  # each is caught up (heartbeat) on the shared feed
    for call in calls:
        call.cancel()
    polls = [h.stub.Read(pb.ReadRequest(stream="share", seq_num=1, wait=10)) for _ in range(3)]
    await asyncio.sleep(0.5)
    await h.append("share", [b"1"])
    await asyncio.gather(*polls)
    await asyncio.sleep(0.2)
    spans = exporter.get_finished_spans()
    sessions = by_name(spans, "s2sidecar.v1.StreamService/ReadSession")
    assert len(sessions) == 2
    linked = {link.context.span_id for s in sessions for link in s.links}
    assert len(linked) == 1  # both link to the one shared feed's span
    reads = by_name(spans, "s2sidecar.v1.StreamService/Read")
    leaders = [r for r in reads if not r.links]
    joiners = [r for r in reads if r.links]
    assert len(leaders) == 1 and len(joiners) == 2
    assert all(j.links[0].context.span_id == leaders[0].context.span_id for j in joiners)
    assert all((j.attributes or {}).get("s2.shared") is True for j in joiners)


async def test_otlp_export_from_a_sidecar_process() -> None:
    """The real process with OTEL_* variables exports to an OTLP receiver, in the app's trace,
    and the token is nowhere in what it exports."""
    receiver = await OtlpHttpReceiver().start()
    token = "s2-token-for-otlp-test-6c1d"
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "sidecar-under-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "S2_ACCESS_TOKEN": token,
    }
    try:
        async with SidecarProcess(env=env) as sc:
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"{sc.emulator_url}/v1/streams/otlp/records",
                    headers={"s2-basin": "local-basin", "content-type": "application/json"},
                    json={"records": [{"body": "x"}]},
                ) as resp,
            ):
                assert resp.status == 200
            async with grpc.aio.insecure_channel(sc.address) as channel:
                stub = stream_pb2_grpc.StreamServiceStub(channel)
                await stub.Read(pb.ReadRequest(stream="otlp", seq_num=0), metadata=TRACEPARENT)
            sc.terminate()
            assert await sc.wait() == 0  # shutdown flushes the batch processor
        spans = receiver.spans
        ours = [s for s in spans if s.trace_id == TRACE_ID]
        names = {s.name for s in ours}
        assert "s2sidecar.v1.StreamService/Read" in names and "GET" in names
        assert all(s.resource.get("service.name") == "sidecar-under-test" for s in ours)
        assert all(s.resource.get("deployment.environment") == "test" for s in ours)
        dump = repr([r.SerializeToString() for r in receiver.requests]) + repr(receiver.headers)
        assert token not in dump
    finally:
        await receiver.stop()


def test_tracing_is_off_without_an_exporter() -> None:
    from sidecar.telemetry import setup_tracing

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    assert setup_tracing(env) is None
    assert setup_tracing({**env, "OTEL_TRACES_EXPORTER": "console"}) is not None  # and on when asked
