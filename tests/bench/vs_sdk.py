"""In one run: the sidecar against S2's own Python SDK, HTTP/2 vs HTTP/1.1 upstream, and the
emulator before and after its HTTP/2 front.

    .venv/bin/python -m tests.bench.vs_sdk [--records 200000] [--before-tree /tmp/pre-h2] ...
    .venv/bin/python -m tests.bench.bench --only vs_sdk

1. What a Python user would otherwise pick: an app reading `records` records from seq_num 0 with
   typed records, (a) with the project's client (`s2sidecar_client`, `read_session`) through the
   sidecar with `--upstream-protocol http1` and `http2`, (b) with `s2-sdk`'s own `read_session`
   straight to the emulator over h2c. Each reader is its own process (`vs_sdk_reader.py`; the SDK
   in its own venv), plain asyncio; one warm-up run, then the median of `runs`.
2. Catch-up through the sidecar, http2/http1 (a grpc.aio stub in this process, as
   `h2_upstream.py`), and the upstream TCP connections 1,000 concurrent live sessions take with the
   sidecar's upstream client (`UpstreamClient`, in this process) over HTTP/2 and HTTP/1.1
   (its `pool_stats`, and for HTTP/2 the emulator's `/_emulator/http2/connections` too).
3. The emulator's own direct figures over HTTP/1.1 (aiohttp from this process, as the throughput
   section's "direct" row: s2s catch-up records/s; and CheckTail calls/s with 50 callers), for the
   emulator of this checkout and of `--before-commit` (a git worktree at `--before-tree`, made
   if missing), measured alternately; median of `repeats`.

Every process runs with the Dockerfile's malloc settings (`common.MALLOC_ENV`; this one re-executes
itself with them when run as a module). Compare ratios within one run; absolute figures drift across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.upstream import UpstreamProtocol
from tests.bench.common import BASIN, MALLOC_ENV, ROOT, fill, fmt, median, start_emulator, start_sidecar, stop, table
from tests.bench.h2_upstream import catch_up, many_sessions
from tests.bench.throughput import direct_session
from tests.bench.unary import concurrent

READER = Path(__file__).with_name("vs_sdk_reader.py")
CLIENT_SRC = ROOT / "clients" / "python" / "src"
PRE_H2_COMMIT = "34ddf8a"


@dataclass
class VsSdkParams:
    records: int = 200_000
    sizes: tuple[int, ...] = (100, 1024)
    runs: int = 3  # timed runs per reader process (median)
    sessions: int = 1000
    repeats: int = 3  # samples per emulator figure (median)
    min_seconds: float = 2.0  # per emulator sample
    callers: int = 50
    before_tree: Path | None = Path("/tmp/pre-h2")  # None: compare this checkout's emulator with itself
    before_commit: str = PRE_H2_COMMIT
    sdk_python: Path | None = None  # default: the s2-sdk venv of tests/emulator/test_s2_sdk.py


@dataclass
class VsSdkResult:
    params: VsSdkParams
    sdk_version: str = ""
    reads: list[tuple[int, float, float, float]] = field(default_factory=list)  # size, http1, http2, sdk
    catchup: list[tuple[int, float, float]] = field(default_factory=list)  # size, http1, http2
    connections: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # proto: conns, sessions, hook
    emulator: list[tuple[str, float, float]] = field(default_factory=list)  # what, before, after
    before_label: str = ""


def sdk_interpreter(p: VsSdkParams) -> Path:
    if p.sdk_python is not None:
        return p.sdk_python
    from tests.emulator.test_s2_sdk import sdk_python  # makes .tools/s2-sdk-venv on first use

    return sdk_python()


def before_tree(p: VsSdkParams) -> Path:
    if p.before_tree is None:
        return ROOT
    if not (p.before_tree / "sidecar").is_dir():
        subprocess.run(["git", "worktree", "add", str(p.before_tree), p.before_commit], cwd=ROOT, check=True)
    return p.before_tree


async def run_reader(
    python: Path, mode: str, target: str, stream: str, records: int, runs: int, env: dict[str, str], *pre: str
) -> dict[str, Any]:
    """What one reader process printed (`vs_sdk_reader.py`); `pre`: interpreter options before the script."""
    proc = await asyncio.create_subprocess_exec(
        str(python), *pre, str(READER), mode, target, BASIN, stream, str(records), str(runs),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **MALLOC_ENV, **env}, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} reader failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def reader(python: Path, mode: str, target: str, stream: str, p: VsSdkParams, env: dict[str, str]) -> float:
    """Median records/s of one reader process."""
    return median((await run_reader(python, mode, target, stream, p.records, p.runs, env))["rates"])


async def h2_hook_connections(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/_emulator/http2/connections") as resp:
        return len((await resp.json())["connections"])


async def emulator_figures(r: VsSdkResult, http: aiohttp.ClientSession) -> None:
    """Section 3: direct catch-up and CheckTail calls/s, emulator before vs after, alternately."""
    p = r.params
    tree = before_tree(p)
    r.before_label = p.before_commit if p.before_tree is not None else "this checkout (again)"
    emus = [await start_emulator(tree), await start_emulator()]
    try:
        for _, url in emus:
            for size in p.sizes:
                await fill(http, url, f"direct-{size}", p.records, size)
            await fill(http, url, "direct-tail", 1, 10)

        async def catchup_rate(url: str, stream: str) -> float:
            t0, n = time.perf_counter(), 0
            while True:
                got, _ = await direct_session(http, url, stream, p.records)
                n += got
                if time.perf_counter() - t0 >= p.min_seconds:
                    return n / (time.perf_counter() - t0)

        async def tail_rate(url: str) -> float:
            async def call(_: int) -> None:
                async with http.get(f"{url}/v1/streams/direct-tail/records/tail", headers={"s2-basin": BASIN}) as resp:
                    assert resp.status == 200, resp.status
                    await resp.read()

            t0 = time.perf_counter()
            n = await concurrent(call, p.callers, p.min_seconds)
            return n / (time.perf_counter() - t0)

        cases = [(f"direct catch-up, {size} B records (records/s)", "size", size) for size in p.sizes]
        cases.append((f"direct CheckTail, {p.callers} callers (calls/s)", "tail", 0))
        for what, kind, size in cases:
            samples: list[list[float]] = [[], []]
            for _, url in emus:  # warm up
                await (catchup_rate(url, f"direct-{size}") if kind == "size" else tail_rate(url))
            for _ in range(p.repeats):
                for (_, url), acc in zip(emus, samples, strict=True):
                    acc.append(await (catchup_rate(url, f"direct-{size}") if kind == "size" else tail_rate(url)))
            r.emulator.append((what, median(samples[0]), median(samples[1])))
    finally:
        for proc, _ in emus:
            await stop(proc)


async def run_vs_sdk(p: VsSdkParams) -> VsSdkResult:
    r = VsSdkResult(p)
    sdk = sdk_interpreter(p)
    r.sdk_version = subprocess.run(  # noqa: ASYNC221 (once, before anything is measured)
        [str(sdk), "-c", "from importlib.metadata import version; print(version('s2-sdk'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    emulator, url = await start_emulator()
    sidecars: dict[str, tuple[asyncio.subprocess.Process, str]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            for size in p.sizes:
                await fill(http, url, f"bench-{size}", p.records, size)
            await fill(http, url, "bench-live", 1, 10)
            for proto in ("http1", "http2"):
                sidecars[proto] = await start_sidecar(url, "--upstream-protocol", proto)

            # 1. the project's client through the sidecar vs s2-sdk direct
            client_env = {"PYTHONPATH": os.pathsep.join([str(CLIENT_SRC), os.environ.get("PYTHONPATH", "")])}
            sdk_env = {"S2_ACCOUNT_ENDPOINT": url, "S2_BASIN_ENDPOINT": url}
            for size in p.sizes:
                stream = f"bench-{size}"
                h1 = await reader(Path(sys.executable), "sidecar", sidecars["http1"][1], stream, p, client_env)
                h2 = await reader(Path(sys.executable), "sidecar", sidecars["http2"][1], stream, p, client_env)
                direct = await reader(sdk, "sdk", "-", stream, p, sdk_env)
                r.reads.append((size, h1, h2, direct))

            # 2. catch-up http2/http1 through the sidecar; connections for 1,000 sessions
            for size in p.sizes:
                rates = {}
                for proto, (_, address) in sidecars.items():
                    await catch_up(address, f"bench-{size}", min(p.records, 10_000))  # warm up
                    rates[proto] = median([await catch_up(address, f"bench-{size}", p.records) for _ in range(p.runs)])
                r.catchup.append((size, rates["http1"], rates["http2"]))
            for upstream in (UpstreamProtocol.HTTP2, UpstreamProtocol.HTTP1):
                baseline = await h2_hook_connections(http, url)  # the http2 sidecar's own connection
                seen: list[int] = []

                async def probe(seen: list[int] = seen) -> None:
                    seen.append(await h2_hook_connections(http, url))

                conns, open_sessions = await many_sessions(url, "bench-live", p.sessions, upstream, probe)
                r.connections[upstream.value] = (conns, open_sessions, seen[0] - baseline)
    finally:
        for proc, _ in sidecars.values():
            await stop(proc)
        await stop(emulator)

    # 3. the emulator before and after (its own processes, nothing else running)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        await emulator_figures(r, http)
    return r


def format_vs_sdk(r: VsSdkResult) -> str:
    p = r.params
    out = [
        f"4. What a Python user would otherwise pick: {p.records:,} records from seq_num 0, typed records, "
        f"one process per reader (plain asyncio), median of {p.runs} runs after a warm-up",
        table(
            [
                "record",
                "client+sidecar http1",
                "client+sidecar http2",
                f"s2-sdk {r.sdk_version} h2c direct",
                "http1/sdk",
                "http2/sdk",
            ],
            [
                [f"{s} B", fmt(h1), fmt(h2), fmt(d), fmt(h1 / d, ".2f") + "x", fmt(h2 / d, ".2f") + "x"]
                for s, h1, h2, d in r.reads
            ],
        ),
        "",
        f"   catch-up through the sidecar (grpc.aio stub, ReadSession of {p.records:,}), http2 vs http1 upstream",
        table(
            ["record", "http1 rec/s", "http2 rec/s", "http2/http1"],
            [[f"{s} B", fmt(h1), fmt(h2), fmt(h2 / h1, ".2f") + "x"] for s, h1, h2 in r.catchup],
        ),
        "",
        "   concurrent live upstream sessions (the sidecar's UpstreamClient) and the TCP connections they use",
        table(
            [
                "upstream",
                "sessions open",
                "TCP connections (pool_stats)",
                "new HTTP/2 connections (emulator hook)",
            ],
            [[proto, str(s), str(c), str(hook)] for proto, (c, s, hook) in r.connections.items()],
        ),
        "",
        f"   the emulator's own figures over HTTP/1.1, before ({r.before_label}) and after (this checkout), "
        f"median of {p.repeats} x >= {p.min_seconds:g} s",
        table(
            ["direct (aiohttp)", "before", "after", "after/before"],
            [[what, fmt(b), fmt(a), fmt(a / b, ".2f") + "x"] for what, b, a in r.emulator],
        ),
    ]
    return "\n".join(out)


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]:
        os.execve(
            sys.executable, [sys.executable, "-m", "tests.bench.vs_sdk", *sys.argv[1:]], {**os.environ, **MALLOC_ENV}
        )
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before-tree", default="/tmp/pre-h2", help="checkout of --before-commit ('' = this one)")
    parser.add_argument("--before-commit", default=PRE_H2_COMMIT)
    o = parser.parse_args()
    p = VsSdkParams(
        records=o.records, sizes=tuple(int(s) for s in o.sizes.split(",")), runs=o.runs, sessions=o.sessions,
        repeats=o.repeats, before_tree=Path(o.before_tree) if o.before_tree else None, before_commit=o.before_commit,
    )  # fmt: skip
    t0 = time.monotonic()
    print(format_vs_sdk(asyncio.run(run_vs_sdk(p))), f"\n   (vs_sdk: {time.monotonic() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
