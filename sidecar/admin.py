"""The admin HTTP listener: `/healthz` (alive), `/readyz` (serving: started and not draining; with
`requires_upstream`, also the upstream reachable) and, when given a `Metrics`, `/metrics`
(Prometheus text format 0.0.4).

Readiness does not follow the upstream by default: the sidecar serves what it can during an S2
outage (cached tails, sessions that resume on their own, errors that tell apps to retry), and a
readiness that followed S2 would mark every pod of every app NotReady at once, taking them out of
their Services for an outage they can do nothing about. `--ready-requires-upstream` opts in.

The TCP probe here also feeds `s2_sidecar_upstream_up`, whose policy (real traffic first, the probe
when the upstream has been idle) is `reachability.py`.

Kubernetes probes connect to the pod IP and cannot reach a loopback-only gRPC API, so health
lives on its own listener (the chart binds it to 0.0.0.0 while the API stays on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from sidecar.listeners import parse_host_port
from sidecar.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sidecar.metrics import Metrics

log = logging.getLogger(__name__)


class UpstreamProbe:
    """Is the upstream reachable? A TCP connect to its host, remembered for `ttl` seconds."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        ttl: float = 1.0,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_result` hears every fresh result (not the remembered ones)."""
        parts = urlsplit(base_url.replace("{basin}", "probe"))
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._timeout, self._ttl = timeout, ttl
        self._on_result = on_result
        self._checked_at = -1e9
        self._ok = False
        self._lock = asyncio.Lock()

    async def reachable(self) -> bool:
        async with self._lock:
            if time.monotonic() - self._checked_at < self._ttl:
                return self._ok
            try:
                async with asyncio.timeout(self._timeout):
                    _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                await writer.wait_closed()
                self._ok = True
            except (OSError, TimeoutError):
                self._ok = False
            self._checked_at = time.monotonic()
            if self._on_result is not None:
                self._on_result(self._ok)
            return self._ok


class AdminServer:
    def __init__(
        self,
        listen: str,
        *,
        serving: Callable[[], bool],
        probe: UpstreamProbe,
        metrics: Metrics | None = None,
        requires_upstream: bool = False,
    ) -> None:
        """`requires_upstream`: /readyz also fails while the upstream refuses TCP connections."""
        addr = parse_host_port(listen)
        self.host, self.port = addr.host, addr.port
        self._serving, self._probe, self._metrics = serving, probe, metrics
        self._requires_upstream = requires_upstream
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if metrics is not None:
            app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if not self._serving():
            return web.Response(status=503, text="not ready: draining\n")
        if self._requires_upstream and not await self._probe.reachable():
            where = f"{self._probe.host}:{self._probe.port}"
            return web.Response(
                status=503, text=f"not ready: upstream {where} unreachable (--ready-requires-upstream)\n"
            )
        return web.Response(text="ready\n")

    async def _metrics_page(self, _: web.Request) -> web.Response:
        assert self._metrics is not None
        body = self._metrics.render().encode()
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self._runner.cleanup()
