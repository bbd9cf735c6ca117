"""Writing answers: S2's error bodies, whole replies, and response bodies that faults can cut."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sidecar.errors import RangeNotSatisfiable, S2Error
from sidecar.wire.json import dumps, error_body, tail_to_json

from .faults import Action, Corrupt, Cut, Stall
from .store import ErrorBody

JSON = "application/json"
PROTOBUF = "application/protobuf"
# Garbage for the corrupt fault: JSON that does not parse, and protobuf whose first field claims
# more bytes than follow (so every protobuf parser rejects it).
GARBAGE_JSON = b'{"records": [{"seq_num": \x00garbage'
GARBAGE_PROTOBUF = b"\x0a\x7f\x01"


def error_payload(err: S2Error) -> dict[str, Any]:
    """S2's JSON body for an error: the tail for 416, the special bodies of 412, else code and message."""
    if isinstance(err, RangeNotSatisfiable):
        return tail_to_json(err.tail)
    if isinstance(err, ErrorBody):
        return err.body
    return error_body(err.code, err.message)


@dataclass(slots=True)
class Reply:
    """A whole (non-session) answer, built before any byte is sent so that faults can shape it."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Reply:
        return cls(status, dumps(obj))

    @classmethod
    def error(cls, err: S2Error) -> Reply:
        headers = {"retry-after-ms": str(err.retry_after_ms)} if err.retry_after_ms is not None else {}
        return cls(err.status, dumps(error_payload(err)), headers=headers)


async def sleep_unless(event: asyncio.Event, seconds: float) -> None:
    """Sleep, but return early once `event` is set (so a stopping server is not held up)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


class CutConnection(Exception):
    """The cut fault aborted the connection: the handler has nothing more to write."""


class Output:
    """A response body writer that applies the cut fault: abort the TCP connection after K bytes."""

    def __init__(self, request: web.BaseRequest, response: web.StreamResponse, cut_after: int | None) -> None:
        self._request = request
        self.response = response
        self._cut_after = cut_after
        self._written = 0

    async def write(self, data: bytes) -> None:
        if self._cut_after is not None and self._written + len(data) >= self._cut_after:
            room = self._cut_after - self._written
            if room > 0:
                await self.response.write(data[:room])
            self._written += max(room, 0)
            await self._abort()
            raise CutConnection
        await self.response.write(data)
        self._written += len(data)

    async def _abort(self) -> None:
        transport = self._request.transport
        if transport is None:
            return
        # Let the bytes already written reach the socket first: abort() drops buffered data.
        for _ in range(100):
            if transport.is_closing() or transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        transport.abort()


async def send_reply(
    request: web.BaseRequest, reply: Reply, action: Action | None, stopping: asyncio.Event
) -> web.StreamResponse:
    """Send a whole reply, shaped by a stall, cut or corrupt fault when one was taken."""
    if isinstance(action, Corrupt):
        reply.body = GARBAGE_PROTOBUF if reply.content_type == PROTOBUF else GARBAGE_JSON
    if not isinstance(action, Stall | Cut):
        return web.Response(
            status=reply.status, body=reply.body, content_type=reply.content_type, headers=reply.headers
        )
    response = web.StreamResponse(status=reply.status, headers={"content-type": reply.content_type, **reply.headers})
    await response.prepare(request)
    if isinstance(action, Stall):
        await sleep_unless(stopping, action.seconds)
    out = Output(request, response, action.after_bytes if isinstance(action, Cut) else None)
    try:
        await out.write(reply.body)
    except CutConnection:
        return response
    await response.write_eof()
    return response
