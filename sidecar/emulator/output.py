"""Writing answers: S2's error bodies, whole replies, and response bodies that faults can cut."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from dataclasses import dataclass, field
from typing import Any

import zstandard

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


# S2 compresses whole answers of its /v1 API of at least 1 KiB, sessions never (lite/src/handlers/v1/mod.rs:
# tower-http's CompressionLayer with SizeAbove(1024), not for text/event-stream nor s2s/proto; gzip and zstd).
COMPRESS_REPLY_MIN_BYTES = 1024
_CODINGS = ("identity", "gzip", "zstd")  # tower-http's preference at equal q, least first


def _qvalue(params: str) -> int | None:
    """A q parameter in thousandths, as tower-http parses it (None: not valid, the entry is ignored)."""
    text = params.strip()
    if not text:
        return 1000
    if text[:2].lower() != "q=" or text[2:3] not in ("0", "1"):
        return None
    whole, _, frac = text[2:].partition(".")
    if len(whole) != 1 or len(frac) > 3 or (not frac.isdigit() and frac):
        return None
    value = int(whole) * 1000 + int((frac or "0").ljust(3, "0"))
    return value if value <= 1000 else None


def reply_coding(accept_encoding: str | None) -> str:
    """The content coding of a whole answer: the highest q among gzip, zstd and identity (ties go
    to zstd, then gzip), `*` standing for those not named (tower-http `preferred_encoding_with_wildcard`)."""
    if not accept_encoding:
        return "identity"
    explicit: dict[str, int] = {}
    wildcard: int | None = None
    for part in accept_encoding.split(","):
        name, _, params = part.partition(";")
        name = name.strip().lower()
        name = "gzip" if name == "x-gzip" else name
        q = _qvalue(params)
        if q is None:
            continue
        if name == "*":
            wildcard = q
        elif name in _CODINGS:
            explicit.setdefault(name, q)
    offered = explicit if wildcard is None else {c: explicit.get(c, wildcard) for c in _CODINGS}
    best = max(((q, _CODINGS.index(c)) for c, q in offered.items() if q > 0), default=None)
    return "identity" if best is None else _CODINGS[best[1]]


def compress_reply(reply: Reply, accept_encoding: str | None) -> None:
    """Compress a whole answer of at least 1 KiB in the coding the client prefers, as S2 does."""
    if len(reply.body) < COMPRESS_REPLY_MIN_BYTES:
        return
    reply.headers["vary"] = "accept-encoding"
    coding = reply_coding(accept_encoding)
    if coding == "gzip":
        reply.body = gzip.compress(reply.body, mtime=0)
    elif coding == "zstd":
        reply.body = zstandard.ZstdCompressor().compress(reply.body)
    else:
        return
    reply.headers["content-encoding"] = coding


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
