"""OpenTelemetry tracing: an SDK set-up from the standard `OTEL_*` variables, W3C propagation
helpers, and the attribute names the sidecar's spans use.

The set-up is built by hand (no auto-configuration), so it reads the variables itself:

- `OTEL_SDK_DISABLED=true`: no provider (tracing off).
- `OTEL_TRACES_EXPORTER`: `otlp`, `console` or `none`, comma-separated. **Default: `otlp` when an
  OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
  otherwise `none`** — unlike the specification's `otlp`, so that a sidecar with no collector does
  not log connection errors forever. With no exporter there is no provider either: spans that go
  nowhere would only cost CPU.
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (default)
  or `grpc`. `http/json` is not implemented by the Python exporters: it falls back to
  `http/protobuf` with a warning.
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) / `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces`
  appended for HTTP), `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS`.
  Timeout, compression and certificate variables are read by the exporters themselves, from the
  process environment.
- `OTEL_SERVICE_NAME` (default `s2-sidecar`), `OTEL_RESOURCE_ATTRIBUTES`.
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`).

The global tracer provider is never set here: the caller decides (it can be set once per process).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any, Final, Protocol
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.re import parse_env_headers

from sidecar.errors import (
    ConnectFailed,
    HostNotFound,
    PoolExhausted,
    ProtocolError,
    S2Error,
    SidecarError,
    TransportError,
    UpstreamTimeout,
)

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME: Final = "s2-sidecar"
TRACER_NAME: Final = "s2_sidecar"

# --- attribute names, in one place --------------------------------------------------------------
# OpenTelemetry semantic conventions (RPC and HTTP client, stable names).
RPC_SYSTEM: Final = "rpc.system"  # always "grpc"
RPC_SYSTEM_GRPC: Final = "grpc"
RPC_SERVICE: Final = "rpc.service"  # "s2sidecar.v1.StreamService"
RPC_METHOD: Final = "rpc.method"  # "Read", "ReadSession", "CheckTail"
RPC_GRPC_STATUS_CODE: Final = "rpc.grpc.status_code"  # int
HTTP_REQUEST_METHOD: Final = "http.request.method"
URL_FULL: Final = "url.full"  # the request URL; never a header (the token travels in one)
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"  # exception class name, or the status code as a string
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"  # upstream HTTP: "1.1" or "2"
# S2's own.
S2_BASIN: Final = "s2.basin"
S2_STREAM: Final = "s2.stream"
S2_START_SEQ_NUM: Final = "s2.start.seq_num"
S2_START_TIMESTAMP: Final = "s2.start.timestamp"
S2_START_TAIL_OFFSET: Final = "s2.start.tail_offset"
S2_LIMIT_COUNT: Final = "s2.limit.count"
S2_LIMIT_BYTES: Final = "s2.limit.bytes"
S2_UNTIL: Final = "s2.until"
S2_WAIT: Final = "s2.wait"
S2_CLAMP: Final = "s2.clamp"
S2_RECORDS: Final = "s2.records"  # records delivered
S2_BYTES: Final = "s2.bytes"  # metered bytes delivered
S2_UPSTREAM_KIND: Final = "s2.upstream.kind"  # "read", "tail" or "session"
S2_PROTOCOL: Final = "s2.protocol"  # "s2s" or "sse" for upstream sessions
S2_SHARED: Final = "s2.shared"  # the call rode shared upstream work (coalesced request, shared session)
S2_CACHE: Final = "s2.cache"  # S2_CACHE_HIT or S2_CACHE_MISS
S2_CACHE_HIT: Final = "hit"
S2_CACHE_MISS: Final = "miss"
S2_RETRIES: Final = "s2.retries"

# --- set-up ---------------------------------------------------------------------------------------
_SAMPLERS: Final[Mapping[str, Sampler]] = {
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_on": DEFAULT_ON,
    "parentbased_always_off": DEFAULT_OFF,
}
_RATIO_SAMPLERS: Final = {"traceidratio": TraceIdRatioBased, "parentbased_traceidratio": ParentBasedTraceIdRatio}


def _get(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _version() -> str:
    try:
        return importlib_metadata.version("s2-sidecar")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def build_resource(environ: Mapping[str, str]) -> Resource:
    """service.name (OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES > `s2-sidecar`), service.version,
    the SDK's telemetry.sdk.* attributes and OTEL_RESOURCE_ATTRIBUTES (`k=v,k2=v2`, URL-encoded)."""
    try:
        sdk_version = importlib_metadata.version("opentelemetry-sdk")
    except importlib_metadata.PackageNotFoundError:
        sdk_version = "unknown"
    attrs: dict[str, str] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version,
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": _version(),
    }
    for item in _get(environ, "OTEL_RESOURCE_ATTRIBUTES").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            log.warning("OTEL_RESOURCE_ATTRIBUTES: ignoring %r (expected key=value)", item)
            continue
        attrs[key.strip()] = unquote(value.strip())
    if service_name := _get(environ, "OTEL_SERVICE_NAME"):
        attrs["service.name"] = service_name
    return Resource(attrs)


