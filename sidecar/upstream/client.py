"""The upstream client: S2's read endpoints (URLs, headers, s2s/SSE/protobuf/JSON decoding,
merging and splitting, spans, metrics), written once above a `Transport` (`transport.py`):
HTTP/1.1 on aiohttp or multiplexed HTTP/2 on `h2`.
Each method here makes ONE attempt; retries and resumption live in `sidecar.reads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from sidecar import telemetry as tm
from sidecar.encryption import HEADER as KEY_HEADER
from sidecar.encryption import EncryptionKey
from sidecar.errors import ProtocolError, S2Error, TransportError
from sidecar.metrics import Metrics
from sidecar.types import ReadQuery, StreamPosition
from sidecar.upstream.negotiate import make_transport
from sidecar.upstream.settings import UpstreamFormat, UpstreamSettings
from sidecar.upstream.transport import Body, Response, Transport
from sidecar.upstream.words import transport_error
from sidecar.wire import json as wjson
from sidecar.wire import query as wquery
from sidecar.wire import s2s, sse
from sidecar.wire.protobuf import ReadBatch, batch_from_records, decode_read_batch, merge_batches, split_batch

log = logging.getLogger(__name__)

PROTOBUF = "application/protobuf"
# Merge already-received frames up to this size: well under gRPC's default 4 MiB receive limit.
MERGE_BYTES = 2 * 1024 * 1024
# Errors that mean "the server does not speak s2s over this connection": fall back to SSE.
_S2S_REFUSED_STATUSES = frozenset({405, 406, 415, 426, 501, 505})


def _retry_after_ms(resp: Response) -> int | None:
    raw = resp.headers.get("retry-after-ms")
    return int(raw) if raw and raw.isdigit() else None


async def _raise_for_error(resp: Response) -> None:
    if resp.status >= 400:
        body = await resp.body.read()
        raise wjson.error_from_response(resp.status, body, _retry_after_ms(resp))


class UpstreamClient:
    """Reads S2 for every local app through one connection pool."""

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        telemetry: tm.Telemetry | None = None,
        metrics: Metrics | None = None,
        transport: Transport | None = None,
    ) -> None:
        """`transport`: tests pass their own; by default the one `settings.protocol` asks for."""
        self.settings = settings
        self.endpoint = settings.endpoint
        self._telemetry = telemetry or tm.Telemetry.disabled()
        self.metrics = metrics or Metrics()
        self._token = settings.access_token
        self.format = settings.format
        self._use_s2s = settings.format is UpstreamFormat.PROTOBUF
        self._request_timeout = settings.request_timeout
        # No batch handed on is larger than this (serialized): it becomes one gRPC message.
        self.max_message_bytes = settings.max_message_bytes
        self.transport: Transport = transport or make_transport(settings)
        self._errors = self.transport.errors
        stats = self.transport.pool_stats
        self.metrics.upstream_connections.labels("1.1").set_function(lambda: stats().get("connections_h1", 0))
        self.metrics.upstream_connections.labels("2").set_function(lambda: stats().get("connections_h2", 0))
        self.metrics.upstream_streams_per_connection.labels("2").set_function(lambda: _per_connection(stats()))

    async def __aenter__(self) -> UpstreamClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()

    # -- helpers --------------------------------------------------------------------------------

    def _headers(self, basin: str, encryption: EncryptionKey | None = None, **extra: str) -> dict[str, str]:
        headers = self.endpoint.headers(basin)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if encryption is not None:
            headers[KEY_HEADER] = encryption.value  # a secret like the token: never in spans or logs
        headers.update(extra)
        return headers

    @contextlib.contextmanager
    def _traced(
        self, kind: str, url: str, params: dict[str, str], headers: dict[str, str], attributes: dict[str, Any]
    ) -> Iterator[_Outcome]:
        """A client span and the upstream metrics around one request. The W3C trace context goes
        into `headers`, so the app, the sidecar and S2 share one trace."""
        outcome = _Outcome(time.perf_counter())
        span: Span | None = None
        if self._telemetry.enabled:
            parts = urlsplit(url)
            span = self._telemetry.tracer.start_span(
                "GET",
                kind=SpanKind.CLIENT,
                attributes={
                    tm.HTTP_REQUEST_METHOD: "GET",
                    # Path and query carry names and positions only; the token travels in a header.
                    tm.URL_FULL: f"{url}?{urlencode(params)}" if params else url,
                    tm.SERVER_ADDRESS: parts.hostname or "",
                    tm.SERVER_PORT: parts.port or (443 if parts.scheme == "https" else 80),
                    tm.S2_UPSTREAM_KIND: kind,
                    **attributes,
                },
            )
            tm.inject_headers(headers, trace.set_span_in_context(span))
        else:
            tm.inject_headers(headers)  # still pass the app's own trace context through
        try:
            yield outcome
        except (GeneratorExit, asyncio.CancelledError) as e:
            outcome.status = outcome.status or tm.reason_token(e)  # the caller left: not an upstream error
            raise
        except BaseException as e:
            outcome.status = outcome.status or tm.reason_token(e)
            if span is not None:
                span.set_attribute(tm.ERROR_TYPE, outcome.status if outcome.http_status else tm.error_type(e))
                span.set_status(StatusCode.ERROR, str(e)[:200])
            raise
        finally:
            if span is not None:
                if outcome.http_status is not None:
                    span.set_attribute(tm.HTTP_RESPONSE_STATUS_CODE, outcome.http_status)
                if outcome.protocol is not None:
                    span.set_attribute(tm.NETWORK_PROTOCOL_VERSION, outcome.protocol)
                span.end()
            self.metrics.upstream_requests.labels(kind, outcome.status or "ok").inc()
            if outcome.http_status is not None:
                self.metrics.upstream_reachability.traffic(True)  # S2 answered, whatever it said
            elif outcome.status in ("connect", "host_not_found"):  # no connection could be made
                self.metrics.upstream_reachability.traffic(False)
            self.metrics.upstream_duration.labels(kind).observe(
                (outcome.headers_at or time.perf_counter()) - outcome.started
            )

    def _transport_error(self, what: str, e: BaseException, url: str) -> TransportError:
        """The transport's exception as the sidecar's, in words; the repr goes to the debug log."""
        log.debug("%s: %r", what, e)
        return transport_error(what, e, url, self.transport.connect_errors)

    def pool_stats(self) -> dict[str, int]:
        """Connections (HTTP/1.1) or streams (HTTP/2) in use per pool, and connection counts per
        protocol (for metrics and tests)."""
        return self.transport.pool_stats()

    # -- unary ----------------------------------------------------------------------------------

    async def check_tail(self, basin: str, stream: str) -> StreamPosition:
        """`GET .../records/tail` (one attempt). Callers bound it further with `asyncio.timeout`."""
        url = self.endpoint.tail_url(basin, stream)
        headers = self._headers(basin)
        with self._traced("tail", url, {}, headers, {tm.S2_BASIN: basin, tm.S2_STREAM: stream}) as outcome:
            try:
                async with self.transport.get(url, headers=headers, total_timeout=self._request_timeout) as resp:
                    outcome.response(resp)
                    await _raise_for_error(resp)
                    body = await resp.body.read()
            except self._errors as e:
                raise self._transport_error(f"check tail of {basin}/{stream}", e, url) from e
        obj = wjson.loads(body)
        if not isinstance(obj, dict) or "tail" not in obj:
            raise ProtocolError(f"upstream tail answer has no `tail`: {body[:200]!r}")
        return wjson.position_from_json(obj["tail"])

    async def stream_incarnation(self, basin: str, stream: str) -> str | None:
        """The stream's `created_at` from S2's stream listing (one attempt): it tells one
        incarnation of a name from the next. None: no such stream, or it is being deleted. An
        access token not allowed to list streams gets S2's 403 (`permission_denied`)."""
        url = self.endpoint.streams_url(basin)
        # Names sort bytewise, so the stream itself, if it exists, is the first with its prefix.
        params = {"prefix": stream, "limit": "1"}
        headers = self._headers(basin, Accept="application/json")
        with self._traced("list", url, params, headers, {tm.S2_BASIN: basin, tm.S2_STREAM: stream}) as outcome:
            try:
                async with self.transport.get(
                    url, params=params, headers=headers, total_timeout=self._request_timeout
                ) as resp:
                    outcome.response(resp)
                    await _raise_for_error(resp)
                    body = await resp.body.read()
            except self._errors as e:
                raise self._transport_error(f"list streams of {basin} (prefix {stream!r})", e, url) from e
        return wjson.stream_incarnation_from_json(wjson.loads(body), stream)

    async def read(
        self, basin: str, stream: str, query: ReadQuery, encryption: EncryptionKey | None = None
    ) -> ReadBatch:
        """One-shot read: one batch (one attempt). Protobuf, or JSON with base64 bodies.
        `encryption`: the stream's key, sent as S2's `s2-encryption-key`."""
        total = self._request_timeout + (query.wait or 0)
        accept = PROTOBUF if self.format is UpstreamFormat.PROTOBUF else "application/json"
        url = self.endpoint.records_url(basin, stream)
        params = wquery.to_params(query)
        headers = self._headers(basin, encryption, Accept=accept, **{"s2-format": "base64"})
        with self._traced("read", url, params, headers, {tm.S2_BASIN: basin, tm.S2_STREAM: stream}) as outcome:
            try:
                async with self.transport.get(
                    url, params=params, headers=headers, long_poll=bool(query.wait), total_timeout=total
                ) as resp:
                    outcome.response(resp)
                    await _raise_for_error(resp)
                    body = await resp.body.read()
                    ctype = resp.content_type
            except self._errors as e:
                raise self._transport_error(f"read {basin}/{stream}", e, url) from e
        if ctype in (PROTOBUF, "application/x-protobuf"):
            batch = decode_read_batch(body)
        elif ctype == "application/json":
            records, tail = wjson.batch_from_json(wjson.loads(body), wjson.Format.BASE64)
            batch = batch_from_records(records, tail)
        else:
            raise ProtocolError(f"upstream read answered content-type {ctype!r}; expected protobuf or JSON")
        # One Read answers one message: past the limit, answer the records that fit (the app
        # continues from the last one, as after any batch).
        return split_batch(batch, self.max_message_bytes)[0]

    # -- sessions -------------------------------------------------------------------------------

    async def read_session(
        self, basin: str, stream: str, query: ReadQuery, encryption: EncryptionKey | None = None
    ) -> AsyncGenerator[ReadBatch, None]:
        """One upstream session (one attempt): batches and heartbeats (empty batches with a tail)
        until the session ends cleanly. Errors raise; resuming is the caller's job. No batch is
        larger than `max_message_bytes`: frames that arrived together are merged up to
        `MERGE_BYTES`, and a batch that encodes larger than the limit is split at records."""
        url = self.endpoint.records_url(basin, stream)
        params = wquery.to_params(query)
        attrs: dict[str, Any] = {tm.S2_BASIN: basin, tm.S2_STREAM: stream}
        if self._use_s2s:
            fallback = False
            headers = self._headers(
                basin, encryption, **{"Content-Type": s2s.CONTENT_TYPE, "Accept-Encoding": "identity"}
            )
            # The span covers the whole body: a session's life, not just its response headers.
            with self._traced("session", url, params, headers, {**attrs, tm.S2_PROTOCOL: "s2s"}) as outcome:
                async for item in self._s2s_session(url, params, headers, outcome):
                    if item is None:  # the server refused s2s before sending anything
                        fallback = True
                        break
                    for part in split_batch(item, self.max_message_bytes):
                        yield part
            if not fallback:
                return
            self._use_s2s = False
            log.warning("upstream refused s2s sessions; falling back to SSE for this process")
        headers = self._headers(basin, encryption, Accept="text/event-stream", **{"s2-format": "base64"})
        with self._traced("session", url, params, headers, {**attrs, tm.S2_PROTOCOL: "sse"}) as outcome:
            async for batch in self._sse_session(url, params, headers, outcome):
                for part in split_batch(batch, self.max_message_bytes):
                    yield part

    async def _s2s_session(
        self, url: str, params: dict[str, str], headers: dict[str, str], outcome: _Outcome
    ) -> AsyncIterator[ReadBatch | None]:
        try:
            async with self.transport.get(url, params=params, headers=headers, session=True) as resp:
                outcome.response(resp)
                if resp.status in _S2S_REFUSED_STATUSES or (
                    resp.status == 200 and resp.content_type != s2s.CONTENT_TYPE
                ):
                    yield None
                    return
                await _raise_for_error(resp)
                reader = _FrameReader(resp.body)
                while True:
                    first = await reader.next_batch()
                    if first is None:
                        return  # clean end: the body ended on a frame boundary
                    if not first.count or first.reconnect_advised:
                        yield first  # a heartbeat goes out on its own, and so does an advised last batch
                        continue
                    # Frames already received go out together (see merge_batches): catch-up
                    # traffic gets large messages, live traffic is never held back. A merge never
                    # grows past MERGE_BYTES.
                    batches, size = [first], len(first.data)
                    while size < MERGE_BYTES and reader.buffered() >= s2s.PREFIX_BYTES:
                        try:
                            nxt = await reader.next_batch()
                        except Exception:
                            yield merge_batches(batches)  # deliver what arrived whole, then fail
                            raise
                        if (
                            nxt is None
                            or not nxt.count
                            or size + len(nxt.data) > MERGE_BYTES
                            or nxt.first_seq_num != _after(batches[-1])
                        ):
                            reader.push_back(nxt)  # a gap is the session's to judge, after what arrived
                            break
                        batches.append(nxt)
                        size += len(nxt.data)
                        if nxt.reconnect_advised:
                            break  # the server wants us gone after this one
                    yield merge_batches(batches)
        except self._errors as e:
            raise self._transport_error("upstream session (s2s)", e, url) from e

    async def _sse_session(
        self, url: str, params: dict[str, str], headers: dict[str, str], outcome: _Outcome
    ) -> AsyncIterator[ReadBatch]:
        parser = sse.SSEParser()
        try:
            async with self.transport.get(url, params=params, headers=headers, session=True) as resp:
                outcome.response(resp)
                await _raise_for_error(resp)
                if resp.content_type != "text/event-stream":
                    raise ProtocolError(f"upstream SSE session answered content-type {resp.content_type!r}")
                async for chunk in resp.body.iter_chunks():
                    for event in parser.feed(chunk):
                        if event.event == "batch":
                            records, tail = wjson.batch_from_json(wjson.loads(event.data), wjson.Format.BASE64)
                            yield batch_from_records(records, tail)
                        elif event.event == "ping":
                            obj = wjson.loads(event.data)
                            tail_obj = obj.get("tail") if isinstance(obj, dict) else None
                            if tail_obj is not None:
                                yield batch_from_records([], wjson.position_from_json(tail_obj))
                        elif event.event == "error":
                            raise _sse_error(event.data)
                        elif event.data == sse.DONE:
                            return
                raise TransportError("upstream SSE session ended without [DONE]")
        except self._errors as e:
            raise self._transport_error("upstream session (SSE)", e, url) from e


