"""Per-call instrumentation for the API: a server span (child of the app's W3C trace context),
RPC metrics, and an optional access log line. Costs a few attribute stores when tracing is off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import Token
from types import TracebackType
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, SpanKind, StatusCode

from sidecar import telemetry as tm
from sidecar.logs import ACCESS_LOGGER
from sidecar.metrics import CounterChild, Metrics
from sidecar.types import ReadQuery, SeqNum, TailOffset, Timestamp

access_log = logging.getLogger(ACCESS_LOGGER)
_OK = grpc.StatusCode.OK
log = logging.getLogger(__name__)


class CallRecord:
    """One API call as it goes: its span (None when tracing is off) and what it sent. A context
    manager (`with instr.call(...) as rec`): leaving it records the call's metrics, ends its span
    and restores the trace context. A plain class, not a generator-based context manager: this runs
    on every call, and `contextlib` costs several frames and a generator per call."""

    __slots__ = ("_instr", "_owner", "_started", "_token", "basin", "code", "method", "records", "sent_bytes",
                 "span", "stream")  # fmt: skip

    def __init__(
        self,
        method: str,
        span: Span | None,
        instr: Instrumentation | None = None,
        token: Token[Context] | None = None,
        started: float = 0.0,
    ) -> None:
        self.method, self.span = method, span
        self.code = _OK
        self.records = self.sent_bytes = 0
        self.basin = self.stream = ""
        self._instr, self._token, self._started = instr, token, started
        # Only the task that attached can detach (OpenTelemetry logs an ERROR otherwise).
        self._owner = asyncio.current_task() if token is not None else None

    def __enter__(self) -> CallRecord:
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None:
            if isinstance(e, grpc.aio.AbortError):
                pass  # the servicer set rec.code before aborting
            elif isinstance(e, GeneratorExit | asyncio.CancelledError):
                self.code = grpc.StatusCode.CANCELLED
            else:
                self.code = grpc.StatusCode.UNKNOWN
        if self._instr is not None:
            self._instr._finish(self, time.perf_counter() - self._started)  # still in the span: logs carry its ids
        # A call closed from another task (a generator finalized later) has nothing to restore:
        # its own context ended with its task.
        if self._token is not None and asyncio.current_task() is self._owner:
            otel_context.detach(self._token)

    def describe(self, basin: str, stream: str, query: ReadQuery | None = None) -> None:
        self.basin, self.stream = basin, stream
        if self.span is None:
            return
        attrs: dict[str, Any] = {tm.S2_BASIN: basin, tm.S2_STREAM: stream}
        if query is not None:
            match query.start:
                case SeqNum(v):
                    attrs[tm.S2_START_SEQ_NUM] = v
                case Timestamp(v):
                    attrs[tm.S2_START_TIMESTAMP] = v
                case TailOffset(v):
                    attrs[tm.S2_START_TAIL_OFFSET] = v
            for key, value in (
                (tm.S2_LIMIT_COUNT, query.limit.count),
                (tm.S2_LIMIT_BYTES, query.limit.bytes),
                (tm.S2_UNTIL, query.until),
                (tm.S2_WAIT, query.wait),
            ):
                if value is not None:
                    attrs[key] = value
            attrs[tm.S2_CLAMP] = query.clamp
        self.span.set_attributes(attrs)

    def sent(self, count: int, size: int) -> None:
        self.records += count
        self.sent_bytes += size

    def event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        if self.span is not None:
            self.span.add_event(name, attributes or {})

    def link(self, other: SpanContext | None, attributes: dict[str, Any] | None = None) -> None:
        """Link this call to shared upstream work (a coalesced request, a shared session)."""
        if self.span is not None and other is not None and other.is_valid:
            self.span.add_link(other, attributes or {})

    def set(self, key: str, value: Any) -> None:
        if self.span is not None:
            self.span.set_attribute(key, value)


class _MethodSeries:
    """One method's metric series, looked up once instead of by label values on every call. Each
    is made when first used, as `labels()` would make it, so /metrics shows the same series."""

    __slots__ = ("by_code", "bytes_sent", "duration", "ok", "records_sent")

    def __init__(self, metrics: Metrics, method: str) -> None:
        self.ok: CounterChild | None = None
        self.by_code: dict[str, CounterChild] = {}
        self.duration = metrics.rpc_duration.labels(method)
        self.records_sent: CounterChild | None = None
        self.bytes_sent: CounterChild | None = None


class Instrumentation:
    def __init__(self, telemetry: tm.Telemetry, metrics: Metrics, *, access_log: bool = False) -> None:
        self.telemetry = telemetry
        self.metrics = metrics
        self.access_log = access_log
        self._series: dict[str, _MethodSeries] = {}

    def call(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> CallRecord:
        """The record of a call starting now, to use as `with instr.call(method, context) as rec:`."""
        started = time.perf_counter()
        parent = tm.extract_context(context.invocation_metadata())
        span: Span | None = None
        if self.telemetry.enabled:
            span = self.telemetry.tracer.start_span(
                f"s2sidecar.v1.StreamService/{method}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={
                    tm.RPC_SYSTEM: tm.RPC_SYSTEM_GRPC,
                    tm.RPC_SERVICE: "s2sidecar.v1.StreamService",
                    tm.RPC_METHOD: method,
                },
            )
            current = trace.set_span_in_context(span, parent)
        else:
            current = parent  # no span, but the app's trace context still reaches S2
        # The call runs in `current`. Most calls bring no trace context and tracing is off: then
        # `current` is empty, and when the task's context is empty too there is nothing to attach
        # (and to detach and check the task for at the end).
        token = otel_context.attach(current) if current or otel_context.get_current() else None
        return CallRecord(method, span, self, token, started)

    def _finish(self, rec: CallRecord, elapsed: float) -> None:
        if (series := self._series.get(rec.method)) is None:
            series = self._series[rec.method] = _MethodSeries(self.metrics, rec.method)
        code = rec.code
        if code is _OK:
            if (calls := series.ok) is None:
                calls = series.ok = self.metrics.rpcs.labels(rec.method, "OK")
        elif (calls := series.by_code.get(code.name)) is None:
            calls = series.by_code[code.name] = self.metrics.rpcs.labels(rec.method, code.name)
        calls.inc()
        series.duration.observe(elapsed)
        if rec.records:
            if series.records_sent is None or series.bytes_sent is None:
                series.records_sent = self.metrics.records_sent.labels(rec.method)
                series.bytes_sent = self.metrics.bytes_sent.labels(rec.method)
            series.records_sent.inc(rec.records)
            series.bytes_sent.inc(rec.sent_bytes)
        if rec.span is not None:
            rec.span.set_attribute(tm.RPC_GRPC_STATUS_CODE, rec.code.value[0])
            rec.span.set_attribute(tm.S2_RECORDS, rec.records)
            rec.span.set_attribute(tm.S2_BYTES, rec.sent_bytes)
            if rec.code is not grpc.StatusCode.OK:
                rec.span.set_status(StatusCode.ERROR, rec.code.name)
            rec.span.end()
        if self.access_log:
            access_log.info(
                "%s %s/%s %s %.1fms records=%d",
                rec.method,
                rec.basin,
                rec.stream,
                rec.code.name,
                elapsed * 1000,
                rec.records,
                extra={
                    "method": rec.method,
                    "basin": rec.basin,
                    "stream": rec.stream,
                    "code": rec.code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                    "records": rec.records,
                },
            )
