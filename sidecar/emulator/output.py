"""Writing answers: S2's error bodies, whole replies, and response bodies that faults can cut."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from sidecar.errors import RangeNotSatisfiable, S2Error
from sidecar.wire.json import dumps, error_body, tail_to_json

from .exchange import Exchange
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
    """The cut fault ended the answer abruptly: the handler has nothing more to write."""


class Output:
    """A response body writer that applies the cut fault: after K bytes, abort the TCP connection
    (HTTP/1.1) or reset the stream (HTTP/2, RST_STREAM with `error_code`, INTERNAL_ERROR by default)."""

    def __init__(self, exchange: Exchange, cut_after: int | None, error_code: int | None = None) -> None:
        self._exchange = exchange
        self._cut_after = cut_after
        self._error_code = error_code
        self._written = 0

    async def write(self, data: bytes) -> None:
        if self._cut_after is not None and self._written + len(data) >= self._cut_after:
            room = self._cut_after - self._written
            if room > 0:
                await self._exchange.write(data[:room])
            self._written += max(room, 0)
            await self._exchange.cut(self._error_code)
            raise CutConnection
        await self._exchange.write(data)
        self._written += len(data)


def cut_of(action: Action | None) -> tuple[int | None, int | None]:
    """(bytes before the cut, HTTP/2 error code) of a cut or reset fault; (None, None) otherwise."""
    if isinstance(action, Cut):
        return action.after_bytes, action.error_code
    return None, None


async def send_reply(exchange: Exchange, reply: Reply, action: Action | None, stopping: asyncio.Event) -> None:
    """Send a whole reply, shaped by a stall, cut or corrupt fault when one was taken."""
    if isinstance(action, Corrupt):
        reply.body = GARBAGE_PROTOBUF if reply.content_type == PROTOBUF else GARBAGE_JSON
    headers = {"content-type": reply.content_type, **reply.headers}
    if not isinstance(action, Stall | Cut):
        await exchange.reply(reply.status, headers, reply.body)
        return
    await exchange.start(reply.status, headers)
    if isinstance(action, Stall):
        await sleep_unless(stopping, action.seconds)
    out = Output(exchange, *cut_of(action))
    try:
        await out.write(reply.body)
    except CutConnection:
        return
    await exchange.end()
