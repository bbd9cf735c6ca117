"""Fixtures for the client tests: one real `s2-sidecar` process (embedded emulator) for the
whole session, listening on TCP and on a unix socket, and helpers to write test data.

Every client test uses the same data shape (`fill`): records "record-0" .. "record-19" with
timestamps BASE_TS + i * 1000, so tail = (20, BASE_TS + 19000).

The Python client is imported from `clients/python/src` (put on sys.path here), not installed."""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.testing import SidecarProcess

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
sys.path.insert(0, str(CLIENT / "src"))

BASIN = "local-basin"
BASE_TS = 1_700_000_000_000  # in the past: the emulator caps client timestamps at arrival time
N_RECORDS = 20

# Encrypted streams (docs/encryption.md): a basin whose streams are encrypted, the key its
# records are written with (standard base64 of 32 bytes, as S2 takes it) and another one.
SEALED_BASIN = "sealed-basin"
KEY_BYTES = bytes(range(32))
KEY = base64.b64encode(KEY_BYTES).decode()
WRONG_KEY = base64.b64encode(bytes(range(1, 33))).decode()

_names = itertools.count()


class Live:
    """The running sidecar plus an emulator writer."""

    def __init__(self, sc: SidecarProcess, socket_path: str, http: aiohttp.ClientSession) -> None:
        self.sc = sc
        self.address = sc.address
        self.socket_path = socket_path
        self.emulator_url = sc.emulator_url
        self.http = http
        self._sealed_basin = False

    async def append(
        self, stream: str, records: list[dict[str, Any]], *, basin: str = BASIN, encryption_key: str | None = None
    ) -> None:
        headers = {"s2-basin": basin}
        if encryption_key is not None:
            headers["s2-encryption-key"] = encryption_key
        async with self.http.post(
            f"{self.emulator_url}/v1/streams/{stream}/records", json={"records": records}, headers=headers
        ) as resp:
            assert resp.status == 200, await resp.text()

    async def fill_sealed(self, stream: str, n: int = 3) -> list[str]:
        """`n` records ("secret-0", ...) in a new encrypted stream of SEALED_BASIN, written with KEY."""
        if not self._sealed_basin:
            config = {"create_stream_on_append": True, "stream_cipher": "aegis-256"}
            async with self.http.post(
                f"{self.emulator_url}/v1/basins", json={"basin": SEALED_BASIN, "config": config}
            ) as resp:
                assert resp.status == 201, await resp.text()
            self._sealed_basin = True
        bodies = [f"secret-{i}" for i in range(n)]
        await self.append(stream, [{"body": b} for b in bodies], basin=SEALED_BASIN, encryption_key=KEY)
        return bodies

    async def fill(self, stream: str, n: int = N_RECORDS) -> None:
        await self.append(stream, [{"body": f"record-{i}", "timestamp": BASE_TS + i * 1000} for i in range(n)])


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python client built as users get it (`python -m build`): its wheel and sdist."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(CLIENT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def socket_dir() -> Iterator[str]:
    # a short path: unix socket paths are limited to ~107 bytes
    with tempfile.TemporaryDirectory(prefix="s2sc-", dir="/tmp") as d:
        yield d


@pytest.fixture(scope="session")
async def live(socket_dir: str) -> AsyncIterator[Live]:
    sock = os.path.join(socket_dir, "sidecar.sock")
    async with SidecarProcess("--listen", f"unix:{sock}") as sc, aiohttp.ClientSession() as http:
        yield Live(sc, sock, http)


APP_TOKEN = "s3cret-app-token"


@pytest.fixture(scope="session")
async def optional_token_live(socket_dir: str) -> AsyncIterator[Live | None]:
    """A second sidecar that requires `authorization: Bearer APP_TOKEN` (S2_SIDECAR_APP_TOKEN),
    or None when this sidecar build does not enforce app tokens."""
    import grpc

    sock = os.path.join(socket_dir, "token.sock")
    env = {"S2_SIDECAR_APP_TOKEN": APP_TOKEN}
    async with SidecarProcess("--listen", f"unix:{sock}", env=env) as sc, aiohttp.ClientSession() as http:
        enforced = False
        async with grpc.aio.insecure_channel(sc.address) as channel:
            check = channel.unary_unary("/s2sidecar.v1.StreamService/CheckTail")
            try:
                await check(b"\x12\x01x", timeout=10)  # CheckTailRequest(stream="x"), no token
            except grpc.aio.AioRpcError as e:
                enforced = e.code() == grpc.StatusCode.UNAUTHENTICATED
        yield Live(sc, sock, http) if enforced else None


@pytest.fixture
def token_live(optional_token_live: Live | None) -> Live:
    if optional_token_live is None:
        pytest.skip("this sidecar does not enforce S2_SIDECAR_APP_TOKEN")
    return optional_token_live


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> str:
    """A stream name no other test uses."""
    return f"{request.node.name[:60]}-{os.getpid()}-{next(_names)}".replace("[", "-").replace("]", "")
