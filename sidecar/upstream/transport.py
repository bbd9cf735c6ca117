"""The small interface between S2's read logic (`client.py`) and an HTTP implementation.

Like httpcore: "send this GET with these headers; give me the status, the headers and a body to
read". `http1.py` implements it with aiohttp, `http2.py` with `h2` over multiplexed connections.
Everything S2-specific (URLs, s2s/SSE/protobuf decoding, spans, metrics) stays above it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


class Body(Protocol):
    """A response body being received."""

    async def read(self) -> bytes:
        """Everything up to the end of the body."""

    async def readexactly(self, n: int) -> bytes:
        """Exactly `n` bytes; `asyncio.IncompleteReadError` if the body ends first."""

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Chunks as they arrive, until the end of the body."""

    def buffered(self) -> int:
        """Bytes received and not yet read (readable without waiting)."""


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    content_type: str  # media type only, lower-case, no parameters
    body: Body
    protocol: str  # "1.1" or "2", as OpenTelemetry's network.protocol.version


class Transport(Protocol):
    """Sends GETs. Failures to reach the server or to receive a body raise one of `errors`
    (all retryable); connection failures also match `connect_errors`."""

    errors: tuple[type[BaseException], ...]
    connect_errors: tuple[type[BaseException], ...]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        session: bool = False,
        long_poll: bool = False,
        total_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[Response]:
        """One GET. `session`: a long-lived body (its own pool on HTTP/1.1; reads time out after
        the heartbeat timeout of silence). `long_poll`: a read that may wait for records (its own
        pool on HTTP/1.1, so it never delays a call that does not wait). `total_timeout` bounds
        the whole exchange, waiting for a connection included."""

    def pool_stats(self) -> dict[str, int]:
        """Gauges: `<pool>_in_use` for pools "unary", "long_poll" and "session", and `connections_h1` /
        `connections_h2` / `streams_h2` / `max_streams_per_connection_h2`."""


def media_type(value: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json` (what aiohttp's content_type gives)."""
    if not value:
        return "application/octet-stream"
    return value.split(";", 1)[0].strip().lower()


def ssl_context(ca_file: str | None, alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """The system trust store (OpenSSL honours SSL_CERT_FILE / SSL_CERT_DIR), plus `ca_file`."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx
