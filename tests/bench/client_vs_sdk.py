"""The project's Python client through the sidecar against S2's own Python SDK reading the emulator
directly, at one record size, round after round:

    .venv/bin/python -m tests.bench.client_vs_sdk [--records 200000] [--size 100] [--rounds 5]
                                                  [--embedded] [--no-history-cache]
                                                  [--before-src DIR] [--profile DIR]

The emulator holds RECORDS records of SIZE bytes, and both readers reach it over HTTP/2 (s2-sdk
speaks nothing else; the sidecar runs with `--upstream-protocol http2`, h2c). It is its own
process (`s2-sidecar emulator`), or with `--embedded` the sidecar's embedded one (then the
sidecar's process serves s2-sdk too). The sidecar keeps its history cache (a read of the same
records within 5 s is served from memory) unless `--no-history-cache`: then every read of the
client goes to the emulator over HTTP/2 as the SDK's does. Each round starts one reader process of each,
`vs_sdk_reader.py` (a warm-up read, then one timed `read_session` of all RECORDS from seq_num 0
with a count limit, every body touched), the SDK first in odd rounds and the client first in even
ones: (a) s2-sdk straight to the emulator, (b) `s2sidecar_client` through the sidecar. Prints
each round's records/s, the ratio b/a, and CPU microseconds per record: the reader's own for its
timed read, the sidecar's and the emulator's over the reader's whole process (warm-up included,
so divided by twice the records). `--before-src` adds a third reader each round: the client of
another checkout (its clients/python/src, e.g. `git archive HEAD~1 clients/python/src | tar -x -C
/tmp/before`), to compare a change with what it replaces in one run.

`--profile DIR` then runs one more client reader under cProfile (DIR/client.prof) and, when
py-spy is on PATH, samples the sidecar meanwhile (DIR/sidecar.txt, py-spy's raw format).
Machines here are shared: compare the ratio of one round, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sidecar.testing import free_port
from tests.bench.common import BASIN, MALLOC_ENV, cpu_seconds, fill, start, start_emulator, stop
from tests.bench.vs_sdk import CLIENT_SRC, run_reader

SIDECAR_ARGS = ("--admin-listen", "off", "--log-level", "warning", "--upstream-protocol", "http2")


@dataclass
class Reading:
    rate: float  # records/s of the timed read
    reader_us: float  # the reader's CPU per record, timed read only
    servers_us: tuple[float, ...]  # sidecar, emulator (an embedded emulator counts as the sidecar)


async def start_servers(embedded: bool, *sidecar_args: str) -> tuple[list[asyncio.subprocess.Process], str, str]:
    """(processes: sidecar first, emulator URL, sidecar address)."""
    grpc_port = free_port()
    if embedded:
        http_port = free_port()
        sidecar = await start(
            "--listen", f"127.0.0.1:{grpc_port}", "--emulator-listen", f"127.0.0.1:{http_port}",
            "--default-basin", BASIN, *SIDECAR_ARGS, *sidecar_args, ready="serving gRPC",
        )  # fmt: skip
        return [sidecar], f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    emulator, url = await start_emulator()
    sidecar = await start(
        "--listen", f"127.0.0.1:{grpc_port}", "--basin-endpoint", f"{url}/v1", *SIDECAR_ARGS, *sidecar_args,
        ready="serving gRPC",
    )  # fmt: skip
    return [sidecar, emulator], url, f"127.0.0.1:{grpc_port}"


async def read_once(
    python: Path, mode: str, target: str, stream: str, n: int, env: dict[str, str], servers: list[int], *pre: str
) -> Reading:
    before = [cpu_seconds(pid) for pid in servers]
    result = await run_reader(python, mode, target, stream, n, 1, env, *pre)
    servers_us = tuple(1e6 * (cpu_seconds(pid) - c0) / (2 * n) for pid, c0 in zip(servers, before, strict=True))
    return Reading(result["rates"][0], 1e6 * result["cpu"][0] / n, servers_us)


def sdk_python() -> Path:
    from tests.emulator.test_s2_sdk import sdk_python as make  # .tools/s2-sdk-venv, made on first use

    return make()


def client_env(src: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}


def describe(r: Reading, embedded: bool) -> str:
    names = ("sidecar+emulator",) if embedded else ("sidecar", "emulator")
    servers = ", ".join(f"{name} {us:.1f}" for name, us in zip(names, r.servers_us, strict=False))
    return f"{r.rate:>10,.0f} rec/s  (CPU us/record: reader {r.reader_us:.1f}, {servers})"


async def run(o: argparse.Namespace) -> None:
    sdk = sdk_python()
    procs, url, address = await start_servers(
        o.embedded, *(["--history-cache-bytes", "0"] if o.no_history_cache else [])
    )
    pids = [p.pid for p in procs]
    stream = f"bench-{o.size}"
    sdk_env = {"S2_ACCOUNT_ENDPOINT": url, "S2_BASIN_ENDPOINT": url}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            await fill(http, url, stream, o.records, o.size)
        print(
            f"{o.records:,} x {o.size} B, {'embedded' if o.embedded else 'separate'} emulator over h2c, "
            f"sidecar --upstream-protocol http2"
            f"{', no history cache' if o.no_history_cache else ''}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        readers = {
            "s2-sdk": (sdk, "sdk", "-", sdk_env),
            "client": (Path(sys.executable), "sidecar", address, client_env(CLIENT_SRC)),
        }
        if o.before_src:
            readers["before"] = (Path(sys.executable), "sidecar", address, client_env(Path(o.before_src)))
        ratios: dict[str, list[float]] = {name: [] for name in readers if name != "s2-sdk"}
        for i in range(1, o.rounds + 1):
            order = list(readers) if i % 2 else list(reversed(readers))
            got = {}
            for name in order:
                python, mode, target, env = readers[name]
                got[name] = await read_once(python, mode, target, stream, o.records, env, pids)
            for name, acc in ratios.items():
                acc.append(got[name].rate / got["s2-sdk"].rate)
            print(f"round {i}: " + ", ".join(f"{name}/s2-sdk {acc[-1]:.2f}x" for name, acc in ratios.items()))
            for name in readers:
                print(f"  {name:<7}{describe(got[name], o.embedded)}", flush=True)
        for name, acc in ratios.items():
            print(f"median {name}/s2-sdk over {o.rounds} rounds: {statistics.median(acc):.2f}x", flush=True)
        if o.profile:
            await profile(Path(o.profile), address, stream, o.records, client_env(CLIENT_SRC), pids)
    finally:
        for proc in procs:
            await stop(proc)


async def profile(out: Path, address: str, stream: str, n: int, env: dict[str, str], pids: list[int]) -> None:
    spy = None
    if py_spy := shutil.which("py-spy"):
        spy = subprocess.Popen(  # noqa: ASYNC220 (runs beside the reader, waited for below)
            [py_spy, "record", "--pid", str(pids[0]), "--format", "raw", "--rate", "200", "-o", str(out / "sidecar.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(1)
    prof = str(out / "client.prof")
    r = await read_once(Path(sys.executable), "sidecar", address, stream, n, env, pids, "-m", "cProfile", "-o", prof)
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait(30)
    print(f"profiled client reader (cProfile slows it): {r.rate:,.0f} rec/s; files in {out}", flush=True)


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]:
        argv = [sys.executable, "-m", "tests.bench.client_vs_sdk", *sys.argv[1:]]
        os.execve(sys.executable, argv, {**os.environ, **MALLOC_ENV})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--embedded", action="store_true", help="read the sidecar's embedded emulator")
    parser.add_argument("--no-history-cache", action="store_true", help="every client read goes to the emulator")
    parser.add_argument("--before-src", metavar="DIR", help="also read with the client in DIR (a clients/python/src)")
    parser.add_argument("--profile", metavar="DIR", help="profile one more client reader (and the sidecar)")
    o = parser.parse_args()
    if o.profile:
        Path(o.profile).mkdir(parents=True, exist_ok=True)
    asyncio.run(run(o))


if __name__ == "__main__":
    main()
