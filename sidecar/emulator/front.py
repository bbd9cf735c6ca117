"""The listener: one port for HTTP/1.1 (aiohttp) and HTTP/2 (`h2server`).

Under TLS the protocol is what ALPN chose (`h2` or `http/1.1`). Otherwise (h2c, or TLS without
ALPN) the first bytes decide: HTTP/2 with prior knowledge opens with the 24-byte connection
preface, which no HTTP/1.1 request line can start with. A connection whose first byte already
differs from the preface goes to aiohttp at once, so HTTP/1.1 pays one comparison.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import cast

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context offering `h2` and `http/1.1` by ALPN (h2 preferred, as S2 does)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


class Connections:
    """Every connection's transport, whatever protocol it went to, so that a drain can end those
    still open when its grace runs out. Closed ones are dropped as the set grows, not tracked one by
    one: once handed over, the listener no longer sees a connection close."""

    def __init__(self) -> None:
        self._open: set[asyncio.Transport] = set()
        self._pruned_at = 64

    def add(self, transport: asyncio.Transport) -> None:
        self._open.add(transport)
        if len(self._open) >= self._pruned_at:
            self._open = {t for t in self._open if not t.is_closing()}
            self._pruned_at = max(64, 2 * len(self._open))

    def abort(self) -> int:
        """Hang up on every connection still open (an abrupt TCP close); returns how many."""
        open_ = [t for t in self._open if not t.is_closing()]
        for t in open_:
            t.abort()
        self._open.clear()
        return len(open_)


class Sniffer(asyncio.Protocol):
    """Picks a connection's protocol, then hands the transport (and what it read) over to it."""

    def __init__(
        self,
        http1: Callable[[], asyncio.Protocol],
        http2: Callable[[], asyncio.Protocol],
        connections: Connections | None = None,
    ) -> None:
        self._http1 = http1
        self._http2 = http2
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = transport = cast(asyncio.Transport, transport)
        if self._connections is not None:
            self._connections.add(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn == "h2":
            self._hand_over(self._http2())
        elif alpn == "http/1.1":
            self._hand_over(self._http1())

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        n = min(len(buffer), len(PREFACE))
        if buffer[:n] != PREFACE[:n]:
            self._hand_over(self._http1(), buffer)
        elif n == len(PREFACE):
            self._hand_over(self._http2(), buffer)
        else:
            self._buffer = buffer  # a prefix of the preface: wait for the rest

    def eof_received(self) -> bool | None:
        return None  # closed before saying anything: close our side too

    def _hand_over(self, protocol: asyncio.Protocol, data: bytes = b"") -> None:
        assert self._transport is not None
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)
        if data:
            protocol.data_received(data)
