"""Which transport a client gets (HTTP/1.1, HTTP/2, or either by TLS ALPN): `--upstream-protocol`
and the endpoint's scheme decide.

`auto` does what S2's SDKs do on `https://`: offer `h2` and `http/1.1` by TLS ALPN and speak what
the server picks (hosted S2 picks h2). On `http://` there is nothing to negotiate: `auto` speaks
HTTP/1.1 (aiohttp, the fastest path on loopback); `http2` speaks h2c with prior knowledge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from sidecar.upstream.http1 import Http1Transport
from sidecar.upstream.http2 import AlpnRefused, Http2Transport
from sidecar.upstream.settings import UpstreamProtocol, UpstreamSettings
from sidecar.upstream.transport import Response, Transport


class AutoTransport:
    """HTTP/2 for origins whose TLS ALPN picks h2, HTTP/1.1 for the others (decided once per
    origin, on its first connection)."""

    def __init__(self, http1: Http1Transport, http2: Http2Transport) -> None:
        self._h1 = http1
        self._h2 = http2
        self.errors = tuple(dict.fromkeys(http1.errors + http2.errors))
        self.connect_errors = tuple(dict.fromkeys(http1.connect_errors + http2.connect_errors))
        self._h2_origins: dict[str, bool] = {}

    async def start(self) -> None:
        await self._h1.start()
        await self._h2.start()

    async def close(self) -> None:
        await self._h1.close()
        await self._h2.close()

    async def _speaks_h2(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme != "https":
            return False
        key = parts.netloc
        known = self._h2_origins.get(key)
        if known is None:
            try:
                await self._h2.origin(url).connect()
                known = True
            except AlpnRefused:
                known = False
            self._h2_origins[key] = known
        return known

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
        transport: Transport = self._h2 if await self._speaks_h2(url) else self._h1
        async with transport.get(
            url, headers=headers, params=params, session=session, long_poll=long_poll, total_timeout=total_timeout
        ) as resp:
            yield resp

    def pool_stats(self) -> dict[str, int]:
        out = self._h1.pool_stats()
        for k, v in self._h2.pool_stats().items():
            out[k] = out.get(k, 0) + v
        return out


def make_transport(settings: UpstreamSettings) -> Transport:
    """The transport `settings.protocol` asks for on `settings.endpoint`."""
    protocol = settings.protocol
    if protocol is UpstreamProtocol.HTTP1:
        return Http1Transport(settings)
    if protocol is UpstreamProtocol.HTTP2:
        return Http2Transport(settings)
    if urlsplit(settings.endpoint.base_url("basin")).scheme != "https":
        return Http1Transport(settings)
    return AutoTransport(Http1Transport(settings), Http2Transport(settings, alpn=("h2", "http/1.1")))
