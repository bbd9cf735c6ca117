"""Test helper: a real emulator and a real sidecar on loopback sockets, and a gRPC stub.

    async with SidecarHarness() as h:
        await h.append("events", [b"a", b"b"])
        batch = await h.stub.Read(ReadRequest(stream="events", seq_num=0))

Both servers run in the calling event loop, on ephemeral ports, over real TCP; nothing is mocked.
With `upstream_url` (or S2_SIDECAR_TEST_UPSTREAM_URL) the sidecar and the appends go to an S2 server
already running there instead (s2-lite: tests/s2_lite.py), in a fresh basin of their own; the
emulator's hooks (stats, faults, restarts) then raise.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.config import Config
from sidecar.emulator import CREATE_ON_APPEND, Emulator, EmulatorConfig
from sidecar.server import Sidecar
from sidecar.types import AppendRecord, StreamPosition
from sidecar.upstream import UpstreamProtocol
from sidecar.wire import json as wjson
from sidecar.wire.protobuf import decode_append_ack, encode_append_input

TEST_BASIN = "test-basin"


class SidecarHarness:
    def __init__(
        self,
        *,
        emulator: EmulatorConfig | None = None,
        basin: str = TEST_BASIN,
        tracer_provider: Any = None,
        upstream_url: str | None = None,
        **config: Any,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.upstream_url = upstream_url or os.environ.get("S2_SIDECAR_TEST_UPSTREAM_URL") or None
        if self.upstream_url and basin == TEST_BASIN:
            # A fresh basin per harness, as a fresh emulator gives: tests reuse stream names.
            basin = f"test-{uuid.uuid4().hex[:16]}"
        self.basin = basin
        emulator = emulator or EmulatorConfig(port=0, heartbeat_min=1.0, heartbeat_max=2.0)
        # The emulator, like S2, starts with no basins: the harness's basin creates its streams on
        # first append (a read of a stream nobody wrote stays 404); basins a test configures keep theirs.
        self.emulator_config = dataclasses.replace(emulator, basins={basin: CREATE_ON_APPEND, **emulator.basins})
        self.config_overrides = config
        self.emulator = Emulator(self.emulator_config)
        self.sidecar: Sidecar | None = None
        self.channel: grpc.aio.Channel | None = None
        self.stub: stream_pb2_grpc.StreamServiceStub = None  # type: ignore[assignment]
        self.http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        """The S2 server the sidecar reads from and the appends go to (no trailing /v1)."""
        return self.upstream_url or self.emulator.url

    async def __aenter__(self) -> SidecarHarness:
        if not self.upstream_url:
            await self.emulator.start()
        # With the emulator on TLS (EmulatorConfig.tls_cert), the CA the sidecar trusts is trusted here too.
        ca_file = self.config_overrides.get("upstream_ca_file")
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_file)) if ca_file else None
        self.http = aiohttp.ClientSession(connector=connector)
        if self.upstream_url:
            await self._create_basin()
        await self.start_sidecar()
        return self

    async def _create_basin(self) -> None:
        assert self.http is not None
        body = {"basin": self.basin, "config": {"create_stream_on_append": True}}
        async with self.http.post(f"{self.url}/v1/basins", json=body) as resp:
            if resp.status not in (201, 409):  # 409: made by an earlier harness, with the same config
                raise wjson.error_from_response(resp.status, await resp.read())

    async def start_sidecar(self) -> None:
        cfg = Config(
            listen=("127.0.0.1:0",),
            basin_endpoint=self.url + "/v1",
            admin_listen=None,
            default_basin=self.basin,
            grace_period=2.0,
            # Run a suite against either upstream protocol: S2_SIDECAR_TEST_UPSTREAM_PROTOCOL=http2.
            upstream_protocol=UpstreamProtocol(os.environ.get("S2_SIDECAR_TEST_UPSTREAM_PROTOCOL", "auto")),
            # And with the history cache on (the default) or off: S2_SIDECAR_TEST_HISTORY_CACHE_BYTES=0.
            history_cache_bytes=int(os.environ.get("S2_SIDECAR_TEST_HISTORY_CACHE_BYTES", 256 * 1024 * 1024)),
        )
        self.sidecar = Sidecar(dataclasses.replace(cfg, **self.config_overrides), tracer_provider=self.tracer_provider)
        await self.sidecar.start()
        self.channel = grpc.aio.insecure_channel(self.address)
        self.stub = stream_pb2_grpc.StreamServiceStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def address(self) -> str:
        assert self.sidecar is not None
        return self.sidecar.addresses[0]

    async def __aexit__(self, *exc: object) -> None:
        if self.channel is not None:
            await self.channel.close(None)
        if self.sidecar is not None:
            await self.sidecar.stop(grace=0.5)
        if self.http is not None:
            await self.http.close()
        if not self.upstream_url:
            await self.emulator.stop()

    # -- talking to the emulator directly, as a writer app would ----------------------------

    async def append(
        self,
        stream: str,
        records: Sequence[bytes | AppendRecord],
        *,
        basin: str | None = None,
        encryption_key: str | None = None,
    ) -> tuple[StreamPosition, StreamPosition]:
        """Append (protobuf) and return the ack's (start, end). `encryption_key`: S2's
        `s2-encryption-key` (base64), which an encrypted stream needs."""
        assert self.http is not None
        recs = [r if isinstance(r, AppendRecord) else AppendRecord(body=r) for r in records]
        headers = {
            "s2-basin": basin or self.basin,
            "content-type": "application/protobuf",
            "accept": "application/protobuf",
        }
        if encryption_key is not None:
            headers["s2-encryption-key"] = encryption_key
        async with self.http.post(
            f"{self.url}/v1/streams/{quote(stream, safe='')}/records",
            data=encode_append_input(recs),
            headers=headers,
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise wjson.error_from_response(resp.status, body)
        start, end, _ = decode_append_ack(body)
        return start, end

    async def append_many(self, stream: str, n: int, *, size: int = 16, batch: int = 1000) -> None:
        """Append `n` records whose bodies are their index, zero-padded to `size` bytes."""
        for lo in range(0, n, batch):
            await self.append(stream, [str(i).zfill(size).encode() for i in range(lo, min(n, lo + batch))])

    async def create_basin(self, basin: str, *, stream_cipher: str | None = None) -> None:
        """Create a basin whose streams are created by their first append; with `stream_cipher`
        (`aegis-256`, `aes-256-gcm`) every stream created in it is encrypted."""
        assert self.http is not None
        config: dict[str, Any] = {"create_stream_on_append": True}
        if stream_cipher is not None:
            config["stream_cipher"] = stream_cipher
        async with self.http.post(f"{self.url}/v1/basins", json={"basin": basin, "config": config}) as resp:
            if resp.status != 201:
                raise wjson.error_from_response(resp.status, await resp.read())

    async def create_stream(self, stream: str, *, basin: str | None = None) -> None:
        """Create (ensure) a stream; right after its deletion, as soon as S2 lets it be created again."""
        assert self.http is not None
        url = f"{self.url}/v1/streams/{quote(stream, safe='')}"
        # A JSON body: S2 refuses aiohttp's empty application/octet-stream one (400 bad_json).
        # S2 deletes in the background (the emulator before its 202): until then a create is refused.
        await self._admin("PUT", url, basin, json={}, wait_out=("stream_deletion_pending",))

    async def delete_stream(self, stream: str, *, basin: str | None = None) -> None:
        """Delete a stream (S2 finishes the deletion in the background; see `create_stream`)."""
        assert self.http is not None
        await self._admin("DELETE", f"{self.url}/v1/streams/{quote(stream, safe='')}", basin)

    async def _admin(
        self, method: str, url: str, basin: str | None, *, json: Any = None, wait_out: tuple[str, ...] = ()
    ) -> None:
        """One control-plane call, repeated while S2 says to try again: its retryable errors
        (s2-lite answers a delete racing its own background work with 409 transaction_conflict,
        "usually retriable") and the codes in `wait_out`."""
        import asyncio

        assert self.http is not None
        for _ in range(200):
            async with self.http.request(method, url, json=json, headers={"s2-basin": basin or self.basin}) as resp:
                if resp.status < 300:
                    return
                error = wjson.error_from_response(resp.status, await resp.read())
            if not (error.retryable or error.code in wait_out):
                raise error
            await asyncio.sleep(0.05)
        raise error

    async def restart_emulator(self, down_for: float = 0.0) -> None:
        """Stop the emulator, stay down for `down_for` seconds (connections are refused), and start
        it again on the same port. Streams survive only with a `data_dir`."""
        import asyncio

        self._emulator_only("restart_emulator")
        port = self.emulator.port
        await self.emulator.stop()
        await asyncio.sleep(down_for)
        self.emulator = Emulator(dataclasses.replace(self.emulator_config, port=port))
        await self.emulator.start()

    def _emulator_only(self, hook: str) -> None:
        if self.upstream_url:
            raise RuntimeError(
                f"{hook} needs the embedded emulator, not {self.upstream_url}: mark the test emulator_only"
            )

    async def emulator_stats(self) -> dict[str, Any]:
        self._emulator_only("emulator_stats")
        assert self.http is not None
        async with self.http.get(f"{self.emulator.url}/_emulator/stats") as resp:
            result: dict[str, Any] = await resp.json()
            return result

    async def inject_fault(self, **fault: Any) -> None:
        """See the emulator's `/_emulator/faults` hook."""
        self._emulator_only("inject_fault")
        assert self.http is not None
        async with self.http.post(f"{self.emulator.url}/_emulator/faults", json=fault) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"fault injection refused: {await resp.text()}")


