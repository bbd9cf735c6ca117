"""The per-call path of unary calls: what every call pays, kept small, with the same behaviour
(metrics, trace context).

Cost is checked without clocks: the Python functions one cached `CheckTail` runs (counted with
`sys.setprofile`), and what the server pre-registers (grpc's asyncio server waits on one future per
pre-registered method before every call it accepts: sidecar/api/registration.py).
"""

from __future__ import annotations

import asyncio
import sys
from types import FrameType
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from sidecar import telemetry as tm
from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.api import reflection
from sidecar.api.instrument import Instrumentation
from sidecar.api.servicer import StreamService
from sidecar.metrics import Metrics
from sidecar.reads import StreamReader
from sidecar.testing import SidecarHarness
from sidecar.types import StreamPosition
from sidecar.upstream import BasinEndpoint, UpstreamClient, UpstreamSettings

BASIN, STREAM = "test-basin", "s"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

# Python functions a cached CheckTail runs with tracing off (21 when this was written; 39 before the
# call path was trimmed in 2026-12). Adding one is fine when a feature needs it: raise the budget and say why.
CHECK_TAIL_BUDGET = 24


class FakeContext:
    """What the handlers ask of grpc's servicer context on the success path."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] = (("user-agent", "grpc-python"),)) -> None:
        self.metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return None


def service(metrics: Metrics) -> StreamService:
    """A service whose tail cache knows the stream (upstream unreachable: a miss would fail)."""
    client = UpstreamClient(UpstreamSettings(BasinEndpoint.parse("http://127.0.0.1:1/v1")), metrics=metrics)
    reader = StreamReader(client)
    reader.tails.observe((BASIN, STREAM), StreamPosition(16, 1_700_000_000_000))
    return StreamService(reader, instrumentation=Instrumentation(tm.Telemetry.disabled(), metrics))


def request() -> pb.CheckTailRequest:
    return pb.CheckTailRequest(basin=BASIN, stream=STREAM, max_staleness_ms=60_000)


async def test_cached_check_tail_runs_few_python_functions() -> None:
    svc = service(Metrics(runtime=False))
    ctx: Any = FakeContext()
    await svc.check_tail(request(), ctx)  # first call: metric series and name verdicts made
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename != __file__:  # not FakeContext's
            calls.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        answer = await svc.check_tail(request(), ctx)
    finally:
        sys.setprofile(None)
    assert (answer.tail.seq_num, answer.tail.timestamp) == (16, 1_700_000_000_000)
    assert len(calls) <= CHECK_TAIL_BUDGET, "\n".join(calls)


async def test_metrics_of_calls_as_before() -> None:
    """Series looked up once per method still count every call, by its status."""
    metrics = Metrics(runtime=False)
    svc = service(metrics)
    ctx: Any = FakeContext()
    for _ in range(3):
        await svc.check_tail(request(), ctx)
    instr = svc.instr
    for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OK):
        with instr.call("Read", ctx) as rec:
            rec.code = code
            rec.sent(2, 10)
    text = metrics.render()
    assert 's2_sidecar_rpcs_total{method="CheckTail",code="OK"} 3' in text
    assert 's2_sidecar_rpc_duration_seconds_count{method="CheckTail"} 3' in text
    assert 's2_sidecar_rpcs_total{method="Read",code="NOT_FOUND"} 2' in text
    assert 's2_sidecar_rpcs_total{method="Read",code="OK"} 1' in text
    assert 's2_sidecar_records_sent_total{method="Read"} 6' in text
    assert 's2_sidecar_bytes_sent_total{method="Read"} 30' in text
    assert 'records_sent_total{method="CheckTail"}' not in text  # no series for what never happened
    assert 's2_sidecar_tail_cache_requests_total{result="hit"} 3' in text


async def test_call_runs_in_the_apps_trace_context_only() -> None:
    """Tracing off: a call runs in the trace context the app sent, or in an empty one, whatever
    the task's context was; the task's own is back after the call."""
    instr = Instrumentation(tm.Telemetry.disabled(), Metrics(runtime=False))
    outer = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1))

    def current() -> SpanContext:
        return trace.get_current_span().get_span_context()

    async def in_task() -> None:
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(outer)))
        try:
            with instr.call("CheckTail", FakeContext()):  # type: ignore[arg-type]
                assert not current().is_valid  # not the task's span: no trace context sent
            assert current() == outer
            with instr.call("CheckTail", FakeContext((("traceparent", TRACEPARENT),))):  # type: ignore[arg-type]
                assert format(current().trace_id, "032x") == TRACEPARENT.split("-")[1]
            assert current() == outer
        finally:
            otel_context.detach(token)
        with instr.call("CheckTail", FakeContext()):  # type: ignore[arg-type]
            assert not current().is_valid
        assert not current().is_valid

    await asyncio.create_task(in_task())


class RecordingServer:
    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.registered.append(service)


def test_reflection_is_served_by_a_generic_handler_only() -> None:
    server = RecordingServer()
    reflection.enable(server, ["s2sidecar.v1.StreamService"])  # type: ignore[arg-type]
    assert server.registered == []
    assert len(server.generic) == 1


async def test_reflection_and_health_still_answer(harness: SidecarHarness) -> None:
    """Served by generic handlers, reflection lists the services and gives the documented file
    (with the proto's comments), and health answers."""
    stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="s2sidecar.v1.StreamService"),
    ]
    answers = [a async for a in stub.ServerReflectionInfo(iter(requests))]
    services = {s.name for s in answers[0].list_services_response.service}
    assert {"s2sidecar.v1.StreamService", "grpc.health.v1.Health"} <= services
    files = [FileDescriptorProto.FromString(b) for b in answers[1].file_descriptor_response.file_descriptor_proto]
    [api] = [f for f in files if f.name.endswith("stream.proto")]
    assert api.source_code_info.location  # the comments grpcurl describe shows
    health = health_pb2_grpc.HealthStub(harness.channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(service="s2sidecar.v1.StreamService"))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_sidecar_pre_registers_no_method(monkeypatch: pytest.MonkeyPatch) -> None:
    """Health and reflection too (each pre-registered method is waited on before every call)."""
    import grpc.aio._server as aio_server

    registered: list[str] = []
    real = aio_server.Server.add_registered_method_handlers

    def record(self: Any, service: str, handlers: Any) -> None:
        registered.append(service)
        real(self, service, handlers)

    monkeypatch.setattr(aio_server.Server, "add_registered_method_handlers", record)
    async with SidecarHarness() as h:
        health = health_pb2_grpc.HealthStub(h.channel)
        resp = await health.Check(health_pb2.HealthCheckRequest(service="s2sidecar.v1.StreamService"))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    assert registered == []
