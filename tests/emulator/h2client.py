"""A small raw HTTP/2 client on `h2` for the emulator's HTTP/2 tests: it sees every GOAWAY and
RST_STREAM, and can stop reading one stream (hold back its window) while others go on."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

FRAME_HEADER_BYTES = 9


@dataclass
class Stream:
    id: int
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset_code: int | None = None
    paused: bool = False  # received DATA is not acknowledged on this stream's window
    unacked: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Goaway:
    last_stream_id: int
    error_code: int


class FrameSplitter:
    """Received bytes, cut into whole HTTP/2 frames (header and payload) by their length field."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= FRAME_HEADER_BYTES:
            end = FRAME_HEADER_BYTES + int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[:end]))
            del self._buffer[:end]
        return frames


def graceful_goaway(frame: bytes) -> Goaway | None:
    """The GOAWAY in `frame` if it is graceful (NO_ERROR), else None.

    h2 closes its connection state on any GOAWAY it receives and then rejects every later frame,
    even those of the streams a graceful GOAWAY lets the server finish (RFC 9113 section 6.8), and
    it has no public switch for that: a graceful GOAWAY is read here, with hyperframe, and never
    given to h2. A GOAWAY with an error goes to h2 like any frame (the connection is over)."""
    parsed, _length = Frame.parse_frame_header(memoryview(frame[:FRAME_HEADER_BYTES]))
    if not isinstance(parsed, GoAwayFrame):
        return None
    parsed.parse_body(memoryview(frame[FRAME_HEADER_BYTES:]))
    return Goaway(parsed.last_stream_id, 0) if parsed.error_code == 0 else None


class H2Client:
    """One HTTP/2 connection (h2c with prior knowledge, or TLS with ALPN h2)."""

    def __init__(self, window: int = 65535) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams: dict[int, Stream] = {}
        self.goaway: Goaway | None = None
        self.closed = asyncio.Event()
        self.goaway_seen = asyncio.Event()
        self.alpn: str | None = None
        self._window = window
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._frames = FrameSplitter()

    async def connect(self, host: str, port: int, context: ssl.SSLContext | None = None) -> H2Client:
        self._reader, self._writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=host if context else None
        )
        ssl_object = self._writer.get_extra_info("ssl_object")
        self.alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self._window}
        )
        self.conn.initiate_connection()
        self._flush()
        self._task = asyncio.get_running_loop().create_task(self._receive())
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()

    def _flush(self) -> None:
        assert self._writer is not None
        if data := self.conn.data_to_send():
            self._writer.write(data)

    async def _receive(self) -> None:
        assert self._reader is not None
        try:
            while data := await self._reader.read(65536):
                for frame in self._frames.feed(data):
                    if (goaway := graceful_goaway(frame)) is not None:
                        self._on_goaway(goaway)
                        continue
                    for event in self.conn.receive_data(frame):
                        self._on_event(event)
                self._flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for s in self.streams.values():
                s.changed.set()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            s = self.streams[event.stream_id]
            s.headers = dict(event.headers)  # type: ignore[arg-type]
            s.status = int(s.headers[":status"])
        elif isinstance(event, h2.events.DataReceived):
            s = self.streams[event.stream_id]
            s.data += event.data
            n = event.flow_controlled_length
            # The connection window always: a paused stream must not hold the others back.
            if n:
                self.conn.increment_flow_control_window(n)
            if s.paused:
                s.unacked += n
            elif n:
                with contextlib.suppress(h2.exceptions.StreamClosedError):  # DATA with END_STREAM
                    self.conn.increment_flow_control_window(n, stream_id=event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset_code = int(event.error_code)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(Goaway(event.last_stream_id or 0, int(event.error_code or 0)))
        sid = getattr(event, "stream_id", None)
        if sid in self.streams:
            self.streams[sid].changed.set()

    def _on_goaway(self, goaway: Goaway) -> None:
        self.goaway = goaway
        self.goaway_seen.set()

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"", end: bool = True
    ) -> Stream:
        sid = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "127.0.0.1")]
        fields += [(k.lower(), v) for k, v in (headers or {}).items()]
        self.conn.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self._flush()
        s = self.streams[sid] = Stream(sid)
        return s

    def cancel(self, s: Stream, error_code: int = 8) -> None:
        """RST_STREAM (default CANCEL), as a client that gave up on the request."""
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.conn.reset_stream(s.id, error_code)
        self._flush()

    def send(self, s: Stream, data: bytes, end: bool = False) -> None:
        self.conn.send_data(s.id, data, end_stream=end)
        self._flush()

    def resume(self, s: Stream) -> None:
        """Start acknowledging a paused stream again (and what it held)."""
        s.paused = False
        if s.unacked and not s.ended:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.conn.increment_flow_control_window(s.unacked, stream_id=s.id)
            self._flush()
        s.unacked = 0

    async def wait(self, s: Stream, done: object, timeout: float = 10.0) -> None:
        """Wait until `done(s)` is true (or the stream ended or was reset)."""
        assert callable(done)
        async with asyncio.timeout(timeout):
            while not done(s):
                if s.ended or s.reset_code is not None or self.closed.is_set():
                    return
                s.changed.clear()
                await s.changed.wait()

    async def finish(self, s: Stream, timeout: float = 10.0) -> Stream:
        await self.wait(s, lambda s: s.ended or s.reset_code is not None, timeout)
        return s

    async def fetch(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Stream:
        return await self.finish(self.request(method, path, headers, body))