def free_port() -> int:
    """A TCP port that was free a moment ago (for child processes that need one up front)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SidecarProcess:
    """`s2-sidecar` as a child process, as users run it (embedded emulator unless env says otherwise).

    Waits for the startup banner; `output` collects everything the process printed. `grpc_port`
    fixes the port, so a test can start a sidecar again where apps expect it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, grpc_port: int | None = None) -> None:
        import os

        self.grpc_port = grpc_port or free_port()
        self.emulator_port = free_port()
        self.args = [
            "--listen", f"127.0.0.1:{self.grpc_port}",
            "--emulator-listen", f"127.0.0.1:{self.emulator_port}",
            "--admin-listen", "off",
            *args,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.output = ""
        self.proc: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    async def __aenter__(self) -> SidecarProcess:
        import asyncio
        import sys

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar", *self.args,
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._collect())
        for _ in range(200):
            if "serving gRPC on" in self.output or self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        if "serving gRPC on" not in self.output:
            await self.kill()
            raise RuntimeError(f"s2-sidecar did not start:\n{self.output}")
        return self

    async def _collect(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.output += line.decode(errors="replace")

    def terminate(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, within: float = 30) -> int:
        """The exit code, waiting at most `within` seconds."""
        import asyncio

        code: int = await asyncio.wait_for(self.proc.wait(), within)
        await self._reader
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._reader

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()
