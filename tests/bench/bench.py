"""The sidecar's benchmark: one run prints three tables.

    .venv/bin/python -m tests.bench.bench [--only throughput|unary|fanout|vs_sdk] [--repeats 3] ...

1. Catch-up throughput (`throughput.py`): `ReadSession` and `Read` records/s through the sidecar
   against a direct aiohttp client of the same emulator, and the gRPC ceiling (a trivial grpc.aio
   server streaming the same frames from memory), for 100 B and 1 KiB records.
2. Unary calls (`unary.py`): `CheckTail` cached and uncached and `Read`, calls/s with 50
   concurrent callers and p50/p99 of sequential calls, against the ceiling's unary calls; and
   many identical (coalesced) vs distinct `Read` long-polls at a tail.
3. Fan-out (`fanout.py`): 1 to 1,000 apps following one stream while 1,000 records/s are
   appended: upstream sessions, append-to-app latency, sidecar CPU and memory; and 1,000 apps on
   a trivial fan-out server (the gRPC ceiling again).
4. vs s2-sdk (`vs_sdk.py`): the project's Python client through the sidecar (http1 and
   http2 upstream) against `s2-sdk`'s own `read_session` on the emulator over h2c; http2/http1
   catch-up and the upstream connections of 1,000 sessions; the emulator's direct figures before
   (a worktree of 34ddf8a at /tmp/pre-h2, made if missing) and after its HTTP/2 front.
5. History cache (`history.py`; run it with `--only history`, or `python -m
   tests.bench.history` for its options): 20 concurrent replays of the same 100 MB, upstream bytes
   against the range; a replay after another, cached vs uncached; RSS against the cache bound.

The emulator, the sidecar, the ceiling and the follower clients run as separate processes on
loopback; this process (uvloop) is the client for sections 1 and 2 and the appender for 3.
Every table shows the CPU of each process and how busy the whole machine was: on 2 shared cores
the processes compete, so CPU per record, call or message explains most ratios.
Servers run with the Dockerfile's glibc malloc settings (`common.MALLOC_ENV`). Machines here are
shared and drift: compare ratios taken in one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from importlib.metadata import version

from tests.bench.common import BASIN, start
from tests.bench.fanout import FanoutParams, format_fanout, run_fanout
from tests.bench.history import HistoryParams, format_history, run_history
from tests.bench.throughput import ThroughputParams, format_throughput, run_throughput
from tests.bench.unary import UnaryParams, format_unary, run_unary
from tests.bench.vs_sdk import VsSdkParams, format_vs_sdk, run_vs_sdk

__all__ = ["BASIN", "main", "start"]  # BASIN and start: load.py uses them from here

SECTIONS = ("throughput", "unary", "fanout", "vs_sdk")
ONLY = (*SECTIONS, "history")  # history runs when asked (--only history): its own figures are in the README


def header() -> str:
    libs = ", ".join(f"{name} {version(name)}" for name in ("grpcio", "aiohttp", "protobuf", "uvloop"))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"s2-sidecar benchmark, {time.strftime('%Y-%m-%d %H:%M')}: python {platform.python_version()}, {libs}; "
        f"{os.cpu_count()} CPUs, load average {load}"
    )


async def run(opts: argparse.Namespace) -> None:
    sections = [opts.only] if opts.only else list(SECTIONS)
    print(header(), flush=True)
    started = time.monotonic()
    for name in sections:
        t0 = time.monotonic()
        if name == "throughput":
            sizes = tuple(int(s) for s in opts.sizes.split(","))
            tp = ThroughputParams(records=opts.records, sizes=sizes, repeats=opts.repeats)
            text = format_throughput(await run_throughput(tp))
        elif name == "unary":
            text = format_unary(await run_unary(UnaryParams(callers=opts.callers, repeats=opts.repeats)))
        elif name == "history":
            text = format_history(await run_history(HistoryParams()))
        elif name == "vs_sdk":
            sizes = tuple(int(s) for s in opts.sizes.split(","))
            vp = VsSdkParams(records=opts.records, sizes=sizes, runs=opts.repeats, repeats=opts.repeats)
            text = format_vs_sdk(await run_vs_sdk(vp))
        else:
            followers = tuple(int(n) for n in opts.followers.split(","))
            fp = FanoutParams(followers=followers, window=opts.window, repeats=opts.repeats)
            text = format_fanout(await run_fanout(fp))
        print(f"\n{text}\n   ({name}: {time.monotonic() - t0:.0f} s)", flush=True)
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=ONLY, help="run one section")
    parser.add_argument("--repeats", type=int, default=3, help="samples per figure (the median is printed)")
    parser.add_argument("--records", type=int, default=200_000, help="throughput: records per ReadSession")
    parser.add_argument("--sizes", default="100,1024", help="throughput: record body sizes in bytes, comma-separated")
    parser.add_argument("--callers", type=int, default=50, help="unary: concurrent callers")
    parser.add_argument("--followers", default="1,10,100,1000", help="fan-out: follower counts, comma-separated")
    parser.add_argument("--window", type=float, default=5.0, help="fan-out: seconds per measurement window")
    opts = parser.parse_args()
    import uvloop

    uvloop.run(run(opts))


if __name__ == "__main__":
    main()
