"""CPU instructions per cached `CheckTail`, the sidecar against the gRPC ceiling.

    .venv/bin/python -m tests.bench.callgrind_unary [--calls 1000] [--callers 10]

Calls/s and CPU time on these shared machines move 5-15% between runs; instruction counts do not
(valgrind's callgrind counts them, whatever else runs). Each server runs under callgrind with
instrumentation off while it starts and warms up; it is switched on for `--calls` calls from
`--callers` concurrent callers in this process, and the total over all the server's threads is
divided by the calls. About a minute per server. `callgrind_annotate` on the files it leaves in
/tmp shows where the instructions go (C functions; Python code shows as the interpreter's loop).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import sys

import aiohttp
import grpc
import uvloop

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.testing import free_port
from tests.bench.common import BASIN, MALLOC_ENV, ROOT, fill, start_emulator, stop

STREAM = "callgrind-tail"


async def instructions_per_call(server: str, emulator_url: str, calls: int, callers: int) -> float:
    port = free_port()
    out = f"/tmp/callgrind.{server}.{os.getpid()}.out"
    for f in glob.glob(out + "*"):
        os.remove(f)
    if server == "ceiling":
        args = ["-m", "tests.bench.ceiling", "--listen", f"127.0.0.1:{port}", "--emulator", emulator_url]
    else:
        args = ["-m", "sidecar", "--listen", f"127.0.0.1:{port}", "--basin-endpoint", f"{emulator_url}/v1",
                "--admin-listen", "off", "--log-level", "warning"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, **MALLOC_ENV}, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while b"serving" not in (line := await asyncio.wait_for(proc.stdout.readline(), 600)):
            if not line:
                raise RuntimeError(f"{server} exited before it was ready")
        drain = asyncio.ensure_future(proc.stdout.read())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
            req = pb.CheckTailRequest(basin=BASIN, stream=STREAM, max_staleness_ms=60_000)

            async def run(n: int) -> None:
                async def caller() -> None:
                    for _ in range(n // callers):
                        await stub.CheckTail(req)

                await asyncio.gather(*(caller() for _ in range(callers)))

            await run(max(callers, 300))  # warm-up: caches filled, series made
            await control("-i", "on", proc.pid)
            await run(calls)
            await control("-i", "off", proc.pid)
            await control("-d", proc.pid)  # write the counts
    finally:
        proc.kill()
        await proc.wait()
    drain.cancel()
    return _totals(out) / (calls // callers * callers)


async def control(*args: str | int) -> None:
    ctl = await asyncio.create_subprocess_exec(
        "callgrind_control", *map(str, args), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    if await ctl.wait():
        raise RuntimeError(f"callgrind_control {args} failed")


def _totals(out: str) -> int:
    """Instructions in the dumps written to `out`*."""
    total = 0
    for f in glob.glob(out + "*"):
        with open(f) as lines:
            total += sum(int(line.split()[1]) for line in lines if line.startswith("totals:"))
    return total


async def run(calls: int, callers: int) -> None:
    emulator, url = await start_emulator()
    try:
        async with aiohttp.ClientSession() as http:
            await fill(http, url, STREAM, 1, 16)
        ceiling = await instructions_per_call("ceiling", url, calls, callers)
        sidecar = await instructions_per_call("sidecar", url, calls, callers)
    finally:
        await stop(emulator)
    print(f"cached CheckTail, instructions per call ({calls} calls, {callers} callers):")
    print(f"  gRPC ceiling {ceiling:,.0f}\n  sidecar      {sidecar:,.0f}  ({ceiling / sidecar:.2f}x the ceiling's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--callers", type=int, default=10)
    opts = parser.parse_args()
    uvloop.run(run(opts.calls, opts.callers))


if __name__ == "__main__":
    main()