@dataclass
class _Outcome:
    """What became of one upstream request, for its span and metrics."""

    started: float
    headers_at: float | None = None
    http_status: int | None = None
    status: str | None = None  # metric label: the HTTP status, or an error token

    protocol: str | None = None  # "1.1" or "2"

    def response(self, resp: Response) -> None:
        self.headers_at = time.perf_counter()
        self.http_status = resp.status
        self.status = str(resp.status)
        self.protocol = resp.protocol


class _FrameReader:
    """s2s frames from a body with `readexactly` (no extra copies), plus how many bytes are
    already buffered so the caller can merge what has arrived without waiting for more."""

    def __init__(self, content: Body) -> None:
        self._content = content
        self._pushed_back: list[ReadBatch | None] = []

    def buffered(self) -> int:
        if self._pushed_back:
            return s2s.PREFIX_BYTES
        return self._content.buffered()

    def push_back(self, batch: ReadBatch | None) -> None:
        self._pushed_back.append(batch)

    async def next_batch(self) -> ReadBatch | None:
        """The next frame's batch; None at a clean end of the body."""
        if self._pushed_back:
            return self._pushed_back.pop()
        content = self._content
        try:
            prefix = await content.readexactly(s2s.PREFIX_BYTES)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise TransportError("upstream s2s session cut inside a frame header") from e
            return None
        n = s2s.frame_length(prefix)
        try:
            payload = await content.readexactly(n)
        except asyncio.IncompleteReadError as e:
            raise TransportError(f"upstream s2s frame truncated ({len(e.partial)}/{n} bytes)") from e
        frame = s2s.parse_frame(payload)
        if frame.terminal:
            raise wjson.error_from_response(frame.status or 500, frame.body)
        batch = decode_read_batch(frame.body)
        return dataclasses.replace(batch, reconnect_advised=True) if frame.reconnect_advised else batch


