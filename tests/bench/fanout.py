"""Section 3: fan-out. N apps follow one stream live through the sidecar while records are
appended at a steady rate; one upstream session should serve them all.

For each N in `followers`, a fresh sidecar (so its CPU and memory are this level's alone), and:

* this process appends `batch` records every `period` seconds to the stream (1,000 records/s by
  default), each body starting with its append time (CLOCK_MONOTONIC ns, which every process on
  the machine shares), stamped just before the append request is sent;
* N `ReadSession`s from the tail (`tail_offset=0`) run in 1-4 follower processes (`python -m
  tests.bench.fanout follow ...`, uvloop, a gRPC connection per `per_channel` followers), so the
  client side is not one process's event loop; each records, per append it receives, the time
  from the append to the moment its message arrived;
* after every follower has received records, `repeats` measurement windows of `window` seconds:
  delivery latency p50/p99/max over every (append, follower) pair appended in the window, the
  share of those delivered, the emulator's open upstream sessions (`GET /_emulator/stats`, sampled
  through the window, max), the sidecar's CPU (utime+stime from /proc, % of one core) and its
  VmRSS/VmHWM at the end of the window; also the CPU of the emulator and of the follower
  processes (sum) and the whole machine's busy share, to show who else used the 2 cores, and the
  server's CPU per message delivered. Figures are medians over the windows.

For the counts in `ceiling`, the same run against the gRPC ceiling (`ceiling.py`): a trivial
grpc.aio server with one upstream session that puts every frame on every subscriber's queue. A
sidecar needs about N x (its CPU per message) to hand one append to N apps, one after another on
its event loop, so that product against the append period is what bounds p99 here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from tests.bench.common import (
    BASIN,
    MALLOC_ENV,
    ROOT,
    CpuMeter,
    HostMeter,
    append,
    emulator_stats,
    fmt,
    median,
    memory_kb,
    percentile,
    start_ceiling,
    start_emulator,
    start_sidecar,
    stop,
    table,
)

STAMP = struct.Struct(">Q")


@dataclass
class FanoutParams:
    followers: tuple[int, ...] = (1, 10, 100, 1000)
    batch: int = 100  # records per append
    period: float = 0.1  # seconds between appends
    size: int = 100  # record body bytes
    window: float = 5.0
    repeats: int = 3
    per_channel: int = 25  # followers per gRPC connection
    report_timeout: float = 10.0  # how long after a window a follower waits for late records
    ceiling: tuple[int, ...] = (1000,)  # follower counts to also run against the gRPC ceiling
    settle: float = 1.0  # seconds between every follower having records and the first window


def client_processes(n: int) -> int:
    return 1 if n <= 10 else 2 if n <= 100 else 4


@dataclass
class FanoutRow:
    server: str  # "sidecar" or "gRPC ceiling"
    followers: int
    clients: int
    upstream_sessions: int
    delivered: float  # share of (append, follower) pairs in the window that arrived
    p50_ms: float
    p99_ms: float
    max_ms: float
    sidecar_cpu: float
    us_per_message: float  # server CPU per message delivered to an app
    rss_mib: float
    hwm_mib: float
    emulator_cpu: float
    client_cpu: float
    host_busy: float  # % of all cores busy (the whole machine)
    problems: list[str] = field(default_factory=list)


@dataclass
class FanoutResult:
    params: FanoutParams
    rows: list[FanoutRow] = field(default_factory=list)


# -- the follower process -------------------------------------------------------------------------


class Window:
    def __init__(self, t0: int, t1: int) -> None:
        self.t0, self.t1 = t0, t1
        self.samples: list[int] = []  # ns from append to arrival
        self.messages = 0  # messages with records that arrived within the window


class Follower:
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.next_seq: int | None = None
        self.last_stamp = 0
        self.gaps = 0
        self.ready = asyncio.Event()

    async def run(self, stub: stream_pb2_grpc.StreamServiceStub, stream: str, box: list[Window | None]) -> None:
        batch = self.batch
        unpack = STAMP.unpack_from
        call = stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=stream, tail_offset=0))
        async for msg in call:
            records = msg.records
            if not records:
                continue  # a heartbeat
            now = time.monotonic_ns()
            first_seq = records[0].seq_num
            if self.next_seq is not None and first_seq != self.next_seq:
                self.gaps += 1
            self.next_seq = records[-1].seq_num + 1
            window = box[0]
            if window is not None and window.t0 <= now < window.t1:
                window.messages += 1
            # Appends are `batch` records each, aligned on multiples of `batch`: one sample per append.
            for i in range((-first_seq) % batch, len(records), batch):
                stamp = unpack(records[i].body)[0]
                self.last_stamp = stamp
                if window is not None and window.t0 <= stamp < window.t1:
                    window.samples.append(now - stamp)
            self.ready.set()


async def follow_main(target: str, stream: str, n: int, batch: int, per_channel: int, report_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(math.ceil(n / per_channel))
    ]
    stubs = [stream_pb2_grpc.StreamServiceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
    box: list[Window | None] = [None]
    followers = [Follower(batch) for _ in range(n)]
    tasks = [asyncio.create_task(f.run(stubs[i // per_channel], stream, box)) for i, f in enumerate(followers)]
    waiting: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(f.ready.wait() for f in followers)))
    await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done():
            raise RuntimeError(f"a follower ended before it was ready: {t.exception()!r}")
    print("ready", flush=True)
    while line := (await reader.readline()).decode().split():
        if line[0] != "window":
            break
        window = box[0] = Window(int(line[1]), int(line[2]))
        deadline = window.t1 + int(report_timeout * 1e9)
        # Report once every follower has seen an append from after the window (or time is up).
        while time.monotonic_ns() < deadline and any(f.last_stamp < window.t1 for f in followers):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        box[0] = None
        ended = [t for t in tasks if t.done()]
        report: dict[str, Any] = {
            "samples_us": [s // 1000 for s in window.samples],
            "messages": window.messages,
            "gaps": sum(f.gaps for f in followers),
            "ended": len(ended),
            "errors": [repr(t.exception()) for t in ended[:3]],
        }
        print("result " + json.dumps(report), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close(None)


# -- the benchmark --------------------------------------------------------------------------------


class FollowerProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr: list[str] = []
        self._drain = asyncio.ensure_future(self._keep_stderr())

    async def _keep_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr = [*self.stderr[-19:], raw.decode()]

    @classmethod
    async def start(cls, target: str, stream: str, n: int, p: FanoutParams) -> FollowerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.fanout", "follow", "--target", target, "--stream", stream,
            "--n", str(n), "--batch", str(p.batch), "--per-channel", str(p.per_channel),
            "--report-timeout", str(p.report_timeout),
            limit=1 << 26, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **MALLOC_ENV}, cwd=ROOT,
        )  # fmt: skip
        return cls(proc)

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            code = await self.proc.wait()
            await asyncio.wait([self._drain], timeout=1)
            raise RuntimeError(f"follower process {self.proc.pid} exited (code {code}):\n{''.join(self.stderr)}")
        return raw.decode()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                self.send("exit\n")
                await asyncio.wait_for(self.proc.wait(), 5)
        await stop(self.proc)


class Appender:
    """`batch` records every `period` seconds on a fixed schedule, stamped just before sending."""

    def __init__(self, http: aiohttp.ClientSession, url: str, stream: str, p: FanoutParams) -> None:
        self.http, self.url, self.stream, self.p = http, url, stream, p
        self.stamps: list[int] = []
        self.late = 0  # appends that started more than a period behind schedule
        self._pad = b"x" * (p.size - STAMP.size)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        t_next = time.monotonic()
        while True:
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -self.p.period:
                self.late += 1
            stamp = time.monotonic_ns()
            body = STAMP.pack(stamp) + self._pad
            await append(self.http, self.url, self.stream, [body] * self.p.batch)
            self.stamps.append(stamp)
            t_next += self.p.period

    def in_window(self, t0: int, t1: int) -> int:
        return sum(t0 <= s < t1 for s in self.stamps)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise RuntimeError("the appender failed") from self._task.exception()


async def run_level(
    n: int, url: str, emulator_pid: int, http: aiohttp.ClientSession, p: FanoutParams, *, ceiling: bool = False
) -> FanoutRow:
    stream = f"fanout-{n}{'-ceiling' if ceiling else ''}"
    stamp0 = STAMP.pack(0) + b"x" * (p.size - STAMP.size)
    await append(http, url, stream, [stamp0] * p.batch)  # creates the stream; appends stay aligned
    sidecar, address = await (start_ceiling(url) if ceiling else start_sidecar(url))
    appender: Appender | None = None
    procs: list[FollowerProcess] = []
    windows: list[dict[str, Any]] = []
    problems: list[str] = []
    clients = min(client_processes(n), n)
    try:
        appender = Appender(http, url, stream, p)
        shares = [n // clients + (i < n % clients) for i in range(clients)]
        procs = [await FollowerProcess.start(address, stream, k, p) for k in shares]
        for fp in procs:
            line = await fp.line(120)
            assert line.strip() == "ready", line
        await asyncio.sleep(p.settle)  # every follower is live
        key = f"{BASIN}/{stream}"
        for _ in range(p.repeats):
            t0 = time.monotonic_ns() + 200_000_000
            t1 = t0 + int(p.window * 1e9)
            for fp in procs:
                fp.send(f"window {t0} {t1}\n")
            await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
            meter = CpuMeter(sidecar.pid, emulator_pid, *(fp.proc.pid for fp in procs))
            host = HostMeter()
            meter.start()
            host.start()
            sessions: list[int] = []
            while (left := (t1 - time.monotonic_ns()) / 1e9) > 0:
                stats = await emulator_stats(http, url)
                sessions.append(stats["open_sessions"].get(key, 0))
                await asyncio.sleep(min(0.5, left))
            cpu = meter.stop()
            busy = host.stop()
            rss, hwm = memory_kb(sidecar.pid)
            samples: list[int] = []
            messages = 0
            for fp in procs:
                line = await fp.line(p.report_timeout + 30)
                assert line.startswith("result "), line
                report = json.loads(line[len("result ") :])
                samples += report["samples_us"]
                messages += report["messages"]
                if report["gaps"] or report["ended"]:
                    problems.append(f"{report['gaps']} gaps, {report['ended']} sessions ended {report['errors']}")
            expected = appender.in_window(t0, t1) * n
            windows.append(
                {
                    "sessions": max(sessions, default=0),
                    "delivered": len(samples) / expected if expected else math.nan,
                    "p50": percentile(samples, 50) / 1000,
                    "p99": percentile(samples, 99) / 1000,
                    "max": max(samples, default=0) / 1000,
                    "sidecar_cpu": cpu[0],
                    "us_per_message": cpu[0] / 100 * p.window / messages * 1e6 if messages else math.nan,
                    "emulator_cpu": cpu[1],
                    "client_cpu": sum(cpu[2:]),
                    "host_busy": busy,
                    "rss": rss / 1024,
                    "hwm": hwm / 1024,
                }
            )
        if appender.late:
            problems.append(f"the appender fell behind schedule {appender.late} times")
    finally:
        for fp in procs:
            await fp.close()
        if appender is not None:
            await appender.close()
        await stop(sidecar)

    def med(k: str) -> float:
        return median([w[k] for w in windows])

    return FanoutRow(
        "gRPC ceiling" if ceiling else "sidecar", n, clients, max(w["sessions"] for w in windows), med("delivered"), med("p50"), med("p99"), med("max"),
        med("sidecar_cpu"), med("us_per_message"), med("rss"), max(w["hwm"] for w in windows), med("emulator_cpu"), med("client_cpu"), med("host_busy"),
        problems,
    )  # fmt: skip


async def run_fanout(p: FanoutParams) -> FanoutResult:
    result = FanoutResult(p)
    emulator, url = await start_emulator()
    try:
        async with aiohttp.ClientSession() as http:
            for n in p.followers:
                result.rows.append(await run_level(n, url, emulator.pid, http, p))
            for n in p.ceiling:
                result.rows.append(await run_level(n, url, emulator.pid, http, p, ceiling=True))
    finally:
        await stop(emulator)
    return result


def _cells(x: FanoutRow) -> list[str]:
    return [
        x.server, f"{x.followers:,}", str(x.clients), str(x.upstream_sessions), fmt(100 * x.delivered, ".1f"),
        fmt(x.p50_ms, ".1f"), fmt(x.p99_ms, ".1f"), fmt(x.max_ms, ".1f"), fmt(x.sidecar_cpu), fmt(x.us_per_message),
        fmt(x.rss_mib, ".0f"), fmt(x.hwm_mib, ".0f"), fmt(x.emulator_cpu), fmt(x.client_cpu), fmt(x.host_busy),
    ]  # fmt: skip


def format_fanout(r: FanoutResult) -> str:
    p = r.params
    rate = p.batch / p.period
    head = (
        f"3. Fan-out: N ReadSessions from the tail of one stream; {p.batch} x {p.size} B records appended every "
        f"{p.period * 1000:g} ms ({rate:,.0f} records/s);\n"
        f"   {p.window:g} s windows, median of {p.repeats}; latency from append (stamped before the request) to the "
        "app's message; a fresh sidecar per N;\n"
        "   upstream = emulator open_sessions for the stream (max); CPU = % of one core (clients: the follower "
        "processes summed);\n"
        "   us/msg = server CPU per message delivered to an app; host busy = % of all cores busy on the machine"
    )
    rows = [_cells(x) for x in r.rows]
    header = [
        "server", "followers", "clients", "upstream", "delivered %", "p50 ms", "p99 ms", "max ms", "server CPU%",
        "us/msg", "RSS MiB", "HWM MiB", "emu CPU%", "client CPU%", "host busy%",
    ]  # fmt: skip
    lines = [head, table(header, rows)]
    lines += [f"   problem at {x.followers}: {msg}" for x in r.rows for msg in x.problems]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="a follower process of the fan-out benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("follow")
    f.add_argument("--target", required=True)
    f.add_argument("--stream", required=True)
    f.add_argument("--n", type=int, required=True)
    f.add_argument("--batch", type=int, required=True)
    f.add_argument("--per-channel", type=int, default=25)
    f.add_argument("--report-timeout", type=float, default=10.0)
    opts = parser.parse_args()
    import uvloop

    uvloop.run(follow_main(opts.target, opts.stream, opts.n, opts.batch, opts.per_channel, opts.report_timeout))


if __name__ == "__main__":
    main()
