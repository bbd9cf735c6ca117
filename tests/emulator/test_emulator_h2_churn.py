"""HTTP/2 streams that clients reset at once, before or after their handler started, leave nothing
behind: no stream in `/_emulator/http2/connections`, no session in `open_sessions` (a handler
task cancelled before its first step never runs its coroutine, so cleanup sits in a done callback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig
from sidecar.testing import SidecarProcess

from .h2client import H2Client
from .helpers import BASIN, FIVE, S2S

H = {"s2-basin": BASIN}
CHURN = 500


async def _emulator_view(http: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    """(HTTP/2 streams the emulator holds open, sessions it counts open), asked over HTTP/1.1."""
    async with http.get(f"{url}/_emulator/http2/connections") as r:
        streams = sum(c["open_streams"] for c in (await r.json())["connections"])
    return streams, (await _stats(http, url))["open_sessions_total"]


async def _stats(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/_emulator/stats") as r:
        stats: dict[str, Any] = await r.json()
        return stats


async def _settles_to_zero(http: aiohttp.ClientSession, url: str, within: float) -> tuple[int, int]:
    """Poll until nothing is open (generous deadline: cleanup is asynchronous); the last view."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    view = await _emulator_view(http, url)
    while view != (0, 0) and loop.time() < deadline:
        await asyncio.sleep(0.1)
        view = await _emulator_view(http, url)
    return view


async def test_streams_reset_at_once_over_h2c_leave_nothing_open() -> None:
    async with (
        Emulator(EmulatorConfig(port=0, basins={BASIN: AUTO_CREATE})) as emu,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{emu.url}/v1/streams/churn/records", json={"records": FIVE}, headers=H) as r:
            assert r.status == 200
        h2 = await H2Client().connect("127.0.0.1", emu.port)
        try:
            session = {**H, **S2S}
            for i in range(CHURN):
                # Follow from the tail (a session that waits), or a one-shot read, or an append.
                match i % 3:
                    case 0:
                        s = h2.request("GET", "/v1/streams/churn/records?seq_num=5", session)
                    case 1:
                        s = h2.request("GET", "/v1/streams/churn/records?seq_num=0", H)
                    case _:
                        body = json.dumps({"records": [{"body": "x"}]}).encode()
                        s = h2.request("POST", "/v1/streams/churn/records", {**H, "content-type": "application/json"},
                                       body, end=False)  # fmt: skip
                # Reset in the same write (before the handler's first step), after one loop turn
                # (the handler may have started), or once the response began (a session is open).
                if i % 5 == 1:
                    await asyncio.sleep(0)
                elif i % 5 == 2 and i % 3 != 2:
                    await h2.wait(s, lambda s: s.status is not None, timeout=10)
                elif i % 5 == 2:
                    await asyncio.sleep(0.01)  # an append waits for the rest of its body
                h2.cancel(s)
            # The connection still serves, and every reset stream is gone from the emulator.
            assert (await h2.fetch("GET", "/v1/streams/churn/records/tail", H)).status == 200
            assert await _settles_to_zero(http, emu.url, within=15) == (0, 0)
        finally:
            await h2.close()


async def test_read_sessions_cancelled_at_once_through_the_sidecar_leave_nothing_open() -> None:
    """As users run it: `s2-sidecar` in its own process (uvloop) speaking HTTP/2 to this emulator,
    with apps that open ReadSessions and cancel them right away."""
    streams = [f"churn-{i}" for i in range(10)]
    async with (
        Emulator(EmulatorConfig(port=0, basins={BASIN: AUTO_CREATE})) as emu,
        aiohttp.ClientSession() as http,
    ):
        for name in streams:
            body = {"records": [{"body": "a"}, {"body": "b"}]}
            async with http.post(f"{emu.url}/v1/streams/{name}/records", json=body, headers=H) as r:
                assert r.status == 200
        env = {"S2_BASIN_ENDPOINT": f"{emu.url}/v1", "S2_SIDECAR_DEFAULT_BASIN": BASIN}
        args = ("--upstream-protocol", "http2", "--history-cache-bytes", "0")
        async with SidecarProcess(*args, env=env) as sc, grpc.aio.insecure_channel(sc.address) as channel:
            stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
            # Warm up both hops (the gRPC channel, the sidecar's HTTP/2 connection upstream), else
            # every call may be cancelled before its session reaches the emulator.
            await stub.CheckTail(pb.CheckTailRequest(stream=streams[0]))

            async def open_and_cancel(i: int) -> None:
                start: dict[str, Any] = {"seq_num": 0} if i % 2 else {"tail_offset": 0}
                call = stub.ReadSession(pb.ReadSessionRequest(stream=streams[i % len(streams)], **start))
                if i % 10 == 1:
                    # A few wait for their first records, so some sessions surely reach the
                    # emulator however loaded the machine is (the rest are cancelled at once).
                    async for _ in call:
                        break
                else:
                    await asyncio.sleep(0.001 * (i % 7))
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    async for _ in call:
                        pass

            for _ in range(5):
                await asyncio.gather(*(open_and_cancel(i) for i in range(100)))
            sessions = sum(c.get("session", 0) for c in (await _stats(http, emu.url))["requests"].values())
            assert sessions > 0, "the churn never reached the emulator"
            # A shared live feed with no subscribers stops after 2 s: then nothing is open.
            assert await _settles_to_zero(http, emu.url, within=30) == (0, 0)
