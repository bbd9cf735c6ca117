"""HTTP/2 transport: every session and unary call of the process multiplexed over few connections
per origin, on `h2` (sans-IO) in a bare asyncio Protocol, the fastest Python HTTP/2 client
measured (~390 MB/s vs httpx ~256 MB/s, s2-sdk's own ~306 MB/s; README, "Dependencies, and why").

- h2c with prior knowledge for `http://` (as S2's SDKs do), TLS with ALPN `h2` for `https://`.
- A connection is added only when the others are at the server's SETTINGS_MAX_CONCURRENT_STREAMS,
  up to `max_connections` per origin (connections draining after GOAWAY do not count).
- Flow control is fair: the connection window is replenished as DATA reaches a stream's buffer,
  a stream's window only as its consumer reads. A stalled session holds at most its stream window
  (~2 MiB) and never slows the others on its connection.
- GOAWAY: streams above last_stream_id were never processed and are sent again at once on another
  connection; the others may finish. RST_STREAM, connection loss, a silent connection (PING
  unanswered within the heartbeat timeout) and a peer that breaks HTTP/2 fail the affected
  requests with a retryable `H2Error` (a ConnectionError): sessions resume in `sidecar.reads`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import h2
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe
import hyperframe.frame
from h2.connection import ConnectionState
from h2.errors import ErrorCodes

from sidecar.upstream.settings import UpstreamSettings
from sidecar.upstream.transport import Response, media_type, ssl_context

log = logging.getLogger(__name__)

# What one stream (session) may have in flight plus buffered: about what an HTTP/1.1 session holds
# in aiohttp's read buffer and the kernel's socket buffer today.
STREAM_WINDOW = 2 * 1024 * 1024
# Replenished as data is buffered, so it only needs to cover the bandwidth-delay product.
CONNECTION_WINDOW = 16 * 1024 * 1024
MAX_HEADER_LIST_SIZE = 64 * 1024
# Measured (catch-up, 1 KiB records, against the emulator's h2): 16 KiB frames ~200-285 k records/s,
# 64 KiB ~400-435 k, 256 KiB ~345-590 k, 1 MiB ~380 k. Per-frame costs in h2 dominate small frames;
# h2's buffer handling makes very large ones slower again. A server may ignore it.
MAX_FRAME_SIZE = 256 * 1024
# Streams the server never processed (GOAWAY above last_stream_id, REFUSED_STREAM) are sent again
# at once, a few times, before the error goes to the caller's retry policy.
REFUSED_RETRIES = 3
IDLE_CLOSE = 60.0  # seconds an unused connection stays open


# -- what this module relies on inside h2 and hyperframe ------------------------------------------
# No public API does these. The versions are locked in requirements/, and
# tests/upstream/test_pinned_internals.py fails if one of them moves; here, a missing one fails
# the import (h2's) or says so in the log (hyperframe's, which only costs CPU), never silently.


def _check_h2_internals() -> None:
    probe = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    missing = [
        name
        for name, present in (
            ("H2Connection.incoming_buffer._data", hasattr(probe.incoming_buffer, "_data")),
            ("H2Connection.state_machine.state", hasattr(probe.state_machine, "state")),
        )
        if not present
    ]
    if missing:
        raise ImportError(
            f"h2 {h2.__version__} has no {' or '.join(missing)}, which sidecar.upstream.http2 relies on; "
            "install the h2 version locked in requirements/runtime.txt"
        )


_check_h2_internals()


def _pending_frame_bytes(conn: h2.connection.H2Connection) -> bytearray:
    """What h2 has received of frames it has not parsed yet (it checks a frame's length only once
    the whole frame has arrived)."""
    return conn.incoming_buffer._data


def _keep_receiving(conn: h2.connection.H2Connection) -> None:
    """Undo h2's close of its state machine on GOAWAY, which would refuse the DATA of the streams
    the server may still finish (no new stream is opened on the connection afterwards)."""
    conn.state_machine.state = ConnectionState.CLIENT_OPEN


def _cheap_data_repr(data: bytes | None) -> str:
    return f"<{len(data) if data else 0} bytes>"


# h2 formats `repr(frame)` for its trace log on every frame it receives, logging on or off, and
# hyperframe's repr hex-encodes the whole payload: ~30% of the receive CPU at 16 KiB DATA frames.
# A repr that only gives the length keeps the log line and drops the cost (process-wide).
if hasattr(hyperframe.frame, "_raw_data_repr"):
    hyperframe.frame._raw_data_repr = _cheap_data_repr
else:  # pragma: no cover - the locked hyperframe has it (tests/upstream/test_pinned_internals.py)
    log.warning(
        "hyperframe %s has no _raw_data_repr: every HTTP/2 frame received is hex-encoded for h2's trace log",
        hyperframe.__version__,
    )


class H2Error(ConnectionError):
    """The HTTP/2 exchange failed; always worth retrying."""


class H2ConnectFailed(H2Error):
    """No HTTP/2 connection could be opened."""


class AlpnRefused(H2ConnectFailed):
    """TLS ALPN did not pick h2."""


class StreamRefused(H2Error):
    """The server never processed the request: safe to send again at once."""


class StreamReset(H2Error):
    """The server reset the stream (RST_STREAM)."""


class ConnectionLost(H2Error):
    """The connection closed, died silently, or the server broke HTTP/2."""


class _Stream:
    """One request's response: headers, then a body buffered within the stream window."""

    __slots__ = (
        "_buf",
        "_conn",
        "_eof",
        "_error",
        "_owed",
        "_peer_window",
        "_read_timeout",
        "_waiter",
        "headers",
        "long_poll",
        "session",
        "sid",
    )

    def __init__(self, conn: H2Connection, sid: int, session: bool, read_timeout: float | None) -> None:
        self._conn = conn
        self.sid = sid
        self.session = session
        self.long_poll = False  # for the pool gauges only
        self._read_timeout = read_timeout
        self.headers: list[tuple[bytes, bytes]] | None = None
        self._buf = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._owed = 0  # bytes read by the consumer, not yet given back to the peer's window
        self._peer_window = STREAM_WINDOW  # what the peer may still send on this stream

    # -- from the connection -------------------------------------------------------------------

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def on_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self._wake()

    def on_data(self, data: bytes, flow_len: int) -> None:
        self._buf += data
        self._peer_window -= flow_len
        self._owed += flow_len - len(data)  # padding is never read: give it back with the rest
        self._wake()

    def on_end(self) -> None:
        self._eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self._error is None and not self._eof:
            self._error = error
        self._wake()

    @property
    def done(self) -> bool:
        return self._eof or self._error is not None

    # -- consumer side -------------------------------------------------------------------------

    async def _wait(self, want: int) -> None:
        """Wait for more data; first let the peer send at least `want` more bytes."""
        if self._owed or self._peer_window < want:
            self._grant(max(self._owed, want - self._peer_window))
        w = self._waiter = asyncio.get_running_loop().create_future()
        try:
            if self._read_timeout is None:
                await w
            else:
                async with asyncio.timeout(self._read_timeout):
                    await w
        finally:
            self._waiter = None

    def _grant(self, n: int) -> None:
        if n <= 0 or self.done:
            self._owed = 0
            return
        self._conn.grant(self.sid, n)
        self._peer_window += n
        self._owed = 0

    def _consumed(self, n: int) -> None:
        self._owed += n
        if self._owed >= STREAM_WINDOW // 4:  # batch WINDOW_UPDATEs
            self._grant(self._owed)

    async def wait_headers(self) -> list[tuple[bytes, bytes]]:
        while self.headers is None:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise ConnectionLost("stream ended without response headers")
            await self._wait(0)
        return self.headers

    async def read(self) -> bytes:
        chunks = [chunk async for chunk in self.iter_chunks()]
        return b"".join(chunks)

    async def readexactly(self, n: int) -> bytes:
        buf = self._buf
        while len(buf) < n:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise asyncio.IncompleteReadError(bytes(buf), n)
            await self._wait(n - len(buf))
        if n == len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            with memoryview(buf) as view:
                data = bytes(view[:n])  # one copy (bytes(buf[:n]) makes two)
            del buf[:n]  # cheap: bytearray drops its head without moving the rest
        self._consumed(n)
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._buf:
                data = bytes(self._buf)
                self._buf.clear()
                self._consumed(len(data))
                yield data
                continue
            if self._error is not None:
                raise self._error
            if self._eof:
                return
            await self._wait(1)

    def buffered(self) -> int:
        return len(self._buf)


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection: the `h2` state machine and its streams."""

    def __init__(self, origin: _Origin) -> None:
        self._origin = origin
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
            },
        )
        # Settings given as initial values are never "acknowledged" in h2: apply the frame size.
        self.h2.max_inbound_frame_size = MAX_FRAME_SIZE
        self.h2.incoming_buffer.max_frame_size = MAX_FRAME_SIZE
        self.streams: dict[int, _Stream] = {}
        self.reserved = 0  # slots taken by requests about to open a stream
        self.max_streams = 100  # until the server's SETTINGS say otherwise
        self.goaway = False
        self.closed = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._conn_owed = 0
        self._last_rx = time.monotonic()
        self._idle_since = time.monotonic()
        self._ping_out = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        self._schedule_tick()

    def data_received(self, data: bytes) -> None:
        self._last_rx = time.monotonic()
        self._ping_out = False  # anything from the peer proves it alive
        if not self.ready.done() and data.startswith(b"HTTP/1."):
            self._shut(H2ConnectFailed(f"{self._origin.name} answered HTTP/1.1, not HTTP/2 (h2c prior knowledge)"))
            return
        try:
            events = self.h2.receive_data(data)
            for event in events:
                self._on_event(event)
            # h2 checks a frame's length only once the whole frame arrived: a bogus 16 MiB
            # length would sit in its buffer until then. Check the pending frame's header now.
            pending = _pending_frame_bytes(self.h2)
            if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > self.h2.max_inbound_frame_size:
                raise h2.exceptions.FrameTooLargeError("frame larger than SETTINGS_MAX_FRAME_SIZE")
        except Exception as e:  # a peer that breaks HTTP/2 ends this connection, never the process
            log.warning("upstream %s broke HTTP/2: %r; closing the connection", self._origin.name, e)
            self._close_with(ConnectionLost(f"upstream broke HTTP/2: {e!r}"), ErrorCodes.PROTOCOL_ERROR)
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._shut(ConnectionLost(f"upstream HTTP/2 connection lost: {exc!r}" if exc else "upstream closed"))

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            sid, flow = event.stream_id, event.flow_controlled_length
            self._conn_owed += flow
            if self._conn_owed >= CONNECTION_WINDOW // 4:
                self.h2.increment_flow_control_window(self._conn_owed)
                self._conn_owed = 0
            stream = self.streams.get(sid)
            if stream is not None and event.data is not None:
                stream.on_data(event.data, flow)
        elif isinstance(event, h2.events.ResponseReceived):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_headers(list(event.headers or ()))
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self.streams.get(event.stream_id)) is not None:
                stream.on_end()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self.streams.get(event.stream_id)) is not None:
                code = event.error_code
                if code == ErrorCodes.REFUSED_STREAM and stream.headers is None:
                    stream.fail(StreamRefused("upstream refused the stream (REFUSED_STREAM)"))
                else:
                    who = "upstream" if event.remote_reset else "client"
                    stream.fail(StreamReset(f"{who} reset HTTP/2 stream {event.stream_id}: {code!r}"))
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.max_streams = self.h2.remote_settings.max_concurrent_streams
            if not self.ready.done():
                self.ready.set_result(None)
            self._origin.wake()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        last = event.last_stream_id if event.last_stream_id is not None else 0
        code = event.error_code
        log.info("upstream %s sent GOAWAY (%r, last stream %d)", self._origin.name, code, last)
        self.goaway = True
        for sid, stream in list(self.streams.items()):
            if sid > last:
                stream.fail(StreamRefused(f"upstream GOAWAY ({code!r}) before processing the stream"))
        _keep_receiving(self.h2)
        if not self.ready.done():
            self.ready.set_exception(H2ConnectFailed(f"upstream GOAWAY ({code!r}) at connect"))
        self._origin.wake()
        self._maybe_close()

    # -- used by streams and the pool ----------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not (self.goaway or self.closed)

    @property
    def active(self) -> int:
        return len(self.streams) + self.reserved

    def open_stream(self, headers: list[tuple[bytes, bytes]], session: bool, read_timeout: float | None) -> _Stream:
        """Open a stream on a slot reserved with `reserved += 1`."""
        self.reserved -= 1
        if not self.usable:
            raise StreamRefused("connection closed before the request was sent")
        sid = self.h2.get_next_available_stream_id()
        stream = _Stream(self, sid, session, read_timeout)
        try:
            self.h2.send_headers(sid, headers, end_stream=True)
        except h2.exceptions.TooManyStreamsError as e:  # the server lowered its limit meanwhile
            raise StreamRefused(f"upstream stream limit reached: {e}") from e
        self.streams[sid] = stream
        self._flush()
        return stream

    def release(self, stream: _Stream) -> None:
        """The caller is done with the stream: cancel it upstream if it is still open."""
        if self.streams.pop(stream.sid, None) is None:
            return
        if not stream._eof and not self.closed:
            stream.fail(StreamReset("cancelled"))
            with contextlib.suppress(h2.exceptions.H2Error):  # already closed on the h2 side
                self.h2.reset_stream(stream.sid, ErrorCodes.CANCEL)
            self._flush()
        if not self.streams:
            self._idle_since = time.monotonic()
        self._origin.wake()
        self._maybe_close()

    def grant(self, sid: int, n: int) -> None:
        if self.closed:
            return
        try:
            self.h2.increment_flow_control_window(n, sid)
        except (h2.exceptions.StreamClosedError, KeyError):
            return  # the stream ended meanwhile
        except h2.exceptions.H2Error as e:
            self._close_with(ConnectionLost(f"HTTP/2 flow control failed: {e!r}"), ErrorCodes.INTERNAL_ERROR)
            return
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _maybe_close(self) -> None:
        if self.goaway and not self.streams and not self.reserved:
            self.close()

    def _close_with(self, error: BaseException, code: ErrorCodes) -> None:
        try:
            self.h2.close_connection(error_code=code)
            self._flush()
        except Exception:  # the h2 state may be broken: closing the socket is enough
            pass
        self._shut(error)

    def _shut(self, error: BaseException) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        for stream in list(self.streams.values()):
            stream.fail(error)
        if not self.ready.done():
            self.ready.set_exception(H2ConnectFailed(str(error)))
            self.ready.exception()  # retrieved: no "never retrieved" warning if nobody awaits
        if self._transport is not None:
            self._transport.close()
        self._origin.forget(self)

    def close(self) -> None:
        if not self.closed:
            try:
                self.h2.close_connection()
                self._flush()
            except h2.exceptions.H2Error:
                pass
        self._shut(ConnectionLost("connection closed by the client"))

    # -- keepalive -----------------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        interval = self._origin.keepalive / 4
        self._timer = asyncio.get_running_loop().call_later(interval, self._tick)

    def _tick(self) -> None:
        """PING when quiet; a connection silent for the whole heartbeat timeout is dead."""
        if self.closed:
            return
        now = time.monotonic()
        silent = now - self._last_rx
        timeout = self._origin.keepalive
        if silent >= timeout:
            log.warning("upstream %s silent for %.1f s (PING unanswered); closing", self._origin.name, silent)
            self._shut(ConnectionLost(f"upstream HTTP/2 connection silent for {silent:.1f} s (PING unanswered)"))
            return
        if not self.streams and not self.reserved and now - self._idle_since >= IDLE_CLOSE:
            self.close()
            return
        if silent >= timeout / 4 and not self._ping_out:
            try:
                self.h2.ping(b"s2sidecr")
                self._ping_out = True
                self._flush()
            except h2.exceptions.H2Error:
                pass
        self._schedule_tick()


class _Origin:
    """The connections to one scheme://host:port."""

    def __init__(self, transport: Http2Transport, scheme: str, host: str, port: int) -> None:
        self.t = transport
        self.scheme, self.host, self.port = scheme, host, port
        self.name = f"{scheme}://{host}:{port}"
        default_port = 443 if scheme == "https" else 80
        self.authority = (host if port == default_port else f"{host}:{port}").encode()
        self.keepalive = transport.heartbeat_timeout
        self.conns: list[H2Connection] = []
        self._connecting: asyncio.Future[H2Connection] | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def wake(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)

    def forget(self, conn: H2Connection) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
        self.wake()

    async def acquire(self) -> H2Connection:
        """A connection with a free stream slot, reserved for the caller."""
        while True:
            best: H2Connection | None = None
            for c in self.conns:
                if c.usable and c.ready.done() and c.active < c.max_streams:
                    best = c
                    break
            if best is not None:
                best.reserved += 1
                return best
            usable = sum(1 for c in self.conns if c.usable)
            if self._connecting is not None:
                await asyncio.shield(self._connecting)
            elif usable < self.t.max_connections:
                await self.connect()
            else:
                w = asyncio.get_running_loop().create_future()
                self._waiters.append(w)
                await w

    async def connect(self) -> H2Connection:
        """Open one connection (callers arriving meanwhile share it)."""
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        fut: asyncio.Future[H2Connection] = asyncio.get_running_loop().create_future()
        self._connecting = fut
        try:
            conn = await self._open()
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()
            raise
        else:
            fut.set_result(conn)
            return conn
        finally:
            self._connecting = None
            self.wake()

    async def _open(self) -> H2Connection:
        loop = asyncio.get_running_loop()
        ssl_ctx = self.t.ssl_context if self.scheme == "https" else None
        conn = H2Connection(self)
        try:
            async with asyncio.timeout(self.t.connect_timeout):
                transport, _ = await loop.create_connection(
                    lambda: conn, self.host, self.port, ssl=ssl_ctx, server_hostname=self.host if ssl_ctx else None
                )
                if ssl_ctx is not None:
                    obj: Any = transport.get_extra_info("ssl_object")
                    alpn = obj.selected_alpn_protocol() if obj is not None else None
                    if alpn != "h2":
                        transport.close()
                        raise AlpnRefused(f"{self.name} did not pick h2 by TLS ALPN (got {alpn!r})")
                self.conns.append(conn)
                await conn.ready  # the server's SETTINGS: it speaks HTTP/2, and how many streams
        except H2ConnectFailed:
            conn._shut(ConnectionLost("connect failed"))
            raise
        except (OSError, TimeoutError, ssl.SSLError) as e:
            conn._shut(ConnectionLost(repr(e)))
            raise H2ConnectFailed(f"connect to {self.name}: {e!r}") from e
        except BaseException:
            conn._shut(ConnectionLost("connect abandoned"))
            raise
        return conn

    def close(self) -> None:
        for c in list(self.conns):
            c.close()


