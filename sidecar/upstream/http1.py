"""HTTP/1.1 transport on aiohttp: its C parser is the fastest receive path in Python (README,
"Dependencies, and why").

Sessions, long polls and the other unary calls get separate connectors: on HTTP/1.1 every open
session holds a connection for its whole life, and every long poll (`Read` with `wait`) for up to
its wait; sharing a pool, 100 long polls took every connection and `CheckTail` failed its deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from sidecar.errors import PoolExhausted
from sidecar.upstream.settings import UpstreamSettings
from sidecar.upstream.transport import Response, ssl_context

SESSION_SETTING = "--session-connections / S2_SIDECAR_SESSION_CONNECTIONS"


class _Body:
    """An aiohttp body; counts what was read so `buffered()` needs no private state."""

    __slots__ = ("_consumed", "_content", "_resp")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self._content = resp.content
        self._consumed = 0

    async def read(self) -> bytes:
        return await self._resp.read()

    async def readexactly(self, n: int) -> bytes:
        data = await self._content.readexactly(n)
        self._consumed += n
        return data

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._content.iter_any():
            self._consumed += len(chunk)
            yield chunk

    def buffered(self) -> int:
        return self._content.total_bytes - self._consumed


class Http1Transport:
    errors: tuple[type[BaseException], ...] = (
        aiohttp.ClientError,
        asyncio.TimeoutError,
        asyncio.IncompleteReadError,
        ConnectionError,
    )
    # ConnectionTimeoutError: no connection within --connect-timeout (a read timeout is not one).
    connect_errors: tuple[type[BaseException], ...] = (
        aiohttp.ClientConnectorError,
        aiohttp.ConnectionTimeoutError,
        ConnectionRefusedError,
    )

    def __init__(self, settings: UpstreamSettings) -> None:
        self._session_limit = settings.session_connections
        self._unary_limit = settings.unary_connections
        self._long_poll_limit = settings.long_poll_connections
        self._connect_timeout = settings.connect_timeout
        self._heartbeat_timeout = settings.heartbeat_timeout
        # True: aiohttp's default context (the system trust store).
        self._ssl: ssl.SSLContext | bool = ssl_context(settings.ca_file) if settings.ca_file else True
        self._unary: aiohttp.ClientSession | None = None
        self._long_polls: aiohttp.ClientSession | None = None
        self._sessions: aiohttp.ClientSession | None = None
        self._open_sessions = 0  # sessions holding (or about to hold) a connection of the pool

    async def start(self) -> None:
        def new(limit: int, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, keepalive_timeout=30, ssl=self._ssl),
                timeout=timeout,
                # S2 `data:` lines and protobuf batches run to ~1.4 MB: read in large chunks.
                read_bufsize=2**20,
                auto_decompress=True,
                raise_for_status=False,
            )

        unary_timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout)
        self._unary = new(self._unary_limit, unary_timeout)
        # A long poll past its bound waits here for a connection, within its total timeout.
        self._long_polls = new(self._long_poll_limit, unary_timeout)
        # No total timeout: sessions are endless. sock_read catches a silent upstream (S2 sends a
        # heartbeat at least every 15 s while caught up).
        self._sessions = new(
            self._session_limit,
            aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout, sock_read=self._heartbeat_timeout),
        )

    async def close(self) -> None:
        for s in (self._unary, self._long_polls, self._sessions):
            if s is not None:
                await s.close()

    @asynccontextmanager
    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        session: bool = False,
        long_poll: bool = False,
        total_timeout: float | None = None,
    ) -> AsyncIterator[Response]:
        pool = self._sessions if session else self._long_polls if long_poll else self._unary
        assert pool is not None, "Transport.start() was not called"
        if session:
            # A session past the bound would wait in aiohttp's queue, silent (no heartbeat) until
            # another ends: refuse it at once instead. Live followers of one stream share one
            # upstream session (reads/hub.py), so this bounds distinct upstream sessions.
            if self._open_sessions >= self._session_limit:
                raise PoolExhausted(self._session_limit, SESSION_SETTING)
            self._open_sessions += 1
        kwargs: dict[str, Any] = {}
        if total_timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=total_timeout, sock_connect=self._connect_timeout)
        try:
            async with pool.get(url, params=params, headers=headers, **kwargs) as resp:
                yield Response(
                    status=resp.status,
                    headers={k.lower(): v for k, v in resp.headers.items()},
                    content_type=resp.content_type,
                    body=_Body(resp),
                    protocol="1.1",
                )
        finally:
            if session:
                self._open_sessions -= 1

    def pool_stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        total = 0
        for name, s in (("unary", self._unary), ("long_poll", self._long_polls), ("session", self._sessions)):
            in_use, idle = connections(s.connector) if s is not None and s.connector is not None else (0, 0)
            out[f"{name}_in_use"] = in_use
            total += in_use + idle
        out["connections_h1"] = total
        return out


def connections(connector: aiohttp.BaseConnector) -> tuple[int, int]:
    """(in use, idle) connections of an aiohttp connector, for the pool gauges. aiohttp has no
    public count: this reads its `_acquired` (connections handed out) and `_conns` (idle ones, per
    host), as the aiohttp locked in requirements/ has them; tests/upstream/test_pinned_internals.py
    fails if they move. Should they be gone, this raises, and /metrics leaves the gauges out with
    a warning in the log, rather than reading 0."""
    try:
        acquired, idle = connector._acquired, connector._conns
    except AttributeError as e:
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}'s connector has no {e.name}: the upstream pool gauges cannot count "
            "connections; install the aiohttp version locked in requirements/runtime.txt"
        ) from e
    return len(acquired), sum(len(conns) for conns in idle.values())
