"""What the benchmark sections share: child processes, /proc measurements, percentiles, tables.

Every server (emulator, sidecar, gRPC ceiling) and every follower client runs in its own process,
started from the repository root with the Dockerfile's glibc malloc settings (`MALLOC_ENV`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.testing import free_port
from sidecar.types import AppendRecord
from sidecar.wire.protobuf import encode_append_input

BASIN = "bench-basin"
ROOT = Path(__file__).resolve().parents[2]  # the repository: children run `-m sidecar` from here
# The Dockerfile's MALLOC_*: glibc tuned for ~1 MiB buffers. Without them a direct client's 1 KiB
# catch-up was bimodal between runs (0.39 M or 1.9 M records/s), so ratios meant little.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4194304",
    "MALLOC_TRIM_THRESHOLD_": "67108864",
    "MALLOC_TOP_PAD_": "16777216",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------------


async def start(
    *args: str, ready: str, module: str = "sidecar", env: dict[str, str] | None = None, cwd: Path = ROOT
) -> asyncio.subprocess.Process:
    """`python -m MODULE ARGS` with the malloc settings (plus `env`), run from `cwd` (the repository,
    or another checkout of it); returns once a line contains `ready`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **MALLOC_ENV, **(env or {})}, cwd=cwd,
    )  # fmt: skip
    assert proc.stdout is not None
    seen: list[str] = []
    while True:
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        except BaseException:
            await stop(proc)
            raise
        if not line:
            await stop(proc)
            raise RuntimeError(f"{module} {args} exited before it was ready:\n{''.join(seen[-20:])}")
        seen.append(line)
        if ready in line:
            asyncio.get_running_loop().create_task(proc.stdout.read())  # keep draining its output
            return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@dataclass
class Servers:
    emulator_url: str
    emulator: asyncio.subprocess.Process
    sidecar: asyncio.subprocess.Process | None = None
    sidecar_address: str = ""
    ceiling: asyncio.subprocess.Process | None = None
    ceiling_address: str = ""


async def start_emulator(cwd: Path = ROOT) -> tuple[asyncio.subprocess.Process, str]:
    """The emulator of the checkout at `cwd` (default: this one)."""
    port = free_port()
    proc = await start("emulator", "--listen", f"127.0.0.1:{port}", "--basin", BASIN, ready="http://", cwd=cwd)
    return proc, f"http://127.0.0.1:{port}"


async def start_sidecar(emulator_url: str, *extra: str, cwd: Path = ROOT) -> tuple[asyncio.subprocess.Process, str]:
    """The sidecar of the checkout at `cwd` (default: this one) reading from `emulator_url`."""
    port = free_port()
    proc = await start(
        "--listen", f"127.0.0.1:{port}", "--basin-endpoint", f"{emulator_url}/v1", "--admin-listen", "off",
        "--log-level", "warning", *extra, ready="serving gRPC", cwd=cwd,
    )  # fmt: skip
    return proc, f"127.0.0.1:{port}"


async def start_ceiling(emulator_url: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    proc = await start(
        "--listen", f"127.0.0.1:{port}", "--emulator", emulator_url, ready="serving", module="tests.bench.ceiling"
    )
    return proc, f"127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def servers(*, sidecar: bool = True, ceiling: bool = False) -> AsyncIterator[Servers]:
    """The emulator, and the sidecar and the gRPC ceiling server if asked, each its own process."""
    emulator, url = await start_emulator()
    s = Servers(url, emulator)
    try:
        if sidecar:
            s.sidecar, s.sidecar_address = await start_sidecar(url)
        if ceiling:
            s.ceiling, s.ceiling_address = await start_ceiling(url)
        yield s
    finally:
        for proc in (s.ceiling, s.sidecar, s.emulator):
            if proc is not None:
                await stop(proc)


# -- measurements ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class CpuMeter:
    """CPU used by some processes (by pid; 0 = this process) between `start()` and `stop()`, as
    % of one core of wall time."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self._t0 = 0.0
        self._c0: list[float] = []
        self.percent: list[float] = []

    @staticmethod
    def _cpu(pid: int) -> float:
        return cpu_seconds(os.getpid() if pid == 0 else pid)

    def start(self) -> None:
        self._t0 = asyncio.get_running_loop().time()
        self._c0 = [self._cpu(p) for p in self.pids]

    def stop(self) -> list[float]:
        wall = asyncio.get_running_loop().time() - self._t0
        self.percent = [100 * (self._cpu(p) - c0) / wall for p, c0 in zip(self.pids, self._c0, strict=True)]
        return self.percent


class HostMeter:
    """The whole machine's busy share (all cores, from /proc/stat) between `start()` and `stop()`:
    100 means no core was idle. Includes the kernel's loopback networking and other tenants' work."""

    def __init__(self) -> None:
        self._busy0 = self._total0 = 0

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
        return total - idle, total

    def start(self) -> None:
        self._busy0, self._total0 = self._read()

    def stop(self) -> float:
        busy, total = self._read()
        return 100 * (busy - self._busy0) / max(1, total - self._total0)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


# -- the emulator ---------------------------------------------------------------------------------


async def emulator_stats(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/_emulator/stats") as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def append(http: aiohttp.ClientSession, url: str, stream: str, bodies: Sequence[bytes]) -> None:
    async with http.post(
        f"{url}/v1/streams/{stream}/records",
        data=encode_append_input([AppendRecord(body=b) for b in bodies]),
        headers={"s2-basin": BASIN, "content-type": "application/protobuf"},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def fill(http: aiohttp.ClientSession, url: str, stream: str, n: int, size: int) -> None:
    """Append `n` records of `size` bytes, 1000 per request (creates the stream)."""
    body = b"x" * size
    for lo in range(0, n, 1000):
        await append(http, url, stream, [body] * min(1000, n - lo))


# -- output ---------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns right-aligned except the first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [str(r[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fmt(value: float, spec: str = ",.0f") -> str:
    return "-" if math.isnan(value) else format(value, spec)
