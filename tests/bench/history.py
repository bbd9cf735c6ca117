"""The history cache's benchmark: concurrent replays, a replay after another, memory.

    .venv/bin/python -m tests.bench.history [--records 100000] [--size 1024] [--replays 20]

One emulator, two sidecars on it (cache on, cache off), each its own process; this process is the
app side. Upstream bytes are measured by the emulator (`read_bytes` of `/_emulator/stats`: the
protobuf bytes of every record it served), i.e. at the upstream socket.
1. `--replays` concurrent `ReadSession`s of the whole stream from seq_num 0 through the cached
   sidecar: upstream bytes / the range (1.0: read once; without the cache it is `--replays`).
2. One replay after they finished (range cached) against the same replay through the cache-off
   sidecar: records/s each and the ratio (two runs each, the best).
3. The cached sidecar's RSS (and peak) against its cache bound.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from tests.bench.common import BASIN, emulator_stats, fill, memory_kb, start_emulator, start_sidecar, stop, table

STREAM = "history"


@dataclass
class HistoryParams:
    records: int = 100_000
    size: int = 1024
    replays: int = 20
    cache_bytes: int = 256 * 1024 * 1024
    runs: int = 2  # sequential replays per sidecar in part 2 (the best is kept)
    measure_off: bool = False  # also run the concurrent replays with the cache off (slow: N x the range)


@dataclass
class HistoryResult:
    params: HistoryParams
    range_bytes: int
    concurrent_upstream_bytes: int
    concurrent_seconds: float
    cached_rate: float  # records/s of a replay served from the cache
    uncached_rate: float  # the same replay with the cache off
    rss_mb: float
    peak_mb: float
    held_mb: float  # what the cache holds, as the sidecar's gauge would say (range + index)
    off_upstream_bytes: int | None = None  # the concurrent replays with the cache off, if measured

    @property
    def upstream_ratio(self) -> float:
        return self.concurrent_upstream_bytes / self.range_bytes

    @property
    def speedup(self) -> float:
        return self.cached_rate / self.uncached_rate


async def replay(stub: stream_pb2_grpc.StreamServiceStub, records: int) -> None:
    """Read the stream from 0 to `records`, checking every seq_num arrives once, in order."""
    want = 0
    req = pb.ReadSessionRequest(basin=BASIN, stream=STREAM, seq_num=0, count=records)
    async for msg in stub.ReadSession(req):
        n = len(msg.records)
        if n:
            assert msg.records[0].seq_num == want and msg.records[n - 1].seq_num == want + n - 1, (want, n)
            want += n
    assert want == records, (want, records)


async def upstream_bytes(http: aiohttp.ClientSession, url: str) -> int:
    return int((await emulator_stats(http, url))["read_bytes"].get(f"{BASIN}/{STREAM}", 0))


async def run_history(p: HistoryParams) -> HistoryResult:
    emulator, url = await start_emulator()
    on = off = None
    try:
        on, on_addr = await start_sidecar(url, "--history-cache-bytes", str(p.cache_bytes))
        off, off_addr = await start_sidecar(url, "--history-cache-bytes", "0")
        async with (
            aiohttp.ClientSession() as http,
            grpc.aio.insecure_channel(on_addr, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch_on,
            grpc.aio.insecure_channel(off_addr, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch_off,
        ):
            stub_on = stream_pb2_grpc.StreamServiceStub(ch_on)  # type: ignore[no-untyped-call]
            stub_off = stream_pb2_grpc.StreamServiceStub(ch_off)  # type: ignore[no-untyped-call]
            await fill(http, url, STREAM, p.records, p.size)
            # The range's size as the upstream serves it: one replay with the cache off reads it once.
            before = await upstream_bytes(http, url)
            t0 = time.monotonic()
            await replay(stub_off, p.records)
            uncached = [p.records / (time.monotonic() - t0)]
            range_bytes = await upstream_bytes(http, url) - before

            before = await upstream_bytes(http, url)
            t0 = time.monotonic()
            await asyncio.gather(*(replay(stub_on, p.records) for _ in range(p.replays)))
            concurrent_seconds = time.monotonic() - t0
            concurrent = await upstream_bytes(http, url) - before

            cached: list[float] = []
            for _ in range(p.runs):
                t0 = time.monotonic()
                await replay(stub_on, p.records)
                cached.append(p.records / (time.monotonic() - t0))
            for _ in range(p.runs - 1):
                t0 = time.monotonic()
                await replay(stub_off, p.records)
                uncached.append(p.records / (time.monotonic() - t0))
            rss, hwm = memory_kb(on.pid)
            off_bytes = None
            if p.measure_off:
                before = await upstream_bytes(http, url)
                await asyncio.gather(*(replay(stub_off, p.records) for _ in range(p.replays)))
                off_bytes = await upstream_bytes(http, url) - before
            return HistoryResult(
                p,
                range_bytes,
                concurrent,
                concurrent_seconds,
                max(cached),
                max(uncached),
                rss / 1024,
                hwm / 1024,
                range_bytes / 1e6,
                off_bytes,
            )
    finally:
        for proc in (on, off, emulator):
            if proc is not None:
                await stop(proc)


def format_history(r: HistoryResult) -> str:
    p = r.params
    bound_mb = p.cache_bytes / (1 << 20)
    off = (
        f"cache off: {r.off_upstream_bytes / r.range_bytes:.2f}x measured"
        if r.off_upstream_bytes is not None
        else f"cache off: {p.replays}.00x by construction (--measure-off measures it)"
    )
    rows = [
        [f"{p.replays} concurrent replays: upstream bytes / range", f"{r.upstream_ratio:.2f}x",
         f"{r.concurrent_upstream_bytes / 1e6:,.1f} MB for {r.range_bytes / 1e6:,.1f} MB, "
         f"{r.concurrent_seconds:.1f} s; {off}"],
        ["replay after another: cached / uncached records/s", f"{r.speedup:.2f}x",
         f"{r.cached_rate:,.0f} vs {r.uncached_rate:,.0f} records/s"],
        ["sidecar RSS - cache bound", f"{r.rss_mb - bound_mb:,.0f} MB",
         f"RSS {r.rss_mb:,.0f} MB (peak {r.peak_mb:,.0f}), bound {bound_mb:,.0f} MiB, range {r.held_mb:,.0f} MB"],
    ]  # fmt: skip
    title = f"History cache: {p.records:,} records of {p.size} B from seq_num 0"
    return title + "\n" + table(["what", "figure", "detail"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--replays", type=int, default=20)
    ap.add_argument("--cache-bytes", type=int, default=256 * 1024 * 1024)
    ap.add_argument("--measure-off", action="store_true", help="also run the concurrent replays with the cache off")
    opts = ap.parse_args()
    params = HistoryParams(opts.records, opts.size, opts.replays, opts.cache_bytes, measure_off=opts.measure_off)
    import uvloop

    print(format_history(uvloop.run(run_history(params))))


if __name__ == "__main__":
    main()