def build_sampler(environ: Mapping[str, str]) -> Sampler:
    name = _get(environ, "OTEL_TRACES_SAMPLER").lower() or "parentbased_always_on"
    if name in _SAMPLERS:
        return _SAMPLERS[name]
    if name in _RATIO_SAMPLERS:
        raw = _get(environ, "OTEL_TRACES_SAMPLER_ARG")
        try:
            ratio = float(raw) if raw else 1.0
            if not 0.0 <= ratio <= 1.0:
                raise ValueError
        except ValueError:
            log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio in [0, 1]: using 1.0", raw)
            ratio = 1.0
        return _RATIO_SAMPLERS[name](ratio)
    log.warning("OTEL_TRACES_SAMPLER=%r is not supported: using parentbased_always_on", name)
    return DEFAULT_ON


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    raw = _get(environ, "OTEL_TRACES_EXPORTER")
    if not raw:
        endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if any(_get(environ, e) for e in endpoints) else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if "none" in names else list(dict.fromkeys(names))


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        _get(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or _get(environ, "OTEL_EXPORTER_OTLP_PROTOCOL")
    ).lower() or "http/protobuf"
    headers = dict(
        parse_env_headers(
            _get(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS") or _get(environ, "OTEL_EXPORTER_OTLP_HEADERS"),
            liberal=True,
        )
    )
    signal_endpoint = _get(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base_endpoint = _get(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError:
            log.warning("OTLP protocol grpc needs opentelemetry-exporter-otlp-proto-grpc: using http/protobuf")
        else:
            return GrpcExporter(endpoint=signal_endpoint or base_endpoint or "http://localhost:4317", headers=headers)
    elif protocol != "http/protobuf":
        log.warning("OTLP protocol %r is not supported: using http/protobuf", protocol)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    if signal_endpoint:
        endpoint = signal_endpoint
    elif base_endpoint:
        endpoint = base_endpoint.rstrip("/") + "/v1/traces"
    else:
        endpoint = "http://localhost:4318/v1/traces"
    return HttpExporter(endpoint=endpoint, headers=headers)


def setup_tracing(
    environ: Mapping[str, str] | None = None, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """A `TracerProvider` configured from `environ` (default `os.environ`), or None when tracing is
    off (`OTEL_SDK_DISABLED=true`, or no exporter configured: see the module docstring).

    With `exporter` (tests), spans go to it alone through a `SimpleSpanProcessor` and
    `OTEL_TRACES_EXPORTER` is ignored; otherwise each configured exporter gets a
    `BatchSpanProcessor` (exports happen on its own thread, off the event loop). The caller owns the
    provider: `shutdown()` it on exit to flush, and set it global or not.
    """
    environ = os.environ if environ is None else environ
    if _get(environ, "OTEL_SDK_DISABLED").lower() == "true":
        return None
    exporters: list[SpanExporter] = []
    if exporter is None:
        for name in _exporter_names(environ):
            if name == "otlp":
                exporters.append(_otlp_exporter(environ))
            elif name == "console":
                exporters.append(ConsoleSpanExporter(out=sys.stdout))
            else:
                log.warning("OTEL_TRACES_EXPORTER: unsupported exporter %r ignored", name)
        if not exporters:
            return None
    provider = TracerProvider(resource=build_resource(environ), sampler=build_sampler(environ))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for e in exporters:
        provider.add_span_processor(BatchSpanProcessor(e))
    return provider


class CallTrace(Protocol):
    """What the read logic may tell about the API call it serves (implemented by the API layer's
    call record; a no-op when tracing is off)."""

    def event(self, name: str, attributes: dict[str, Any] | None = None) -> None: ...
    def link(self, other: trace.SpanContext | None, attributes: dict[str, Any] | None = None) -> None: ...
    def set(self, key: str, value: Any) -> None: ...


class NoCallTrace:
    def event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        pass

    def link(self, other: trace.SpanContext | None, attributes: dict[str, Any] | None = None) -> None:
        pass

    def set(self, key: str, value: Any) -> None:
        pass


NO_CALL_TRACE: Final = NoCallTrace()


def reason_token(error: BaseException) -> str:
    """The one name of an error in metrics and span events: a short, fixed label (never a message,
    so no cardinality). It is the `reason` of retries and reconnects, and the `status` of an
    upstream request that got no HTTP status.

    - S2's error code (`http_<status>` for a code longer than 40 characters)
    - `protocol`: the upstream answered something that is not S2's wire format
    - `host_not_found`: DNS says the endpoint's host name does not exist (not retried)
    - `connect`: no connection could be made (refused, unreachable, temporary DNS failure, TLS,
      connect timeout)
    - `timeout`: connected, but no answer in time
    - `disconnected`: the connection broke, or an exception no transport names
    - `pool_exhausted`: refused before anything was sent (no connection free for another session)
    - `cancelled`: the caller left
    - the class name of any other SidecarError (`RetriesStopped`, `DeadlineExceeded`, ...)
    """
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    if isinstance(error, PoolExhausted):
        return "pool_exhausted"
    if isinstance(error, S2Error):
        return error.code if len(error.code) <= 40 else f"http_{error.status}"
    if isinstance(error, ProtocolError):
        return "protocol"
    if isinstance(error, HostNotFound):
        return "host_not_found"
    if isinstance(error, ConnectFailed):
        return "connect"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, TransportError) or not isinstance(error, SidecarError):
        return "disconnected"
    return type(error).__name__


def error_type(error: BaseException) -> str:
    """OpenTelemetry's `error.type` for an exception: its class name, except that a
    TransportError's subclasses give `TransportError`: span queries match one name for every
    upstream failure, and the reason (connect, timeout) is `reason_token`'s."""
    return TransportError.__name__ if isinstance(error, TransportError) else type(error).__name__


@dataclass(frozen=True, slots=True)
class Telemetry:
    """What the servicer and the upstream client hold. When `enabled` is False the tracer is a
    no-op one (its spans are one shared non-recording object): skip building attributes then."""

    tracer: trace.Tracer
    enabled: bool

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls(trace.NoOpTracer(), False)

    @classmethod
    def from_provider(cls, provider: trace.TracerProvider | None) -> Telemetry:
        """`Telemetry.from_provider(setup_tracing())`: disabled when the set-up returned None."""
        if provider is None:
            return cls.disabled()
        return cls(provider.get_tracer(TRACER_NAME, _version()), True)


# --- W3C trace context ----------------------------------------------------------------------------
_W3C: Final = TraceContextTextMapPropagator()  # explicitly, not the global (configurable) propagator
_W3C_KEYS: Final = frozenset(_W3C.fields)  # traceparent, tracestate
_TRACEPARENT: Final = "traceparent"


def extract_context(metadata: Iterable[tuple[str, str | bytes]] | None, context: Context | None = None) -> Context:
    """The W3C trace context an app sent in its gRPC invocation metadata
    (`context.invocation_metadata()`), on top of `context` (default: an empty one, so a call
    without `traceparent` starts a new trace). Binary (`-bin`) values are ignored."""
    carrier: dict[str, str] | None = None
    for key, value in metadata or ():
        k = key.lower()
        if k in _W3C_KEYS and isinstance(value, str):
            if carrier is None:
                carrier = {}
            carrier[k] = value
    base = Context() if context is None else context
    if carrier is None or _TRACEPARENT not in carrier:
        return base  # what the propagator answers without a traceparent; most calls, so made cheap
    return _W3C.extract(carrier, context=base)


def inject_headers(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """Add `traceparent` (and `tracestate`) for the span in `context` (default: the current one)
    to upstream HTTP request headers. With tracing disabled, the app's own trace context still
    passes through when it is current (a no-op tracer keeps the parent's span context)."""
    _W3C.inject(headers, context=context)
