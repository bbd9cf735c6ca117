"""A scripted S2 upstream: each read session request gets the next script of frames, so protocol
edge cases (gaps, early heartbeats, oversized batches, resets at the worst moment, reconnect
advice, terminal errors) are tested against the real sidecar over real sockets.

    async with scripted_sidecar() as (upstream, stub):
        upstream.script(Records(0, 5), Heartbeat(7), Records(5, 2))   # first request
        upstream.script(Records(5, 5))                                 # the sidecar's retry
        async for msg in stub.ReadSession(...): ...
        assert upstream.requests[1]["seq_num"] == "5"

Records carry their seq_num as the body (`body_of`), so a test can check exactly what arrived.
Sessions are answered as s2s frames, or as SSE events when the sidecar asks for SSE. A request
with no script left gets `when_idle` (by default: stay open and silent until the test ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.config import Config
from sidecar.server import Sidecar
from sidecar.types import Record, StreamPosition
from sidecar.wire import s2s, sse
from sidecar.wire.json import Format, batch_to_json, dumps, position_to_json, tail_to_json
from sidecar.wire.protobuf import encode_batch, encode_record_field

BASIN = "scripted-basin"


def body_of(seq_num: int, size: int = 0) -> bytes:
    """The body the scripted upstream gives record `seq_num`: its number, padded to `size`."""
    return str(seq_num).encode().ljust(size, b".")


@dataclass(frozen=True)
class Records:
    """One batch: records `first` .. `first + count - 1`."""

    first: int
    count: int
    tail: int | None = None  # a tail on the batch (S2 sends one on live batches)
    advised: bool = False  # the s2s reconnect-advised flag
    body_size: int = 0
    headers: int = 0  # one-byte headers per record (header-heavy records encode large)

    def records(self) -> list[Record]:
        headers = tuple((b"h", b"v") for _ in range(self.headers))
        return [Record(s, s, headers, body_of(s, self.body_size)) for s in range(self.first, self.first + self.count)]


@dataclass(frozen=True)
class Heartbeat:
    tail: int


@dataclass(frozen=True)
class Terminal:
    """End the session with an error (s2s terminal frame / SSE error event)."""

    status: int
    code: str


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Reset:
    """Abort the connection: what a crashed server or a dropped network looks like."""


Step = Records | Heartbeat | Terminal | Pause | Reset


class ScriptedUpstream:
    def __init__(self) -> None:
        self.scripts: deque[Sequence[Step]] = deque()
        self.when_idle: Sequence[Step] = (Pause(3600),)
        self.requests: list[dict[str, str]] = []  # query parameters of each session request
        self.tail = StreamPosition(0, 0)  # what `GET .../records/tail` answers
        self.one_shot: Records = Records(0, 0)  # what a one-shot (protobuf) read answers
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *steps: Step) -> None:
        """The answer to the next session request (a clean end after the last step)."""
        self.scripts.append(steps)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/streams/{stream}/records", self._session)
        app.router.add_get("/v1/streams/{stream}/records/tail", self._tail)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _tail(self, request: web.Request) -> web.Response:
        return web.json_response(tail_to_json(self.tail))

    async def _session(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Content-Type") != s2s.CONTENT_TYPE and not request.headers.get("Accept", "").startswith(
            "text/event-stream"
        ):
            return web.Response(body=_s2s(self.one_shot)[4:], content_type="application/protobuf")
        self.requests.append(dict(request.query))
        steps = self.scripts.popleft() if self.scripts else self.when_idle
        use_sse = request.headers.get("Accept", "").startswith("text/event-stream")
        response = web.StreamResponse(headers={"content-type": "text/event-stream" if use_sse else s2s.CONTENT_TYPE})
        await response.prepare(request)
        for step in steps:
            match step:
                case Pause(seconds):
                    await asyncio.sleep(seconds)
                    continue
                case Reset():
                    assert request.transport is not None
                    request.transport.abort()
                    return response
            await response.write(_sse(step) if use_sse else _s2s(step))
            if isinstance(step, Terminal):
                break
        else:
            if use_sse:
                await response.write(sse.encode_event(sse.DONE))
        await response.write_eof()
        return response


def _s2s(step: Step) -> bytes:
    match step:
        case Records() as r:
            fields = [encode_record_field(x.seq_num, x.timestamp, x.headers, x.body) for x in r.records()]
            tail = StreamPosition(r.tail, r.tail) if r.tail is not None else None
            return s2s.encode_frame(encode_batch(fields, tail), reconnect_advised=r.advised)
        case Heartbeat(tail):
            return s2s.encode_frame(encode_batch([], StreamPosition(tail, tail)))
        case Terminal(status, code):
            return s2s.encode_terminal(status, dumps({"code": code, "message": f"scripted {code}"}))
    raise AssertionError(step)


def _sse(step: Step) -> bytes:
    match step:
        case Records() as r:
            tail = StreamPosition(r.tail, r.tail) if r.tail is not None else None
            data = dumps(batch_to_json(r.records(), tail, Format.BASE64)).decode()
            return sse.encode_event(data, "batch")
        case Heartbeat(tail):
            return sse.encode_event(
                dumps({"timestamp": 0, "tail": position_to_json(StreamPosition(tail, tail))}).decode(), "ping"
            )
        case Terminal(_, code):
            return sse.encode_event(dumps({"code": code, "message": f"scripted {code}"}).decode(), "error")
    raise AssertionError(step)


@contextlib.asynccontextmanager
async def scripted_sidecar(
    **config: Any,
) -> AsyncIterator[tuple[ScriptedUpstream, stream_pb2_grpc.StreamServiceStub, Sidecar]]:
    """A real sidecar reading from a `ScriptedUpstream`, and a gRPC stub to it (default basin set).
    Retries are quick by default; pass Config fields to change anything."""
    upstream = ScriptedUpstream()
    await upstream.start()
    base = Config(
        listen=("127.0.0.1:0",),
        basin_endpoint=upstream.url + "/v1",
        admin_listen=None,
        default_basin=BASIN,
        retry_base_delay=0.01,
        grace_period=1.0,
    )
    sidecar = Sidecar(dataclasses.replace(base, **config))
    await sidecar.start()
    channel = grpc.aio.insecure_channel(sidecar.addresses[0])
    try:
        yield upstream, stream_pb2_grpc.StreamServiceStub(channel), sidecar  # type: ignore[no-untyped-call]
    finally:
        await channel.close(None)
        await sidecar.stop(grace=0.2)
        await upstream.stop()
