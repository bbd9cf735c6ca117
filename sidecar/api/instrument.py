"""Per-call instrumentation for the API: a server span (child of the app's W3C trace context),
RPC metrics, and an optional access log line. Costs a few attribute stores when tracing is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, SpanKind, StatusCode

from sidecar import telemetry as tm
from sidecar.logs import ACCESS_LOGGER
from sidecar.metrics import Metrics
from sidecar.types import ReadQuery, SeqNum, TailOffset, Timestamp

access_log = logging.getLogger(ACCESS_LOGGER)
log = logging.getLogger(__name__)


@dataclass
class CallRecord:
    """One API call as it goes: its span (None when tracing is off) and what it sent."""

    method: str
    span: Span | None
    code: grpc.StatusCode = grpc.StatusCode.OK
    records: int = 0
    sent_bytes: int = 0
    basin: str = ""
    stream: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

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


class Instrumentation:
    def __init__(self, telemetry: tm.Telemetry, metrics: Metrics, *, access_log: bool = False) -> None:
        self.telemetry = telemetry
        self.metrics = metrics
        self.access_log = access_log

    @contextlib.contextmanager
    def call(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[CallRecord]:
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
        token = otel_context.attach(current)
        owner = asyncio.current_task()
        rec = CallRecord(method, span)
        try:
            yield rec
        except BaseException as e:
            if isinstance(e, grpc.aio.AbortError):
                pass  # the servicer set rec.code before aborting
            elif isinstance(e, GeneratorExit | asyncio.CancelledError):
                rec.code = grpc.StatusCode.CANCELLED
            else:
                rec.code = grpc.StatusCode.UNKNOWN
            raise
        finally:
            self._finish(rec, time.perf_counter() - started)  # still in the span: logs carry its ids
            # Only the task that attached can detach (OpenTelemetry logs an ERROR otherwise). A
            # call closed from another task (a generator finalized later) has nothing to restore:
            # its own context ended with its task.
            if asyncio.current_task() is owner:
                otel_context.detach(token)

    def _finish(self, rec: CallRecord, elapsed: float) -> None:
        m = self.metrics
        m.rpcs.labels(rec.method, rec.code.name).inc()
        m.rpc_duration.labels(rec.method).observe(elapsed)
        if rec.records:
            m.records_sent.labels(rec.method).inc(rec.records)
            m.bytes_sent.labels(rec.method).inc(rec.sent_bytes)
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