class Http2Transport:
    errors: tuple[type[BaseException], ...] = (
        asyncio.TimeoutError,
        asyncio.IncompleteReadError,
        ConnectionError,
        ssl.SSLError,
    )
    connect_errors: tuple[type[BaseException], ...] = (H2ConnectFailed, ConnectionRefusedError)

    def __init__(self, settings: UpstreamSettings, *, alpn: tuple[str, ...] = ("h2",)) -> None:
        """`alpn`: the protocols offered on `https://` (`("h2", "http/1.1")` when HTTP/1.1 is the
        fallback, see `AutoTransport`)."""
        self.max_connections = settings.h2_connections
        self.connect_timeout = settings.connect_timeout
        self.heartbeat_timeout = settings.heartbeat_timeout
        self.ssl_context = ssl_context(settings.ca_file, alpn)
        self._origins: dict[tuple[str, str, int], _Origin] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for o in self._origins.values():
            o.close()
        self._origins.clear()

    def origin(self, url: str) -> _Origin:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        o = self._origins.get(key)
        if o is None:
            o = self._origins[key] = _Origin(self, scheme, host, port)
        return o

    @asynccontextmanager
    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        session: bool = False,
        long_poll: bool = False,
        total_timeout: float | None = None,
    ) -> AsyncIterator[Response]:
        """Every kind of call shares the multiplexed connections: a long poll holds a stream, not
        a connection (`long_poll` only marks it for the pool gauges)."""
        parts = urlsplit(url)
        origin = self.origin(url)
        path = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(params) if params else "") if q)
        if query:
            path += "?" + query
        req = [
            (b":method", b"GET"),
            (b":scheme", origin.scheme.encode()),
            (b":authority", origin.authority),
            (b":path", path.encode()),
        ]
        req += [(k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP]
        loop = asyncio.get_running_loop()
        deadline = None if total_timeout is None else loop.time() + total_timeout
        read_timeout = self.heartbeat_timeout if session else None
        stream: _Stream | None = None
        timer: asyncio.TimerHandle | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for attempt in range(REFUSED_RETRIES + 1):
                    conn = await origin.acquire()
                    stream = conn.open_stream(req, session, read_timeout)
                    stream.long_poll = long_poll
                    try:
                        raw = await stream.wait_headers()
                        break
                    except StreamRefused:
                        conn.release(stream)
                        stream = None
                        if attempt == REFUSED_RETRIES:
                            raise
                else:  # pragma: no cover - the loop either breaks or raises
                    raise StreamRefused("unreachable")
            if deadline is not None:
                # The total timeout covers the body too (as aiohttp's does): fail the stream then.
                timer = loop.call_at(deadline, stream.fail, TimeoutError("upstream request timed out"))
            hdrs = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
            status = int(hdrs.pop(":status", "0"))
            yield Response(
                status=status,
                headers=hdrs,
                content_type=media_type(hdrs.get("content-type")),
                body=stream,
                protocol="2",
            )
        finally:
            if timer is not None:
                timer.cancel()
            if stream is not None:
                stream._conn.release(stream)

    def pool_stats(self) -> dict[str, int]:
        conns = [c for o in self._origins.values() for c in o.conns]
        streams = [s for c in conns for s in c.streams.values()]
        sessions = sum(1 for s in streams if s.session)
        long_polls = sum(1 for s in streams if s.long_poll)
        return {
            "unary_in_use": len(streams) - sessions - long_polls,
            "long_poll_in_use": long_polls,
            "session_in_use": sessions,
            "connections_h2": len(conns),
            "streams_h2": len(streams),
            "max_streams_per_connection_h2": max((len(c.streams) for c in conns), default=0),
        }


# Connection-specific headers are not allowed in HTTP/2 (RFC 9113 8.2.2).
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"})
