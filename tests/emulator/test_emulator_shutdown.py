"""`s2-sidecar emulator` on SIGTERM, as a real process: as s2-lite (lite/src/server.rs
`shutdown_signal`, axum_server's graceful shutdown with a 10 s grace), it stops taking connections
at once, lets open reads go on for the grace period, then hangs up on them and exits 0. Measured on
s2-lite 0.43.4: a new connection after SIGTERM is refused, an open SSE session gets its heartbeats,
and at 10 s it is cut without the final chunk."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.testing import free_port

BASIN = "shutdown-basin"


@pytest.fixture
async def emulator_process(request: pytest.FixtureRequest) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    grace: str = getattr(request, "param", "1.5")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "emulator", "--listen", f"127.0.0.1:{port}", "--basin", BASIN,
        "--shutdown-grace", grace, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{url}/v1/basins"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _refused(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/basins"):
            return False
    except aiohttp.ClientConnectionError:
        return True


async def test_sigterm_lets_open_sessions_run_for_the_grace_then_cuts_them(
    emulator_process: tuple[asyncio.subprocess.Process, str],
) -> None:
    proc, url = emulator_process
    headers = {"s2-basin": BASIN, "accept": "text/event-stream"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/streams/s/records", json={"records": [{"body": "a"}]}, headers=headers) as r:
            assert r.status == 200
        async with http.get(f"{url}/v1/streams/s/records?seq_num=0", headers=headers) as session:
            assert session.status == 200
            assert b"event: batch" in await session.content.readuntil(b"\n\n")
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.3)
            assert await _refused(url)  # the listener closed at once
            assert proc.returncode is None and not session.content.at_eof()  # the session goes on
            with pytest.raises(aiohttp.ClientPayloadError):  # cut: no final chunk, no error event
                while await session.content.readany():
                    pass
            assert 1.2 < time.monotonic() - signalled < 5
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert proc.stderr is not None
    assert b"hanging up" in await proc.stderr.read()


@pytest.mark.parametrize("emulator_process", ["10"], indirect=True)
async def test_sigterm_with_nothing_open_exits_at_once(
    emulator_process: tuple[asyncio.subprocess.Process, str],
) -> None:
    proc, _ = emulator_process
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 5) == 0
    assert time.monotonic() - signalled < 3  # not the 10 s grace
