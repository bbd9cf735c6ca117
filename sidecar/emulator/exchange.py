"""One request and its answer, whatever protocol carried it.

The operations (`app`, `sessions`, `output`) talk to an `Exchange`; only the fronts know HTTP/1.1
(`http1`, aiohttp) or HTTP/2 (`h2server`). An exchange answers once: either a whole reply, or
`start` then `write`s then `end`. Faults end it abruptly with `cut` (HTTP/1.1: abort the TCP
connection; HTTP/2: RST_STREAM, the other streams on the connection go on).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Protocol

from sidecar.errors import S2Error

# S2 buffers a whole request body up to axum's default limit, 2 MiB (a 1 MiB metered batch as
# base64 JSON fits; with many escapes in raw text it may not, and S2 refuses it too).
MAX_REQUEST_BYTES = 2 * 1024 * 1024

# HTTP/2 error codes by name (RFC 9113 section 7), for hooks and faults.
H2_ERROR_CODES = {
    "NO_ERROR": 0x0,
    "PROTOCOL_ERROR": 0x1,
    "INTERNAL_ERROR": 0x2,
    "FLOW_CONTROL_ERROR": 0x3,
    "SETTINGS_TIMEOUT": 0x4,
    "STREAM_CLOSED": 0x5,
    "FRAME_SIZE_ERROR": 0x6,
    "REFUSED_STREAM": 0x7,
    "CANCEL": 0x8,
    "COMPRESSION_ERROR": 0x9,
    "CONNECT_ERROR": 0xA,
    "ENHANCE_YOUR_CALM": 0xB,
    "INADEQUATE_SECURITY": 0xC,
    "HTTP_1_1_REQUIRED": 0xD,
}


def h2_error_code(value: object, default: int) -> int:
    """An HTTP/2 error code from a name (`"CANCEL"`) or a number; `ValueError` when neither."""
    if value is None:
        return default
    if isinstance(value, str):
        if value.upper() in H2_ERROR_CODES:
            return H2_ERROR_CODES[value.upper()]
        if value.isdigit():
            value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    raise ValueError(f"unknown HTTP/2 error code {value!r}: a number or one of {', '.join(H2_ERROR_CODES)}")


def media_type(headers: Mapping[str, str]) -> str:
    """The request's media type (`Content-Type` without parameters), lower case."""
    return headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


class Exchange(abc.ABC):
    """A request (method, raw path, case-insensitive headers, query, body) and the means to answer it."""

    method: str
    raw_path: str  # percent-encoded, without the query
    headers: Mapping[str, str]  # case-insensitive (a multidict.CIMultiDict), Host filled in on HTTP/2
    query: Mapping[str, str]
    protocol: str  # "HTTP/1.1" or "HTTP/2", for logs and tests

    @abc.abstractmethod
    async def body(self, limit: int = MAX_REQUEST_BYTES) -> bytes:
        """The whole request body; `BodyTooLarge` when it exceeds `limit`."""

    @abc.abstractmethod
    async def chunk(self) -> bytes:
        """The next piece of a streamed request body (append sessions); b"" at its end."""

    @abc.abstractmethod
    async def reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Answer whole."""

    @abc.abstractmethod
    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        """Send the status and headers of a streamed answer."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send part of a streamed answer; waits while the client is not reading (flow control).
        Raises ConnectionError when the client went away."""

    @abc.abstractmethod
    async def end(self) -> None:
        """End a streamed answer cleanly."""

    @abc.abstractmethod
    async def cut(self, error_code: int | None = None) -> None:
        """End abruptly, after what was written reached the socket. HTTP/1.1: abort the TCP
        connection. HTTP/2: RST_STREAM with `error_code` (default INTERNAL_ERROR)."""


class BodyTooLarge(S2Error):
    """A request body over the limit: S2 answers `400` with the code of the body's kind, `bad_json`
    or `bad_proto` (its extractors' rejection, s2-lite 0.43.4), which the operation knows."""


def too_large() -> BodyTooLarge:
    # S2's message, axum's: the limit is not named.
    return BodyTooLarge(400, "bad_json", "Failed to buffer the request body: length limit exceeded")


class Http2Connection(Protocol):
    """What the hooks may do to an open HTTP/2 connection."""

    def goaway(self, error_code: int, last_stream_id: int | None) -> None: ...
    def describe(self) -> dict[str, Any]: ...
