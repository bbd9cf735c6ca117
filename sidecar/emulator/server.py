"""The emulator as a server: bind, serve, and stop promptly even with sessions open."""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType

from aiohttp import web

from sidecar.errors import S2Error

from .app import EmulatorState, build_app
from .config import EmulatorConfig
from .store import Store

log = logging.getLogger("sidecar.emulator")

# After sessions were told to end, how long stop() lets handlers finish before cancelling them.
SHUTDOWN_GRACE_SECONDS = 1.0


class Emulator:
    """An S2-compatible server on a local port (see the package docstring)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._state: EmulatorState | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        store = Store(self._config.data_dir)  # loads everything persisted into memory
        for name, basin_config in self._config.basins.items():
            if store.ensure_basin(name, dict(basin_config) if basin_config is not None else None):
                log.info("S2 emulator: created basin %s with config %s", name, json.dumps(basin_config))
        state = EmulatorState(self._config, store)
        runner = web.AppRunner(
            build_app(state),
            access_log=None,
            # A session waiting at the tail writes nothing, so a client that left would only be
            # noticed at the next heartbeat: cancel its handler when the connection drops instead.
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        )
        try:
            await runner.setup()
            site = web.TCPSite(runner, self._config.host, self._config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            store.close()
            raise
        self._port = int(runner.addresses[0][1])
        self._state, self._runner = state, runner

    async def stop(self) -> None:
        runner, state = self._runner, self._state
        if runner is None or state is None:
            return
        self._runner = self._state = None
        state.stopping.set()
        # Sessions end with server_draining (S2's signal to reconnect at once); long polls answer it.
        state.live.close(S2Error(503, "server_draining", "the emulator is stopping"), sessions_only=False)
        try:
            await runner.cleanup()
        finally:
            state.store.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def url(self) -> str:
        host = self._config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(config: EmulatorConfig) -> None:
    """Run an emulator until cancelled."""
    async with Emulator(config) as emulator:
        where = f"data in {config.data_dir}" if config.data_dir is not None else "data in memory"
        log.info("S2 emulator listening on %s (%s)", emulator.url, where)
        await asyncio.Event().wait()
