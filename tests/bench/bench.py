"""Throughput of the sidecar against a direct aiohttp client of the same emulator.

    .venv/bin/python -m tests.bench.bench [--records 200000] [--sizes 100,1024]

Starts the emulator and the sidecar as separate processes on loopback, fills a stream, then
reads it end to end (a) through the sidecar over gRPC and (b) straight from the emulator with
aiohttp, and prints records/s, MB/s and the ratio from the same run. Machines here are noisy:
compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from sidecar._proto.s2.v1 import records_pb2
from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.testing import free_port
from sidecar.types import AppendRecord
from sidecar.wire.protobuf import encode_append_input

BASIN = "bench-basin"
MALLOC_ENV = {  # PERFORMANCE.md: glibc tuned for ~1 MiB buffers
    "MALLOC_MMAP_THRESHOLD_": "4194304",
    "MALLOC_TRIM_THRESHOLD_": "67108864",
    "MALLOC_TOP_PAD_": "16777216",
}


async def start(*args: str, ready: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **MALLOC_ENV},
    )  # fmt: skip
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise RuntimeError(f"{args} exited before it was ready")
        if ready in line:
            asyncio.get_running_loop().create_task(proc.stdout.read())  # keep draining its output
            return proc


async def fill(http: aiohttp.ClientSession, url: str, stream: str, n: int, size: int) -> None:
    body = b"x" * size
    for lo in range(0, n, 1000):
        batch = [AppendRecord(body=body) for _ in range(min(1000, n - lo))]
        async with http.post(
            f"{url}/v1/streams/{stream}/records",
            data=encode_append_input(batch),
            headers={"s2-basin": BASIN, "content-type": "application/protobuf"},
        ) as resp:
            assert resp.status == 200, await resp.text()


async def direct_session(http: aiohttp.ClientSession, url: str, stream: str, n: int) -> int:
    """What an app would do without the sidecar: an s2s session over aiohttp, decoding batches."""
    got = 0
    async with http.get(
        f"{url}/v1/streams/{stream}/records",
        params={"seq_num": "0", "count": str(n)},
        headers={"s2-basin": BASIN, "content-type": "s2s/proto", "accept-encoding": "identity"},
    ) as resp:
        content = resp.content
        while got < n:
            length = int.from_bytes(await content.readexactly(3), "big")
            payload = await content.readexactly(length)
            got += len(records_pb2.ReadBatch.FromString(payload[1:]).records)
    return got


async def sidecar_session(stub: stream_pb2_grpc.StreamServiceStub, stream: str, n: int) -> int:
    got = 0
    async for msg in stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=stream, seq_num=0, count=n)):
        got += len(msg.records)
    return got


async def direct_reads(http: aiohttp.ClientSession, url: str, stream: str, n: int) -> int:
    got = 0
    while got < n:
        async with http.get(
            f"{url}/v1/streams/{stream}/records",
            params={"seq_num": str(got)},
            headers={"s2-basin": BASIN, "accept": "application/protobuf"},
        ) as resp:
            got += len(records_pb2.ReadBatch.FromString(await resp.read()).records)
    return got


async def sidecar_reads(stub: stream_pb2_grpc.StreamServiceStub, stream: str, n: int) -> int:
    got = 0
    while got < n:
        got += len((await stub.Read(pb.ReadRequest(basin=BASIN, stream=stream, seq_num=got))).records)
    return got


async def measure(fn: Callable[[], Awaitable[int]], repeats: int) -> float:
    """Median records/s over `repeats` runs."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = await fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--sizes", default="100,1024", help="record body sizes in bytes, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args()

    emu_port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{emu_port}"
    emulator = await start("emulator", "--listen", f"127.0.0.1:{emu_port}", ready="http://")
    sidecar = await start(
        "--listen", f"127.0.0.1:{grpc_port}", "--basin-endpoint", f"{url}/v1", "--admin-listen", "off",
        ready="serving gRPC",
    )  # fmt: skip
    rows = []
    try:
        async with (
            aiohttp.ClientSession() as http,
            grpc.aio.insecure_channel(
                f"127.0.0.1:{grpc_port}", options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
            ) as channel,
        ):
            stub = stream_pb2_grpc.StreamServiceStub(channel)
            for size in (int(s) for s in opts.sizes.split(",")):
                stream = f"bench-{size}"
                n = opts.records
                await fill(http, url, stream, n, size)
                await sidecar_session(stub, stream, 1000)  # warm up connections
                for name, via, direct in (
                    ("ReadSession", lambda s=stream, n=n: sidecar_session(stub, s, n),
                     lambda s=stream, n=n: direct_session(http, url, s, n)),
                    ("Read (1000/batch)", lambda s=stream, n=n: sidecar_reads(stub, s, n // 4),
                     lambda s=stream, n=n: direct_reads(http, url, s, n // 4)),
                ):  # fmt: skip
                    side = await measure(via, opts.repeats)
                    dire = await measure(direct, opts.repeats)
                    rows.append((name, size, side, dire))
    finally:
        for proc in (sidecar, emulator):
            proc.terminate()
            await proc.wait()

    print(
        f"records per run: {opts.records} (Read: {opts.records // 4}); median of {opts.repeats}; python {sys.version.split()[0]}"
    )
    print(f"{'method':<20}{'record':>8}{'sidecar rec/s':>15}{'MB/s':>8}{'direct rec/s':>15}{'MB/s':>8}{'ratio':>8}")
    for name, size, side, dire in rows:
        print(
            f"{name:<20}{size:>7}B{side:>15,.0f}{side * size / 1e6:>8.1f}{dire:>15,.0f}{dire * size / 1e6:>8.1f}"
            f"{side / dire:>8.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
