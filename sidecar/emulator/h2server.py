"""HTTP/2 on the `h2` sans-IO library: one asyncio Protocol per connection, one task per stream.

Flow control, so that one stalled stream never stops the others on its connection:
- receiving: the connection window is replenished as soon as DATA reaches the stream's buffer;
  the stream's own window only as its handler consumes the data (`chunk`, `body`);
- sending: each stream waits for its own window (and the connection's, and the socket's write
  buffer), so a client that stops reading one session holds back only that session.

GOAWAY and RST_STREAM are under the hooks' control (`goaway`, `Exchange.cut`): a graceful GOAWAY is
written past `h2`'s state machine, because `h2` would refuse to send on in-flight streams after
`close_connection()`; new streams above the announced last-stream-id are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast
from urllib.parse import parse_qsl

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
from hyperframe.frame import GoAwayFrame
from multidict import CIMultiDict, MultiDict

from .exchange import H2_ERROR_CODES, MAX_REQUEST_BYTES, Exchange, Http2Connection, too_large

log = logging.getLogger("sidecar.emulator")


def _short_payload_repr(data: bytes | memoryview | None) -> str:
    return f"<{len(data) if data else 0} bytes>"


def shorten_frame_reprs() -> bool:
    """Make hyperframe's frame repr give a payload's length instead of its hex (process-wide).

    h2 formats `repr(frame)` for its trace log on every frame it receives, logging on or off, and
    hyperframe's repr hex-encodes the whole payload (~30% of receive CPU, measured for
    sidecar/upstream/http2.py, which does the same; the emulator may not import it). hyperframe
    has no public switch: this is the one place that touches its private `_raw_data_repr`
    (tests/emulator/test_h2_contracts.py fails if it disappears). False: nothing to patch."""
    if getattr(hyperframe.frame, "_raw_data_repr", None) is None:
        return False
    hyperframe.frame._raw_data_repr = _short_payload_repr
    return True


shorten_frame_reprs()

# What each stream may have in flight towards us (and so what it may buffer here): about one
# append batch. The connection window is larger so that many streams can send at once.
STREAM_WINDOW = 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
MAX_CONCURRENT_STREAMS = 1000
WRITE_BUFFER_HIGH = 1024 * 1024  # bytes the socket may hold before senders wait

Handler = Callable[[Exchange], Awaitable[None]]
# Response headers that HTTP/2 forbids (RFC 9113 section 8.2.2).
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


class _Stream:
    """One request stream: its body buffer, and what its handler waits on."""

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.chunks: deque[bytes] = deque()
        self.request_ended = False
        self.readable = asyncio.Event()
        self.window = asyncio.Event()  # set when the send window may have opened
        self.closed = False  # reset by either side, or the connection is gone
        self.task: asyncio.Task[None] | None = None
        self.answered = False  # the response is complete (or the stream was reset)

    def wake(self) -> None:
        self.readable.set()
        self.window.set()


class H2Exchange(Exchange):
    protocol = "HTTP/2"

    def __init__(
        self, conn: H2ServerProtocol, stream: _Stream, method: str, raw_path: str, headers: CIMultiDict[str], qs: str
    ) -> None:
        self._conn = conn
        self._stream = stream
        self.method = method
        self.raw_path = raw_path
        self.headers = headers
        self.query = MultiDict(parse_qsl(qs, keep_blank_values=True))

    async def body(self, limit: int = MAX_REQUEST_BYTES) -> bytes:
        parts, size = [], 0
        while chunk := await self.chunk():
            size += len(chunk)
            if size > limit:
                raise too_large()
            parts.append(chunk)
        return b"".join(parts)

    async def chunk(self) -> bytes:
        s = self._stream
        while not s.chunks:
            if s.request_ended:
                return b""
            if s.closed:
                raise ConnectionResetError("the stream was reset")
            s.readable.clear()
            await s.readable.wait()
        data = s.chunks.popleft()
        self._conn.consumed(s, len(data))
        return data

    async def reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        await self.start(status, {**headers, "content-length": str(len(body))}, end=not body)
        if body:
            await self.write(body)
            await self.end()

    async def start(self, status: int, headers: Mapping[str, str], end: bool = False) -> None:
        self._conn.send_headers(self._stream, status, headers, end)

    async def write(self, data: bytes) -> None:
        await self._conn.send_data(self._stream, data)

    async def end(self) -> None:
        self._conn.end_stream(self._stream)

    async def cut(self, error_code: int | None = None) -> None:
        self._conn.reset_stream(self._stream, H2_ERROR_CODES["INTERNAL_ERROR"] if error_code is None else error_code)


class H2ServerProtocol(asyncio.Protocol):
    """One HTTP/2 connection (h2c with prior knowledge, or TLS with ALPN `h2`)."""

    def __init__(
        self, handler: Handler, registry: set[Http2Connection], max_streams: int = MAX_CONCURRENT_STREAMS
    ) -> None:
        self._handler = handler
        self._max_streams = max_streams
        self._registry = registry
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._writable = asyncio.Event()
        self._writable.set()
        self._highest = 0  # highest stream id the client opened
        self._goaway_last: int | None = None  # set by a graceful GOAWAY: refuse streams above it
        self._closed = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                # A client must open another connection beyond this (h2 ends a connection that
                # exceeds it rather than refusing the one stream).
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._max_streams,
            },
        )
        self._conn.initiate_connection()
        self._conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            # h2 has queued a GOAWAY naming the problem: send it and hang up.
            log.info("emulator: HTTP/2 protocol error from a client: %s", e)
            self._flush()
            self._close_transport()
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._registry.discard(self)
        self._writable.set()
        for stream in list(self._streams.values()):
            stream.closed = True
            stream.wake()
            if stream.task is not None:
                stream.task.cancel()  # e.g. a session waiting at the tail: its client is gone

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- events -------------------------------------------------------------------------------

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            assert event.stream_id is not None and event.data is not None
            n = event.flow_controlled_length or 0
            if n:
                # Replenish the connection at once: what this stream holds is bounded by its own window.
                self._conn.increment_flow_control_window(n)
            stream = self._streams.get(event.stream_id)
            if stream is None or stream.closed or stream.answered:
                return  # nobody will read it
            stream.chunks.append(event.data)
            stream.readable.set()
            if n > len(event.data):  # padding counts against the window but is never consumed
                self._ack_stream(stream, n - len(event.data))
        elif isinstance(event, h2.events.StreamEnded):
            if (stream := self._streams.get(event.stream_id or 0)) is not None:
                stream.request_ended = True
                stream.readable.set()
        elif isinstance(event, h2.events.StreamReset):
            if (stream := self._streams.get(event.stream_id or 0)) is not None:
                self._drop(stream)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            if isinstance(event, h2.events.WindowUpdated) and event.stream_id:
                if (stream := self._streams.get(event.stream_id)) is not None:
                    stream.window.set()
            else:
                for stream in self._streams.values():
                    stream.window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close_transport()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        assert sid is not None and event.headers is not None
        self._highest = max(self._highest, sid)
        if self._goaway_last is not None and sid > self._goaway_last:
            self._conn.reset_stream(sid, H2_ERROR_CODES["REFUSED_STREAM"])
            return
        pseudo: dict[str, str] = {}
        headers: CIMultiDict[str] = CIMultiDict()
        for raw_name, raw_value in event.headers:
            name = bytes(raw_name).decode("latin-1")
            value = bytes(raw_value).decode("utf-8", "surrogateescape")
            if name.startswith(":"):
                pseudo[name] = value
            else:
                headers.add(name, value)
        if "host" not in headers and ":authority" in pseudo:
            headers["Host"] = pseudo[":authority"]
        path, _, qs = pseudo.get(":path", "/").partition("?")
        stream = _Stream(sid)
        self._streams[sid] = stream
        exchange = H2Exchange(self, stream, pseudo.get(":method", "GET"), path, headers, qs)
        stream.task = asyncio.get_running_loop().create_task(self._run(exchange))
        # Cleanup in a done callback, not in `_run`: a task cancelled before its first step (the
        # client reset the stream in the same read as it opened it) never runs its coroutine at all.
        stream.task.add_done_callback(lambda _: self._finish(stream))

    async def _run(self, exchange: H2Exchange) -> None:
        try:
            await self._handler(exchange)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("emulator: unexpected error in an HTTP/2 stream")

    def _finish(self, stream: _Stream) -> None:
        """The stream's handler is done (or was cancelled before it started): forget the stream."""
        if not stream.answered and not stream.closed and not self._closed:
            self.reset_stream(stream, H2_ERROR_CODES["INTERNAL_ERROR"])  # never leave a stream hanging
        elif not stream.request_ended and not stream.closed and not self._closed:
            # Answered before the request ended (e.g. an append session that failed): tell the
            # client to stop sending (RFC 9113 section 8.1).
            self.reset_stream(stream, H2_ERROR_CODES["NO_ERROR"])
        self._streams.pop(stream.id, None)
        self._close_if_done()

    # -- sending ------------------------------------------------------------------------------

    def send_headers(self, stream: _Stream, status: int, headers: Mapping[str, str], end: bool) -> None:
        self._check(stream)
        fields = [(":status", str(status))]
        fields += [(k.lower(), v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP]
        self._conn.send_headers(stream.id, fields, end_stream=end)
        stream.answered = end
        self._flush()

    async def send_data(self, stream: _Stream, data: bytes) -> None:
        offset, size = 0, len(data)
        while offset < size:
            self._check(stream)
            if not self._writable.is_set():
                await self._writable.wait()
                continue
            try:
                window = self._conn.local_flow_control_window(stream.id)
            except h2.exceptions.StreamClosedError:
                raise ConnectionResetError("the stream is closed") from None
            if window <= 0:
                stream.window.clear()
                await stream.window.wait()
                continue
            n = min(window, self._conn.max_outbound_frame_size, size - offset)
            self._conn.send_data(stream.id, data[offset : offset + n] if n < size else data)
            offset += n
            self._flush()

    def end_stream(self, stream: _Stream) -> None:
        self._check(stream)
        self._conn.end_stream(stream.id)
        stream.answered = True
        self._flush()

    def reset_stream(self, stream: _Stream, error_code: int) -> None:
        if stream.closed or self._closed:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream.id, error_code)
        stream.answered = True
        stream.closed = True
        stream.wake()
        self._flush()

    def consumed(self, stream: _Stream, nbytes: int) -> None:
        """The handler took `nbytes` of the stream's body: let the client send that much more."""
        if not stream.closed and not self._closed:
            self._ack_stream(stream, nbytes)
            self._flush()

    def _ack_stream(self, stream: _Stream, nbytes: int) -> None:
        if nbytes and not stream.request_ended:
            with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._conn.increment_flow_control_window(nbytes, stream_id=stream.id)

    def _check(self, stream: _Stream) -> None:
        if stream.closed or self._closed:
            raise ConnectionResetError("the stream was reset or the connection closed")

    def _drop(self, stream: _Stream) -> None:
        """The client reset the stream: its handler has no one to answer."""
        stream.closed = True
        stream.wake()
        if stream.task is not None:
            stream.task.cancel()

    def _flush(self) -> None:
        if self._transport is not None and not self._transport.is_closing() and (data := self._conn.data_to_send()):
            self._transport.write(data)

    def _close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()  # sends what is buffered first

    # -- GOAWAY (hooks, shutdown) -------------------------------------------------------------

    def goaway(self, error_code: int, last_stream_id: int | None) -> None:
        """GOAWAY: graceful (NO_ERROR: in-flight streams finish, then close) or, with an error
        code, close at once (every stream ends)."""
        if self._closed or self._transport is None:
            return
        last = self._highest if last_stream_id is None else last_stream_id
        if error_code != H2_ERROR_CODES["NO_ERROR"]:
            self._conn.close_connection(error_code=error_code, last_stream_id=last)
            self._flush()
            self._close_transport()
            return
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = error_code
        self._flush()  # frames h2 queued go first: the GOAWAY is written past its state machine
        self._transport.write(frame.serialize())
        self._goaway_last = last
        for stream in list(self._streams.values()):
            if stream.id > last:
                self.reset_stream(stream, H2_ERROR_CODES["REFUSED_STREAM"])
                self._drop(stream)  # e.g. a session waiting at the tail: it will never be answered
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self._goaway_last is not None and not self._streams and not self._closed:
            self._close_transport()

    def close(self) -> None:
        """Hang up now (shutdown after the grace period): every stream ends."""
        self.goaway(H2_ERROR_CODES["NO_ERROR"], None)
        self._close_transport()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def describe(self) -> dict[str, Any]:
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        return {
            "peer": None if peer is None else f"{peer[0]}:{peer[1]}",
            "open_streams": len(self._streams),
            "highest_stream_id": self._highest,
            "goaway_sent": self._goaway_last is not None,
        }
