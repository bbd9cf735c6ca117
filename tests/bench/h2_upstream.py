"""HTTP/2 upstream figures: catch-up through the sidecar with `--upstream-protocol http2` vs
`http1` (100 B and 1 KiB records; ratio), and 1,000 concurrent upstream sessions over HTTP/2
(connections used). One run each: `python -m tests.bench.h2_upstream [--records N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.types import ReadQuery, TailOffset
from sidecar.upstream import BasinEndpoint, UpstreamClient, UpstreamProtocol, UpstreamSettings
from tests.bench.common import BASIN, fill, start_emulator, start_sidecar, stop

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]


async def catch_up(address: str, stream: str, n: int) -> float:
    """records/s of one ReadSession from seq_num 0 to n."""
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        got = 0
        async for msg in stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=stream, seq_num=0, count=n)):
            got += len(msg.records)
        assert got == n
        return n / (time.perf_counter() - started)


async def many_sessions(
    url: str,
    stream: str,
    sessions: int,
    protocol: UpstreamProtocol = UpstreamProtocol.HTTP2,
    probe: Callable[[], Awaitable[object]] | None = None,
) -> tuple[int, int]:
    """Open `sessions` live sessions with the sidecar's upstream client; (TCP connections, sessions
    open). `probe` is awaited while they are all open."""
    client = UpstreamClient(
        UpstreamSettings(BasinEndpoint.parse(url + "/v1"), protocol=protocol, session_connections=max(1000, sessions))
    )
    async with client:
        gens = [client.read_session(BASIN, stream, ReadQuery(start=TailOffset(0))) for _ in range(sessions)]
        await asyncio.gather(*(g.__anext__() for g in gens))  # every one has its first heartbeat
        stats = client.pool_stats()
        if probe is not None:
            await probe()
        for g in gens:
            await g.aclose()
        if protocol is UpstreamProtocol.HTTP2:
            return stats["connections_h2"], stats["session_in_use"]
        return stats["connections_h1"], stats["session_in_use"]


async def run(records: int, sizes: list[int], sessions: int) -> None:
    emulator, url = await start_emulator()
    sidecars: dict[str, tuple[asyncio.subprocess.Process, str]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for size in sizes:
                await fill(http, url, f"bench-{size}", records, size)
            await fill(http, url, "bench-live", 1, 10)
        for proto in ("http1", "http2"):
            sidecars[proto] = await start_sidecar(url, "--upstream-protocol", proto)
        print(f"catch-up through the sidecar, {records} records per ReadSession, one run")
        print(f"{'size':>6} {'http1 rec/s':>12} {'http2 rec/s':>12} {'http2/http1':>12}")
        for size in sizes:
            rates = {}
            for proto, (_proc, address) in sidecars.items():
                await catch_up(address, f"bench-{size}", min(records, 10_000))  # warm up
                rates[proto] = await catch_up(address, f"bench-{size}", records)
            ratio = rates["http2"] / rates["http1"]
            print(f"{size:>6} {rates['http1']:>12,.0f} {rates['http2']:>12,.0f} {ratio:>11.2f}x")
        conns, open_sessions = await many_sessions(url, "bench-live", sessions)
        print(f"{open_sessions} concurrent upstream sessions over HTTP/2 on {conns} TCP connection(s)")
    finally:
        for proc, _ in sidecars.values():
            await stop(proc)
        await stop(emulator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--sessions", type=int, default=1000)
    opts = parser.parse_args()
    asyncio.run(run(opts.records, [int(s) for s in opts.sizes.split(",")], opts.sessions))


if __name__ == "__main__":
    main()
