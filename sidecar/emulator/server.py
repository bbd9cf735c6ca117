"""The emulator as a server: bind one port for HTTP/1.1 and HTTP/2 (optionally TLS), serve, and stop
promptly even with sessions open."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from types import TracebackType

from aiohttp import web

from sidecar.errors import S2Error

from .app import handle
from .exchange import Exchange
from .front import Connections, Sniffer, tls_context
from .h2server import H2ServerProtocol
from .http1 import build_http1_app
from .settings import EmulatorConfig
from .state import EmulatorState
from .store import Store

log = logging.getLogger("sidecar.emulator")

# After sessions were told to end, how long stop() lets handlers finish before cancelling them.
SHUTDOWN_GRACE_SECONDS = 1.0
# On SIGTERM or SIGINT, how long open reads may go on, as s2-lite's `shutdown_signal`
# (lite/src/server.rs: axum_server's graceful_shutdown with 10 s).
SIGNAL_GRACE_SECONDS = 10.0


class Emulator:
    """An S2-compatible server on a local port (see the package docstring)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._state: EmulatorState | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._connections = Connections()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        # Loads everything persisted into memory (and ends the deletions that were pending).
        store = Store(self._config.data_dir, deletion_delay=self._config.deletion_delay)
        for name, basin_config in self._config.basins.items():
            if store.ensure_basin(name, dict(basin_config) if basin_config is not None else None):
                log.info("S2 emulator: created basin %s with config %s", name, json.dumps(basin_config))
        state = EmulatorState(self._config, store)
        config = self._config
        if (config.tls_cert is None) != (config.tls_key is None):
            raise ValueError("give both a TLS certificate and its key, or neither")

        async def serve_one(exchange: Exchange) -> None:
            await handle(exchange, state)

        runner = web.AppRunner(
            build_http1_app(serve_one),
            access_log=None,
            # A session waiting at the tail writes nothing, so a client that left would only be
            # noticed at the next heartbeat: cancel its handler when the connection drops instead.
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
        try:
            await runner.setup()
            http1 = runner.server
            assert http1 is not None
            context = tls_context(config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
            server = await asyncio.get_running_loop().create_server(
                lambda: Sniffer(
                    http1,
                    lambda: H2ServerProtocol(serve_one, state.http2, config.h2_max_concurrent_streams),
                    self._connections,
                ),
                config.host,
                config.port,
                ssl=context,
            )
        except BaseException:
            await runner.cleanup()
            store.close()
            raise
        self._port = int(server.sockets[0].getsockname()[1])
        self._state, self._runner, self._server = state, runner, server

    async def stop(self) -> None:
        runner, state, server = self._runner, self._state, self._server
        if runner is None or state is None or server is None:
            return
        self._runner = self._state = self._server = None
        server.close()  # no new connections
        state.stopping.set()
        # Sessions end with server_draining (S2's signal to reconnect at once); long polls answer it.
        state.live.close(S2Error(503, "server_draining", "the emulator is stopping"), sessions_only=False)
        try:
            await self._close_http2(state)
            await runner.cleanup()
        finally:
            state.store.close()

    async def drain(self, grace: float) -> None:
        """Stop taking connections and let open reads go on for up to `grace` seconds; then hang up
        on every connection still open, as s2-lite does at shutdown (axum_server's graceful
        shutdown: sessions run on, and are cut with no final message when the grace runs out).
        `stop()` follows."""
        state, server = self._state, self._server
        if state is None or server is None:
            return
        server.close()  # new connections are refused
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while state.live.count and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a poll for at most the grace period, at shutdown only
        if state.live.count:
            log.info("S2 emulator: %d reads still open after %.3g s: hanging up", state.live.count, grace)
            self._connections.abort()
            await asyncio.sleep(0)  # let the transports run connection_lost (cancels their handlers)

    @staticmethod
    async def _close_http2(state: EmulatorState) -> None:
        """GOAWAY on every HTTP/2 connection; hang up on those whose streams outlive the grace."""
        connections = [c for c in state.http2 if isinstance(c, H2ServerProtocol)]
        for c in connections:
            c.goaway(0, None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_SECONDS
        while any(c.open_streams for c in connections) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # a poll for at most the grace period, at shutdown only
        for c in connections:
            c.close()
        await asyncio.sleep(0)  # let the transports run connection_lost (cancels what remains)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def url(self) -> str:
        host = self._config.host
        scheme = "https" if self._config.tls_cert is not None else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(config: EmulatorConfig, grace: float = SIGNAL_GRACE_SECONDS) -> None:
    """Run an emulator until SIGTERM or SIGINT, then drain for up to `grace` seconds (or until cancelled)."""
    loop = asyncio.get_running_loop()
    async with Emulator(config) as emulator:
        where = f"data in {config.data_dir}" if config.data_dir is not None else "data in memory"
        log.info("S2 emulator listening on %s (%s)", emulator.url, where)
        signalled: asyncio.Future[signal.Signals] = loop.create_future()

        def on_signal(sig: signal.Signals) -> None:
            if not signalled.done():
                signalled.set_result(sig)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            received = await signalled
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("S2 emulator: received %s, open reads may go on for %.3g s", received.name, grace)
        await emulator.drain(grace)
