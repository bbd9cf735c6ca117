"""A small S2-like HTTP/2 server on `h2` for the upstream transport's tests, for what the emulator
(`sidecar/emulator`, scripted through `/_emulator/` hooks) cannot script.

Stream NAME holds `records` records (seq_num n has body `body_of(n, body_size)`); sessions (s2s)
send them from `seq_num` in frames of `batch` records, then heartbeats every `heartbeat` seconds
(or end after `count`). Unary reads answer one protobuf batch, `/tail` the tail. What only it
does: record each request (time, parameters, headers) and the DATA bytes sent per stream, hold a
stream's response headers back, GOAWAY with a last-stream-id below a request it holds, abort every
TCP connection, go silent (a dead peer), send raw bytes (bad frames), add response headers (an
oversized header block), pace frames.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from sidecar.types import StreamPosition
from sidecar.wire import s2s
from sidecar.wire.protobuf import encode_batch, encode_record_field
from tests.scripted_upstream import body_of


class H2TestServer:
    def __init__(
        self,
        *,
        records: int = 1000,
        body_size: int = 100,
        batch: int = 100,
        max_streams: int = 1000,
        heartbeat: float = 0.5,
        pace: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.records, self.body_size, self.batch = records, body_size, batch
        self.max_streams, self.heartbeat, self.pace = max_streams, heartbeat, pace
        self.host = host
        self.conns: list[_ServerConn] = []
        self.connections_opened = 0
        self.sent: defaultdict[str, int] = defaultdict(int)  # DATA bytes sent per stream name
        self.requests: list[tuple[float, str, dict[str, str]]] = []  # (time, stream, params)
        self.request_headers: list[dict[str, str]] = []
        self.hold: set[str] = set()  # stream names whose response headers are held back
        self.silent = False
        self.headers_extra: list[tuple[bytes, bytes]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> H2TestServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ServerConn(self), self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.abort_all()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- hooks ---------------------------------------------------------------------------------

    def goaway(self, code: int = 0, last_stream_id: int | None = None) -> None:
        for c in list(self.conns):
            c.goaway(code, last_stream_id)

    def abort_all(self) -> None:
        for c in list(self.conns):
            c.abort()

    def send_raw(self, data: bytes) -> None:
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.write(data)

    def pos(self) -> StreamPosition:
        return StreamPosition(self.records, 0)

    def frame(self, first: int, n: int) -> bytes:
        fields = [encode_record_field(s, s, (), body_of(s, self.body_size)) for s in range(first, first + n)]
        return s2s.encode_frame(encode_batch(fields, None))


class _ServerConn(asyncio.Protocol):
    def __init__(self, server: H2TestServer) -> None:
        self.s = server
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(cfg)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: server.max_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.names: dict[int, str] = {}
        self.window_open: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.last_sid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.s.conns.append(self)
        self.s.connections_opened += 1
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.s.conns:
            self.s.conns.remove(self)
        for t in self.tasks.values():
            t.cancel()

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and not self.s.silent:
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self.s.silent:
            return  # a dead peer: reads nothing, answers nothing (PINGs included)
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.abort()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.last_sid = ev.stream_id
                hdrs = {k.decode(): v.decode() for k, v in ev.headers}
                self.tasks[ev.stream_id] = asyncio.ensure_future(self.handle(ev.stream_id, hdrs))
            elif isinstance(ev, h2.events.WindowUpdated):
                if ev.stream_id == 0:
                    for e in self.window_open.values():
                        e.set()
                else:
                    self.window_open[ev.stream_id].set()
            elif isinstance(ev, h2.events.StreamReset):
                if (t := self.tasks.pop(ev.stream_id, None)) is not None:
                    t.cancel()
            elif isinstance(ev, h2.events.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        self.flush()

    def goaway(self, code: int, last_stream_id: int | None) -> None:
        # Written past h2 (which would close its state and refuse to send on any stream after
        # `close_connection()`): streams at or below last_stream_id go on being served.
        last = self.h2.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        self.flush()
        if self.transport is not None and not self.transport.is_closing() and not self.s.silent:
            self.transport.write(GoAwayFrame(0, last_stream_id=last, error_code=code).serialize())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def send(self, sid: int, data: bytes, name: str) -> None:
        view = memoryview(data)
        while view:
            while self.s.silent:  # noqa: ASYNC110 - a dead peer never wakes
                await asyncio.sleep(3600)
            window = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if window <= 0:
                ev = self.window_open[sid]
                ev.clear()
                await ev.wait()
                continue
            chunk = view[:window]
            self.h2.send_data(sid, chunk.tobytes())
            self.s.sent[name] += len(chunk)
            view = view[window:]
            self.flush()
            if self.transport is not None and self.transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.001)  # let the socket drain

    async def handle(self, sid: int, hdrs: dict[str, str]) -> None:
        try:
            await self._handle(sid, hdrs)
        except asyncio.CancelledError:
            pass
        except h2.exceptions.H2Error:
            pass  # the client went away or the connection closed
        finally:
            self.tasks.pop(sid, None)
            self.window_open.pop(sid, None)

    async def _handle(self, sid: int, hdrs: dict[str, str]) -> None:
        s = self.s
        parts = urlsplit(hdrs[":path"])
        segs = parts.path.split("/")
        name = unquote(segs[3]) if len(segs) > 3 else ""
        self.names[sid] = name
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        s.requests.append((time.monotonic(), name, params))
        s.request_headers.append(hdrs)
        while name in s.hold:  # noqa: ASYNC110 - polled by tests
            await asyncio.sleep(0.01)
        if parts.path.endswith("/tail"):
            body = json.dumps({"tail": {"seq_num": s.records, "timestamp": 0}}).encode()
            await self.respond(sid, "application/json", body)
            return
        start = int(params.get("seq_num", "0"))
        count = int(params["count"]) if "count" in params else None
        end = s.records if count is None else min(s.records, start + count)
        if hdrs.get("content-type") != s2s.CONTENT_TYPE:  # a unary protobuf read
            if start >= s.records and "wait" in params:
                await asyncio.sleep(float(params["wait"]))
            n = max(0, min(end, start + 1000) - start)
            fields = [encode_record_field(q, q, (), body_of(q, s.body_size)) for q in range(start, start + n)]
            await self.respond(sid, "application/protobuf", encode_batch(fields, s.pos()))
            return
        self.h2.send_headers(
            sid, [(b":status", b"200"), (b"content-type", s2s.CONTENT_TYPE.encode()), *s.headers_extra]
        )
        self.flush()
        seq = start
        while seq < end:
            n = min(s.batch, end - seq)
            await self.send(sid, s.frame(seq, n), name)
            seq += n
            if s.pace:
                await asyncio.sleep(s.pace)
        if count is not None and seq >= start + count:
            self.h2.end_stream(sid)
            self.flush()
            return
        while True:  # caught up: heartbeats with the tail, as S2 sends while a session is live
            await self.send(sid, s2s.encode_frame(encode_batch([], s.pos())), name)
            await asyncio.sleep(s.heartbeat)

    async def respond(self, sid: int, ctype: str, body: bytes) -> None:
        self.h2.send_headers(sid, [(b":status", b"200"), (b"content-type", ctype.encode()), *self.s.headers_extra])
        await self.send(sid, body, self.names.get(sid, ""))
        self.h2.end_stream(sid)
        self.flush()


def raw_frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One HTTP/2 frame, bypassing h2's checks (for bad-input tests)."""
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream_id.to_bytes(4, "big") + payload


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> asyncio.Future[None]:
    async def run() -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.01)

    return asyncio.ensure_future(run())
