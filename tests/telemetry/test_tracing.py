"""`setup_tracing` against real OTLP receivers (HTTP and gRPC), and W3C propagation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar import telemetry
from sidecar.telemetry import Telemetry, extract_context, inject_headers, setup_tracing
from tests.telemetry.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
async def http_receiver() -> AsyncIterator[OtlpHttpReceiver]:
    r = await OtlpHttpReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def grpc_receiver() -> AsyncIterator[OtlpGrpcReceiver]:
    r = await OtlpGrpcReceiver().start()
    yield r
    await r.stop()


async def _flush_and_stop(provider: TracerProvider) -> None:
    # The exporters block on their own thread: keep this loop free so the receiver can answer.
    assert await asyncio.to_thread(provider.force_flush, 10_000)
    await asyncio.to_thread(provider.shutdown)


async def test_otlp_http_exports_span_with_resource(http_receiver: OtlpHttpReceiver) -> None:
    provider = setup_tracing(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.url,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=abc",
            "OTEL_SERVICE_NAME": "x",
            "OTEL_RESOURCE_ATTRIBUTES": "a=b,deployment.environment=test%20env",
        }
    )
    assert provider is not None
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("Read", attributes={telemetry.RPC_SYSTEM: "grpc", telemetry.S2_STREAM: "s"}):
        pass
    await _flush_and_stop(provider)
    [span] = http_receiver.spans
    assert span.name == "Read"
    assert span.attributes == {"rpc.system": "grpc", "s2.stream": "s"}
    assert span.resource["service.name"] == "x"
    assert span.resource["a"] == "b"
    assert span.resource["deployment.environment"] == "test env"
    assert span.resource["telemetry.sdk.language"] == "python"
    assert http_receiver.headers[0]["x-collector-key"] == "abc"


async def test_endpoint_alone_selects_otlp_and_default_service_name(http_receiver: OtlpHttpReceiver) -> None:
    provider = setup_tracing({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": http_receiver.url + "/v1/traces"})
    assert provider is not None
    provider.get_tracer("t").start_span("s").end()
    await _flush_and_stop(provider)
    [span] = http_receiver.spans
    assert span.resource["service.name"] == "s2-sidecar"


async def test_otlp_grpc_protocol(grpc_receiver: OtlpGrpcReceiver) -> None:
    provider = setup_tracing(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": "via-grpc",
        }
    )
    assert provider is not None
    provider.get_tracer("t").start_span("over-grpc").end()
    await _flush_and_stop(provider)
    [span] = grpc_receiver.spans
    assert (span.name, span.resource["service.name"]) == ("over-grpc", "via-grpc")


async def test_sampler_always_off_exports_nothing(http_receiver: OtlpHttpReceiver) -> None:
    provider = setup_tracing(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.url,
            "OTEL_TRACES_SAMPLER": "always_off",
        }
    )
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("dropped") as span:
        assert not span.is_recording()
    await _flush_and_stop(provider)
    assert http_receiver.requests == []


def test_sampler_from_environ() -> None:
    assert (
        "TraceIdRatioBased{0.25}"
        in telemetry.build_sampler(
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
        ).get_description()
    )
    assert telemetry.build_sampler({}).get_description().startswith("ParentBased{root:AlwaysOnSampler")
    assert telemetry.build_sampler({"OTEL_TRACES_SAMPLER": "nonsense"}).get_description().startswith("ParentBased")


def test_disabled_and_unconfigured_give_none() -> None:
    assert setup_tracing({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) is None
    assert setup_tracing({"OTEL_SDK_DISABLED": "TRUE"}, exporter=InMemorySpanExporter()) is None
    assert setup_tracing({}) is None  # no collector configured: no spans at all
    assert setup_tracing({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}) is None


def test_console_prints(capsys: pytest.CaptureFixture[str]) -> None:
    provider = setup_tracing({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "printed"})
    assert provider is not None
    provider.get_tracer("t").start_span("to-console").end()
    provider.force_flush()
    provider.shutdown()
    out = json.loads(capsys.readouterr().out)
    assert out["name"] == "to-console"
    assert out["resource"]["attributes"]["service.name"] == "printed"


def test_explicit_exporter_is_synchronous() -> None:
    exporter = InMemorySpanExporter()
    provider = setup_tracing({}, exporter=exporter)
    assert provider is not None
    provider.get_tracer("t").start_span("now").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["now"]


def test_extract_context_from_grpc_metadata() -> None:
    metadata = (("Traceparent", TRACEPARENT), ("tracestate", "k=v"), ("x-bin", b"\x00"), ("authorization", "t"))
    ctx = extract_context(metadata)
    sc = trace.get_current_span(ctx).get_span_context()
    assert (format(sc.trace_id, "032x"), format(sc.span_id, "016x")) == (TRACE_ID, PARENT_ID)
    assert sc.is_remote and sc.trace_state.get("k") == "v"
    # A span started in that context continues the app's trace.
    exporter = InMemorySpanExporter()
    provider = setup_tracing({}, exporter=exporter)
    assert provider is not None
    provider.get_tracer("t").start_span("child", context=ctx).end()
    [span] = exporter.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert (span.context.trace_id, span.parent.span_id) == (int(TRACE_ID, 16), int(PARENT_ID, 16))


def test_extract_context_without_traceparent_is_empty() -> None:
    for metadata in (None, (), (("traceparent", "garbage"),)):
        assert not trace.get_current_span(extract_context(metadata)).get_span_context().is_valid


def test_inject_headers_uses_current_span() -> None:
    provider = setup_tracing({}, exporter=InMemorySpanExporter())
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("upstream") as span:
        headers: dict[str, str] = {"s2-basin": "b"}
        inject_headers(headers)
    sc = span.get_span_context()
    assert headers["traceparent"] == f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
    assert headers["s2-basin"] == "b"


def test_telemetry_disabled_still_passes_app_context_through() -> None:
    tel = Telemetry.disabled()
    assert not tel.enabled
    ctx = extract_context([("traceparent", TRACEPARENT)])
    with tel.tracer.start_as_current_span("noop", context=ctx) as span:
        assert not span.is_recording()
        headers: dict[str, str] = {}
        inject_headers(headers)
    assert headers["traceparent"] == TRACEPARENT


def test_telemetry_from_provider() -> None:
    assert not Telemetry.from_provider(None).enabled
    tel = Telemetry.from_provider(setup_tracing({}, exporter=InMemorySpanExporter()))
    assert tel.enabled
    with tel.tracer.start_as_current_span("real") as span:
        assert span.is_recording()
