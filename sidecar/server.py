"""Assembly: the upstream client, the read logic and the gRPC server, plus the embedded emulator
when no S2 endpoint is configured, and a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from sidecar._proto.s2sidecar.v1 import stream_pb2 as api_pb
from sidecar.admin import AdminServer, UpstreamProbe
from sidecar.api import SERVICE_NAME, StreamService, reflection
from sidecar.api.auth import AppTokenInterceptor
from sidecar.api.instrument import Instrumentation
from sidecar.api.registration import generic_only
from sidecar.config import Config
from sidecar.encryption import KeyFiles
from sidecar.listeners import (
    ListenError,
    TcpAddress,
    UnixAddress,
    bind_error,
    ensure_available,
    parse_host_port,
    parse_listen,
    remove_stale_socket,
)
from sidecar.metrics import Metrics
from sidecar.reads import StreamReader
from sidecar.reads.history import HistoryCache
from sidecar.reads.tails import TailCache
from sidecar.telemetry import Telemetry, setup_tracing
from sidecar.upstream import BasinEndpoint, RetryPolicy, UpstreamClient

if TYPE_CHECKING:  # imported when the emulator starts: production never loads it
    from sidecar.emulator import Emulator

log = logging.getLogger(__name__)

EMULATOR_DEFAULT_BASIN = "local-basin"

# Keep idle sessions alive through NATs and proxies, and let clients ping as often as every 10 s
# without being sent GOAWAY(too_many_pings).
GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    # gRPC's default SO_REUSEPORT let a second sidecar bind the same port and take half the calls.
    ("grpc.so_reuseport", 0),
]


def pending_calls(limit: int) -> list[tuple[str, int]]:
    """gRPC core holds calls that arrived before the server's loop takes them up, and cancels new
    ones past `grpc.server.max_pending_requests` (default 1,000), at random up to the hard limit
    (default 3,000) and all of them past it: 2,000 ReadSessions opened at once lost ~9% as
    CANCELLED, which apps rightly do not retry. One limit for both: none below it is refused.
    gRPC also cancels a call not taken up within `grpc.server_max_unrequested_time_in_server`
    (30 s): 5,000 sessions opened at once on 2 busy cores waited that long. A call's own deadline
    bounds its wait instead."""
    return [
        ("grpc.server.max_pending_requests", limit),
        ("grpc.server.max_pending_requests_hard_limit", limit),
        ("grpc.server_max_unrequested_time_in_server", 3600),
    ]


LISTEN_SETTING = "--listen / S2_SIDECAR_LISTEN"
ADMIN_SETTING = "--admin-listen / S2_SIDECAR_ADMIN_LISTEN"
EMULATOR_SETTING = "--emulator-listen / S2_SIDECAR_EMULATOR_LISTEN"


def _in_use(client: UpstreamClient, pool: str) -> float:
    return client.pool_stats()[f"{pool}_in_use"]


class Sidecar:
    """One running sidecar. `start()`, then `stop()`; tests use it in-process, `run()` as a daemon."""

    def __init__(self, config: Config, *, tracer_provider: TracerProvider | None = None) -> None:
        """`tracer_provider`: tests pass one with an in-memory exporter; by default it is built
        from the standard OTEL_* variables (none at all when no exporter is configured)."""
        self.config = config
        self._own_provider = tracer_provider is None
        self.tracer_provider = tracer_provider if tracer_provider is not None else setup_tracing(os.environ)
        self.telemetry = Telemetry.from_provider(self.tracer_provider)
        self.metrics = Metrics()
        self._upstream_watch: asyncio.Task[None] | None = None
        self.default_basin = config.default_basin or (EMULATOR_DEFAULT_BASIN if config.uses_emulator else None)
        self.emulator: Emulator | None = None
        self.emulator_url: str | None = None
        self.client: UpstreamClient | None = None
        self.service: StreamService | None = None
        self.reader: StreamReader | None = None
        self.health = health_aio.HealthServicer()
        self.addresses: list[str] = []
        self._server: grpc.aio.Server | None = None
        self.admin: AdminServer | None = None
        self.serving = False

    async def start(self) -> None:
        """Start everything, or nothing: a listener that is taken raises ListenError before anything
        starts, and a failure half-way stops what did start."""
        self._ensure_listeners_available()
        try:
            await self._start()
        except BaseException:
            await self.stop(grace=0)
            raise

    def _ensure_listeners_available(self) -> None:
        cfg = self.config
        checks: list[tuple[TcpAddress | UnixAddress, str]] = [(parse_listen(a), LISTEN_SETTING) for a in cfg.listen]
        if cfg.admin_listen:
            checks.append((parse_host_port(cfg.admin_listen), ADMIN_SETTING))
        if cfg.uses_emulator:
            checks.append((parse_host_port(cfg.emulator_listen), EMULATOR_SETTING))
        for addr, setting in checks:
            ensure_available(addr, setting)

    async def _start(self) -> None:
        """The startup sequence, in order; `stop()` undoes it."""
        endpoint = await self._start_emulator() if self.config.uses_emulator else self._configured_endpoint()
        await self._start_upstream(endpoint)
        self._build_service()
        server = self._build_server()
        sockets = self._add_listeners(server)
        await server.start()
        self._server = server
        self._set_socket_modes(sockets)
        await self._set_serving()
        probe = UpstreamProbe(endpoint.base_url("probe"), on_result=self.metrics.upstream_reachability.probe)
        await self._start_admin(probe)
        self._upstream_watch = asyncio.ensure_future(self._watch_upstream(probe))

    async def _start_emulator(self) -> BasinEndpoint:
        """Development mode: the embedded emulator, and its URL as the basin endpoint."""
        from sidecar.emulator import CREATE_ON_APPEND, Emulator, EmulatorConfig  # only dev mode pays for it

        emu_addr = parse_host_port(self.config.emulator_listen)
        data_dir = Path(self.config.emulator_data_dir) if self.config.emulator_data_dir else None
        # Like S2, the emulator has no basins of its own: create the default basin, with streams
        # created by their first append, so that appending to a new stream just works; reading a
        # stream nobody wrote stays NOT_FOUND, as apps and the client examples expect.
        basin = self.default_basin or EMULATOR_DEFAULT_BASIN
        basins = {basin: CREATE_ON_APPEND}
        emulator = Emulator(EmulatorConfig(host=emu_addr.host, port=emu_addr.port, data_dir=data_dir, basins=basins))
        try:
            await emulator.start()
        except OSError as e:
            raise bind_error(emu_addr, EMULATOR_SETTING, e) from None
        log.info("embedded emulator: basin %s is ready (create_stream_on_append on)", basin)
        self.emulator, self.emulator_url = emulator, emulator.url
        return BasinEndpoint.parse(emulator.url + "/v1")

    def _configured_endpoint(self) -> BasinEndpoint:
        assert self.config.basin_endpoint is not None  # Config.uses_emulator is False
        endpoint = BasinEndpoint.parse(self.config.basin_endpoint)
        if endpoint.template.lower().startswith("https:") and not self.config.access_token:
            # S2's hosted service answers every call 401 without a token; an http:// endpoint is
            # the emulator or s2-lite, which take none. Said once here, not on each call's 401.
            log.warning(
                "S2_BASIN_ENDPOINT is %s and S2_ACCESS_TOKEN is not set: S2's hosted service refuses "
                "calls without an access token; set S2_ACCESS_TOKEN (ignore this if the endpoint needs none)",
                self.config.basin_endpoint,
            )
        return endpoint

    async def _start_upstream(self, endpoint: BasinEndpoint) -> None:
        """The upstream client, and the gauges of its connection pools."""
        cfg = self.config
        client = self.client = UpstreamClient(
            cfg.upstream_settings(endpoint), telemetry=self.telemetry, metrics=self.metrics
        )
        await client.start()
        pools = (
            ("session", cfg.session_connections),
            ("unary", cfg.unary_connections),
            ("long_poll", cfg.long_poll_connections),
        )
        for pool, limit in pools:
            self.metrics.upstream_connections_in_use.labels(pool).set_function(functools.partial(_in_use, client, pool))
            self.metrics.upstream_connections_limit.labels(pool).set(limit)

    def _build_service(self) -> None:
        """The read logic over the upstream client, and the gRPC service over the read logic."""
        cfg = self.config
        assert self.client is not None
        self.reader = StreamReader(
            self.client,
            RetryPolicy(max_attempts=cfg.retry_attempts, base_delay=cfg.retry_base_delay),
            tails=TailCache(cfg.tail_cache_size),
            share_sessions=cfg.share_sessions,
            subscriber_queue=cfg.subscriber_queue,
            silence_bound=cfg.heartbeat_timeout,
            tracer=self.telemetry.tracer,
            history=HistoryCache(cfg.history_cache_bytes, max_age=cfg.history_cache_max_age),
        )
        keys = KeyFiles.load(cfg.encryption_keys_dir) if cfg.encryption_keys_dir else None
        if keys is not None:
            log.info(
                "encryption keys: %d basins, %d streams, from %s",
                len(keys.basins), len(keys.streams), cfg.encryption_keys_dir,
            )  # fmt: skip
        self.service = StreamService(
            self.reader,
            default_basin=self.default_basin,
            tail_max_staleness=cfg.tail_max_staleness,
            instrumentation=Instrumentation(self.telemetry, self.metrics, access_log=cfg.access_log),
            keys=keys,
        )

    def _build_server(self) -> grpc.aio.Server:
        """The gRPC server with the service, health and reflection; not yet listening."""
        cfg = self.config
        assert self.service is not None
        interceptors = [AppTokenInterceptor(cfg.app_token)] if cfg.app_token else None
        server = grpc.aio.server(
            options=[*GRPC_OPTIONS, *pending_calls(cfg.max_pending_calls)], interceptors=interceptors
        )
        server.add_generic_rpc_handlers([self.service.handler()])
        # As a generic handler only: pre-registered methods cost every call (api/registration.py).
        health_pb2_grpc.add_HealthServicer_to_server(self.health, generic_only(server))
        reflection.enable(
            server,
            [
                api_pb.DESCRIPTOR.services_by_name["StreamService"].full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            ],
        )
        # grpcurl resolves the rich error details by name through reflection.
        from google.rpc import error_details_pb2  # noqa: F401

        return server

    def _add_listeners(self, server: grpc.aio.Server) -> list[str]:
        """Binds every --listen address, recording it in `addresses`; returns the unix socket paths."""
        sockets: list[str] = []
        for raw in self.config.listen:
            addr = parse_listen(raw)
            if isinstance(addr, UnixAddress):
                remove_stale_socket(addr.path)  # checked in start(): nobody serves it
            try:
                port = server.add_insecure_port(str(addr))
            except RuntimeError:  # grpc says only "Failed to bind"; two settings naming one address, say
                raise ListenError(f"cannot listen on {addr} ({LISTEN_SETTING}): address already in use") from None
            if isinstance(addr, UnixAddress):
                sockets.append(addr.path)
                self.addresses.append(str(addr))
            else:
                self.addresses.append(str(TcpAddress(addr.host, port)))
        return sockets

    def _set_socket_modes(self, sockets: list[str]) -> None:
        # gRPC creates the socket files as the umask allows (often 0755: anyone may connect).
        for path in sockets:
            os.chmod(path, self.config.unix_socket_mode)

    async def _set_serving(self) -> None:
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self.serving = True

    async def _start_admin(self, probe: UpstreamProbe) -> None:
        """/healthz, /readyz and /metrics, unless --admin-listen is off."""
        cfg = self.config
        if not cfg.admin_listen:
            return
        self.admin = AdminServer(
            cfg.admin_listen,
            serving=lambda: self.serving,
            probe=probe,
            metrics=self.metrics,
            requires_upstream=cfg.ready_requires_upstream,
        )
        try:
            await self.admin.start()
        except OSError as e:
            raise bind_error(cfg.admin_listen, ADMIN_SETTING, e) from None

    async def _watch_upstream(self, probe: UpstreamProbe, every: float = 2.0) -> None:
        """gRPC health says NOT_SERVING while the upstream has been unreachable for longer than
        `--unhealthy-after`, and SERVING again as soon as it answers. The first probe runs at
        start, so `s2_sidecar_upstream_up` is known at once."""
        down_since: float | None = None
        serving = True
        first = True
        while True:
            if not first:
                await asyncio.sleep(every)
            first = False
            now = asyncio.get_running_loop().time()
            if await probe.reachable():
                down_since = None
            elif down_since is None:
                down_since = now
            healthy = down_since is None or now - down_since < self.config.unhealthy_after
            if healthy != serving and self.serving:
                serving = healthy
                status = (
                    health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
                )
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)  # words, not the enum's number
                if healthy:
                    log.warning("upstream %s:%s reachable again: gRPC health %s", probe.host, probe.port, name)
                else:
                    log.warning(
                        "upstream %s:%s unreachable for %.0f s (--unhealthy-after): gRPC health %s",
                        probe.host, probe.port, now - (down_since or now), name,
                    )  # fmt: skip
                await self.health.set("", status)
                await self.health.set(SERVICE_NAME, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: health NOT_SERVING, refuse new calls, let unary calls finish, end sessions with
        UNAVAILABLE and their resume point, then close upstream and the emulator. Each step undoes
        one of `_start()`'s and is safe when that one never ran. The admin server stops after the
        drain, so that /readyz answers 503 and /metrics is scraped while it lasts."""
        grace = self.config.grace_period if grace is None else grace
        await self._stop_serving()
        await self._stop_server(grace)
        await self._stop_upstream()
        if self.admin is not None:
            await self.admin.stop()
        if self.emulator is not None:
            await self.emulator.stop()
        self._remove_sockets()
        if self.tracer_provider is not None and self._own_provider:
            await asyncio.to_thread(self.tracer_provider.shutdown)  # flushes spans; blocks on export

    async def _stop_serving(self) -> None:
        self.serving = False
        if self._upstream_watch is not None:
            self._upstream_watch.cancel()
        await self.health.enter_graceful_shutdown()

    async def _stop_server(self, grace: float) -> None:
        if self.service is not None:
            self.service.drain()
        if self._server is not None:
            await self._server.stop(grace)

    async def _stop_upstream(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        if self.client is not None:
            await self.client.close()

    def _remove_sockets(self) -> None:
        for addr in self.addresses:
            if isinstance(listen := parse_listen(addr), UnixAddress):
                remove_stale_socket(listen.path)

    async def wait_for_termination(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()


def _grpcurl() -> str:
    """How to run grpcurl from the user's shell: by name when it is on PATH, else the one
    `scripts/run` installed next to this Python (.venv/bin is rarely on PATH)."""
    if shutil.which("grpcurl"):
        return "grpcurl"
    beside = Path(sys.executable).parent / "grpcurl"
    return str(beside) if beside.exists() else "grpcurl"


def _emulator_data_line(data_dir: str | None) -> str:
    if data_dir:
        return f"emulator data: {Path(data_dir).resolve()} (kept across restarts)"
    return "emulator data: in memory, gone when the sidecar stops (--emulator-data-dir DIR keeps it)"


def banner(sidecar: Sidecar) -> str:
    addr = sidecar.addresses[0]
    target = f"-unix {addr[5:]}" if addr.startswith("unix:") else addr
    lines = [f"s2-sidecar serving gRPC on {', '.join(sidecar.addresses)}"]
    if sidecar.admin is not None:
        lines.append(f"admin: {sidecar.admin.url}/healthz, /readyz, /metrics")
    if sidecar.emulator_url:
        lines += [
            f"upstream: embedded S2 emulator at {sidecar.emulator_url} (set S2_BASIN_ENDPOINT to read real S2)",
            f"default basin: {sidecar.default_basin}",
            _emulator_data_line(sidecar.config.emulator_data_dir),
            "try:",
            f"  curl -s -X POST {sidecar.emulator_url}/v1/streams/demo/records -H 's2-basin: {sidecar.default_basin}'"
            ' -H \'content-type: application/json\' -d \'{"records":[{"body":"hello"}]}\'',
            f'  {_grpcurl()} -plaintext -d \'{{"stream":"demo","seq_num":0}}\' {target} '
            "s2sidecar.v1.StreamService/Read",
        ]
    else:
        lines.append(f"upstream: {sidecar.config.basin_endpoint}")
    return "\n".join(lines)


async def run(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then drain within the grace period."""
    sidecar = Sidecar(config)
    await sidecar.start()
    print(banner(sidecar), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining for up to %.1fs", config.grace_period)
    await sidecar.stop()
    log.info("stopped")