def _per_connection(stats: dict[str, int]) -> float:
    conns = stats.get("connections_h2", 0)
    return stats.get("streams_h2", 0) / conns if conns else 0.0


def _after(batch: ReadBatch) -> int | None:
    return None if batch.last_seq_num is None else batch.last_seq_num + 1


def _sse_error(data: str) -> S2Error:
    obj = wjson.loads(data)
    status = 500
    if isinstance(obj, dict):
        # SSE error events carry S2's error body; infer the status from the code when possible.
        status = _STATUS_BY_CODE.get(str(obj.get("code")), 500)
    return wjson.error_from_response(status, data.encode())


# S2's error codes and their HTTP statuses (S2: api/src/v1/error.rs `ErrorCode::status`, plus the
# older names this API still documents). SSE error events carry only the body, so the status that
# decides retrying comes from here; an unknown code counts as a 500 (retried).
_STATUS_BY_CODE = {
    "bad_frame": 400, "bad_header": 400, "bad_json": 400, "bad_path": 400, "bad_proto": 400,
    "bad_query": 400, "decryption_failed": 400,
    "authn": 401,
    "permission_denied": 403, "quota_exhausted": 403,
    "access_token_not_found": 404, "basin_not_found": 404, "stream_not_found": 404,
    "request_timeout": 408, "timeout": 408,
    "basin_deletion_pending": 409, "resource_already_exists": 409, "stream_deletion_pending": 409,
    "transaction_conflict": 409,
    "invalid": 422,
    "rate_limited": 429,
    "client_hangup": 499,
    "other": 500, "storage": 500,
    "hot_server": 502,
    "unavailable": 503, "server_draining": 503,
    "upstream_timeout": 504,
}  # fmt: skip
