"""What tracing costs: the same sidecar with tracing off and on (OTLP to a local sink).

    .venv/bin/python -m tests.bench.tracing_cost [--seconds 5]

Starts one emulator and two sidecars as separate processes (one with OTEL_TRACES_EXPORTER=otlp
to a sink in this process that accepts and drops spans), then measures Read calls/s with 50
concurrent callers and ReadSession records/s through each, and prints on/off ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import grpc
from aiohttp import web

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.testing import free_port
from sidecar.types import AppendRecord
from sidecar.wire.protobuf import encode_append_input
from tests.bench.common import BASIN, start, stop


async def reads_per_second(stub: stream_pb2_grpc.StreamServiceStub, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await stub.Read(pb.ReadRequest(basin=BASIN, stream="t", seq_num=0, count=10))
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(50)))
    return done / (time.perf_counter() - t0)


async def session_records_per_second(stub: stream_pb2_grpc.StreamServiceStub, n: int) -> float:
    t0 = time.perf_counter()
    got = 0
    async for msg in stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream="t", seq_num=0, count=n)):
        got += len(msg.records)
    return got / (time.perf_counter() - t0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--records", type=int, default=100_000)
    opts = parser.parse_args()

    spans = 0

    async def sink(request: web.Request) -> web.Response:
        nonlocal spans
        spans += 1
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sink_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    emu = free_port()
    url = f"http://127.0.0.1:{emu}"
    procs = [await start("emulator", "--listen", f"127.0.0.1:{emu}", "--basin", BASIN, ready="http://")]
    ports = {"off": free_port(), "on": free_port()}
    envs = {
        "off": {"OTEL_TRACES_EXPORTER": "none"},
        "on": {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url},
    }
    for mode, port in ports.items():
        procs.append(
            await start(
                "--listen",
                f"127.0.0.1:{port}",
                "--basin-endpoint",
                f"{url}/v1",
                "--admin-listen",
                "off",
                env=envs[mode],
                ready="serving gRPC",
            )
        )
    results: dict[str, tuple[float, float]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for _lo in range(0, opts.records, 1000):
                async with http.post(
                    f"{url}/v1/streams/t/records",
                    data=encode_append_input([AppendRecord(body=b"x" * 100)] * 1000),
                    headers={"s2-basin": BASIN, "content-type": "application/protobuf"},
                ) as resp:
                    assert resp.status == 200
        for mode in ("off", "on", "off", "on"):  # interleaved, to spread the machine's drift
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[mode]}") as channel:
                stub = stream_pb2_grpc.StreamServiceStub(channel)
                reads = await reads_per_second(stub, opts.seconds)
                session = await session_records_per_second(stub, opts.records)
            prev = results.get(mode)
            results[mode] = (max(reads, prev[0]) if prev else reads, max(session, prev[1]) if prev else session)
    finally:
        for proc in procs:
            await stop(proc)
        await runner.cleanup()
    off, on = results["off"], results["on"]
    print(f"tracing cost (best of 2, interleaved; python {sys.version.split()[0]}); spans exported: {spans} batches")
    print(f"{'':<28}{'off':>12}{'on':>12}{'on/off':>8}")
    print(f"{'Read calls/s (50 callers)':<28}{off[0]:>12,.0f}{on[0]:>12,.0f}{on[0] / off[0]:>8.2f}")
    print(f"{'ReadSession records/s':<28}{off[1]:>12,.0f}{on[1]:>12,.0f}{on[1] / off[1]:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
