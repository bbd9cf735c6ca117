"""The sidecar at two commits, measured side by side in one run: is a change free?

    .venv/bin/python -m tests.bench.before_after [--before REF] [--repeats 5] [--seconds 2]

`--before` (default `HEAD~1`) is checked out into a temporary git worktree; "after" is this
checkout as it is on disk. One emulator (this checkout's) serves both sidecars, each its own
process, and the cases run round robin (before, after, before, ...), so the machine's drift hits
both alike. Each row gives the median of `--repeats` samples for both and their ratio. CPU per
unit of work (the sidecar process's user+system time) is the figure to compare: on shared cores
rates move with whatever else runs, CPU per record or per call much less.

Cases: `ReadSession` catch-up of 100,000 records of 100 B; `Read` 1,000 records a call over the
same stream; cached `CheckTail` and a 10 x 1 KiB `Read` from a random start, 50 concurrent callers.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import aiohttp
import grpc
import uvloop

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from tests.bench.ceiling import UNARY_READ_COUNT, UNARY_READ_SIZE
from tests.bench.common import BASIN, ROOT, CpuMeter, fill, fmt, median, start_emulator, start_sidecar, stop, table
from tests.bench.throughput import CHANNEL_OPTIONS, grpc_reads, grpc_session
from tests.bench.unary import concurrent

RECORDS = 100_000
READ_STREAM_RECORDS = 10_000
CALLERS = 50


@dataclass
class Figures:
    rates: list[float] = field(default_factory=list)  # units/s
    cpu_us: list[float] = field(default_factory=list)  # sidecar CPU µs per unit


async def measure(run: Callable[[], Awaitable[int]], pid: int, seconds: float, into: Figures) -> None:
    meter = CpuMeter(pid)
    meter.start()
    t0 = time.perf_counter()
    units = 0
    while time.perf_counter() - t0 < seconds:
        units += await run()
    elapsed = time.perf_counter() - t0
    (cpu,) = meter.stop()
    into.rates.append(units / elapsed)
    into.cpu_us.append(cpu / 100 * elapsed / units * 1e6)


def checkout(before: str) -> tuple[str, Path]:
    """`before` in a git worktree of its own (made once, kept for the next run)."""
    rev = subprocess.run(["git", "rev-parse", "--short", before], cwd=ROOT, capture_output=True, text=True, check=True)
    sha = rev.stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"s2-sidecar-bench-{sha}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True)
    return sha, tree


async def main(before: str, sha: str, tree: Path, repeats: int, seconds: float) -> None:
    emulator, url = await start_emulator()
    sidecars = [await start_sidecar(url, cwd=tree), await start_sidecar(url)]
    rng = random.Random(5)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            await fill(http, url, "catch-up", RECORDS, 100)
            await fill(http, url, "tail", 1, 16)
            await fill(http, url, "unary-read", READ_STREAM_RECORDS, UNARY_READ_SIZE)
            channels = [grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS) for _, addr in sidecars]
            stubs = [stream_pb2_grpc.StreamServiceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]

            async def session(stub: stream_pb2_grpc.StreamServiceStub) -> int:
                return (await grpc_session(stub, "catch-up", RECORDS))[0]

            async def reads(stub: stream_pb2_grpc.StreamServiceStub) -> int:
                return (await grpc_reads(stub, "catch-up", RECORDS // 4))[0]

            async def check_tail(stub: stream_pb2_grpc.StreamServiceStub) -> int:
                req = pb.CheckTailRequest(basin=BASIN, stream="tail", max_staleness_ms=60_000)
                return await concurrent(lambda i: stub.CheckTail(req), CALLERS, 0.5)

            async def read(stub: stream_pb2_grpc.StreamServiceStub) -> int:
                def call(i: int) -> Awaitable[object]:
                    seq = rng.randrange(READ_STREAM_RECORDS - UNARY_READ_COUNT)
                    answer: Awaitable[object] = stub.Read(
                        pb.ReadRequest(basin=BASIN, stream="unary-read", seq_num=seq, count=UNARY_READ_COUNT)
                    )
                    return answer

                return await concurrent(call, CALLERS, 0.5)

            cases: list[tuple[str, str, Callable[[stream_pb2_grpc.StreamServiceStub], Awaitable[int]]]] = [
                (f"ReadSession catch-up, {RECORDS:,} x 100 B", "record", session),
                ("Read 1000 records/call, same stream", "record", reads),
                (f"CheckTail cached, {CALLERS} callers", "call", check_tail),
                (f"Read {UNARY_READ_COUNT} x {UNARY_READ_SIZE} B random start, {CALLERS} callers", "call", read),
            ]
            for _, _, work in cases:  # warm up: connections, pools, caches
                for stub in stubs:
                    await work(stub)
            figures = [[Figures(), Figures()] for _ in cases]
            for _ in range(repeats):
                for (_, _, work), pair in zip(cases, figures, strict=True):
                    for (proc, _), stub, into in zip(sidecars, stubs, pair, strict=True):
                        await measure(partial(work, stub), proc.pid, seconds, into)
            for ch in channels:
                await ch.close(None)
        rows = []
        for (what, unit, _), (b, a) in zip(cases, figures, strict=True):
            rb, ra, cb, ca = median(b.rates), median(a.rates), median(b.cpu_us), median(a.cpu_us)
            rows.append([what, f"{fmt(rb)} {unit}s/s", fmt(ra), fmt(ra / rb, ".2f"),
                         fmt(cb, ".2f"), fmt(ca, ".2f"), fmt(ca / cb, ".2f")])  # fmt: skip
        print(f"before = {before} ({sha}), after = this checkout; median of {repeats} x {seconds:g} s, round robin")
        print(table(["case", "rate before", "after", "ratio", "CPU µs/unit before", "after", "ratio"], rows))
    finally:
        for proc, _ in sidecars:
            await stop(proc)
        await stop(emulator)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="HEAD~1", help="the commit to compare against (default HEAD~1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one sample")
    args = ap.parse_args()
    sha, tree = checkout(args.before)
    uvloop.run(main(args.before, sha, tree, args.repeats, args.seconds))
