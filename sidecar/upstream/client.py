"""The upstream client: S2's read endpoints over one shared aiohttp session per kind of call.

Sessions and unary calls get separate connectors: aiohttp speaks HTTP/1.1, so every open
session holds a connection for its whole life and could otherwise starve `CheckTail`.
Each method here makes ONE attempt; retries and resumption live in `sidecar.reads`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from sidecar.config import UpstreamFormat
from sidecar.errors import ProtocolError, S2Error, TransportError
from sidecar.types import ReadQuery, StreamPosition
from sidecar.upstream.endpoint import BasinEndpoint
from sidecar.wire import json as wjson
from sidecar.wire import query as wquery
from sidecar.wire import s2s, sse
from sidecar.wire.protobuf import ReadBatch, batch_from_records, decode_read_batch, merge_batches

log = logging.getLogger(__name__)

PROTOBUF = "application/protobuf"
# Errors that mean "the server does not speak s2s over this connection": fall back to SSE.
_S2S_REFUSED_STATUSES = frozenset({405, 406, 415, 426, 501, 505})
# Transport failures: all retryable (connection refused or reset, timeouts, truncated bodies).
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError)


def _retry_after_ms(resp: aiohttp.ClientResponse) -> int | None:
    raw = resp.headers.get("retry-after-ms")
    return int(raw) if raw and raw.isdigit() else None


async def _raise_for_error(resp: aiohttp.ClientResponse) -> None:
    if resp.status >= 400:
        body = await resp.read()
        raise wjson.error_from_response(resp.status, body, _retry_after_ms(resp))


class UpstreamClient:
    """Reads S2 for every local app through one connection pool."""

    def __init__(
        self,
        endpoint: BasinEndpoint,
        *,
        access_token: str | None = None,
        upstream_format: UpstreamFormat = UpstreamFormat.PROTOBUF,
        session_connections: int = 1000,
        unary_connections: int = 100,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        heartbeat_timeout: float = 20.0,
    ) -> None:
        self.endpoint = endpoint
        self._token = access_token
        self.format = upstream_format
        self._use_s2s = upstream_format is UpstreamFormat.PROTOBUF
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._heartbeat_timeout = heartbeat_timeout
        self._session_limit = session_connections
        self._unary_limit = unary_connections
        self._unary: aiohttp.ClientSession | None = None
        self._sessions: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> UpstreamClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        def new(limit: int, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=30),
                timeout=timeout,
                # S2 `data:` lines and protobuf batches run to ~1.4 MB: read in large chunks.
                read_bufsize=2**20,
                auto_decompress=True,
                raise_for_status=False,
            )

        self._unary = new(self._unary_limit, aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout))
        # No total timeout: sessions are endless. sock_read catches a silent upstream (S2 sends a
        # heartbeat at least every 15 s while caught up).
        self._sessions = new(
            self._session_limit,
            aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=self._heartbeat_timeout),
        )

    async def close(self) -> None:
        for s in (self._unary, self._sessions):
            if s is not None:
                await s.close()

    # -- helpers --------------------------------------------------------------------------------

    def _headers(self, basin: str, **extra: str) -> dict[str, str]:
        headers = self.endpoint.headers(basin)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        headers.update(extra)
        return headers

    def pool_stats(self) -> dict[str, int]:
        """Connections in use and idle per pool (for metrics and tests)."""
        out: dict[str, int] = {}
        for name, s in (("unary", self._unary), ("session", self._sessions)):
            conn: Any = s.connector if s is not None else None
            acquired = len(getattr(conn, "_acquired", ())) if conn is not None else 0
            out[f"{name}_in_use"] = acquired
        return out

    # -- unary ----------------------------------------------------------------------------------

    async def check_tail(self, basin: str, stream: str) -> StreamPosition:
        """`GET .../records/tail` (one attempt). Callers bound it further with `asyncio.timeout`."""
        assert self._unary is not None, "UpstreamClient.start() was not called"
        url = self.endpoint.tail_url(basin, stream)
        try:
            async with self._unary.get(
                url,
                headers=self._headers(basin),
                timeout=aiohttp.ClientTimeout(total=self._request_timeout, sock_connect=self._connect_timeout),
            ) as resp:
                await _raise_for_error(resp)
                body = await resp.read()
        except _TRANSPORT_ERRORS as e:
            raise TransportError(f"check tail of {basin}/{stream}: {e!r}") from e
        obj = wjson.loads(body)
        if not isinstance(obj, dict) or "tail" not in obj:
            raise ProtocolError(f"upstream tail answer has no `tail`: {body[:200]!r}")
        return wjson.position_from_json(obj["tail"])

    async def read(self, basin: str, stream: str, query: ReadQuery) -> ReadBatch:
        """One-shot read: one batch (one attempt). Protobuf, or JSON with base64 bodies."""
        assert self._unary is not None, "UpstreamClient.start() was not called"
        total = self._request_timeout + (query.wait or 0)
        accept = PROTOBUF if self.format is UpstreamFormat.PROTOBUF else "application/json"
        try:
            async with self._unary.get(
                self.endpoint.records_url(basin, stream),
                params=wquery.to_params(query),
                headers=self._headers(basin, Accept=accept, **{"s2-format": "base64"}),
                timeout=aiohttp.ClientTimeout(total=total, sock_connect=self._connect_timeout),
            ) as resp:
                await _raise_for_error(resp)
                body = await resp.read()
                ctype = resp.content_type
        except _TRANSPORT_ERRORS as e:
            raise TransportError(f"read {basin}/{stream}: {e!r}") from e
        if ctype in (PROTOBUF, "application/x-protobuf"):
            return decode_read_batch(body)
        if ctype == "application/json":
            records, tail = wjson.batch_from_json(wjson.loads(body), wjson.Format.BASE64)
            return batch_from_records(records, tail)
        raise ProtocolError(f"upstream read answered content-type {ctype!r}; expected protobuf or JSON")

    # -- sessions -------------------------------------------------------------------------------

    async def read_session(self, basin: str, stream: str, query: ReadQuery) -> AsyncIterator[ReadBatch]:
        """One upstream session (one attempt): batches and heartbeats (empty batches with a tail)
        until the session ends cleanly. Errors raise; resuming is the caller's job."""
        if self._use_s2s:
            fallback = False
            async for item in self._s2s_session(basin, stream, query):
                if item is None:  # the server refused s2s before sending anything
                    fallback = True
                    break
                yield item
            if not fallback:
                return
            self._use_s2s = False
            log.warning("upstream refused s2s sessions; falling back to SSE for this process")
        async for batch in self._sse_session(basin, stream, query):
            yield batch

    async def _s2s_session(self, basin: str, stream: str, query: ReadQuery) -> AsyncIterator[ReadBatch | None]:
        assert self._sessions is not None, "UpstreamClient.start() was not called"
        headers = self._headers(basin, **{"Content-Type": s2s.CONTENT_TYPE, "Accept-Encoding": "identity"})
        try:
            async with self._sessions.get(
                self.endpoint.records_url(basin, stream), params=wquery.to_params(query), headers=headers
            ) as resp:
                if resp.status in _S2S_REFUSED_STATUSES or (
                    resp.status == 200 and resp.content_type != s2s.CONTENT_TYPE
                ):
                    yield None
                    return
                await _raise_for_error(resp)
                reader = _FrameReader(resp.content)
                while True:
                    first = await reader.next_batch()
                    if first is None:
                        return  # clean end: the body ended on a frame boundary
                    if not first.count:
                        yield first  # a heartbeat goes out on its own
                        continue
                    # Frames already received go out together (see merge_batches): catch-up
                    # traffic gets large messages, live traffic is never held back.
                    batches, size = [first], len(first.data)
                    while size < MERGE_BYTES and reader.buffered() >= s2s.PREFIX_BYTES:
                        try:
                            nxt = await reader.next_batch()
                        except Exception:
                            yield merge_batches(batches)  # deliver what arrived whole, then fail
                            raise
                        if nxt is None or not nxt.count:
                            reader.push_back(nxt)
                            break
                        batches.append(nxt)
                        size += len(nxt.data)
                    yield merge_batches(batches)
        except _TRANSPORT_ERRORS as e:
            raise TransportError(f"upstream s2s session for {basin}/{stream}: {e!r}") from e

    async def _sse_session(self, basin: str, stream: str, query: ReadQuery) -> AsyncIterator[ReadBatch]:
        assert self._sessions is not None, "UpstreamClient.start() was not called"
        headers = self._headers(basin, Accept="text/event-stream", **{"s2-format": "base64"})
        parser = sse.SSEParser()
        try:
            async with self._sessions.get(
                self.endpoint.records_url(basin, stream), params=wquery.to_params(query), headers=headers
            ) as resp:
                await _raise_for_error(resp)
                if resp.content_type != "text/event-stream":
                    raise ProtocolError(f"upstream SSE session answered content-type {resp.content_type!r}")
                async for chunk in resp.content.iter_any():
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
        except _TRANSPORT_ERRORS as e:
            raise TransportError(f"upstream SSE session for {basin}/{stream}: {e!r}") from e


# Merge already-received frames up to this size: well under gRPC's default 4 MiB receive limit.
MERGE_BYTES = 2 * 1024 * 1024


class _FrameReader:
    """s2s frames from an aiohttp body with `readexactly` (no extra copies), plus how many bytes
    are already buffered so the caller can merge what has arrived without waiting for more."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content
        self._consumed = 0
        self._pushed_back: list[ReadBatch | None] = []

    def buffered(self) -> int:
        if self._pushed_back:
            return s2s.PREFIX_BYTES
        return self._content.total_bytes - self._consumed

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
        self._consumed += s2s.PREFIX_BYTES + n
        frame = s2s.parse_frame(payload)
        if frame.terminal:
            raise wjson.error_from_response(frame.status or 500, frame.body)
        return decode_read_batch(frame.body)


def _sse_error(data: str) -> S2Error:
    obj = wjson.loads(data)
    status = 500
    if isinstance(obj, dict):
        # SSE error events carry S2's error body; infer the status from the code when possible.
        status = _STATUS_BY_CODE.get(str(obj.get("code")), 500)
    return wjson.error_from_response(status, data.encode())


_STATUS_BY_CODE = {
    "bad_header": 400, "bad_path": 400, "bad_query": 400, "bad_json": 400, "bad_proto": 400,
    "bad_frame": 400, "authn": 401, "permission_denied": 403, "quota_exhausted": 403,
    "basin_not_found": 404, "stream_not_found": 404, "request_timeout": 408,
    "transaction_conflict": 409, "invalid": 422, "rate_limited": 429, "other": 500, "storage": 500,
    "hot_server": 502, "unavailable": 503, "server_draining": 503, "upstream_timeout": 504,
}  # fmt: skip
