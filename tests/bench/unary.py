"""Section 2: unary calls. `Read` and `CheckTail` through the sidecar, cached and uncached, against
the gRPC ceiling (`ceiling.py`: a trivial grpc.aio server answering the same shapes from memory).

* calls/s: `callers` concurrent callers in this process (one channel, uvloop) for `seconds`, median
  of `repeats`, the cases measured round robin; with the server's CPU over the sample (% of one
  core and µs per call), the emulator's requests per call (0 = answered from the sidecar's
  memory), this client's CPU and the whole machine's busy share;
* p50 / p99: `sequential` calls one after another, medians over `repeats`.

Cases: `CheckTail` with a large `max_staleness_ms` (the tail cache answers), with
`max_staleness_ms=0` on one stream per caller (every call goes upstream) and on one stream for all
(concurrent calls share one upstream request: single flight); `Read` of 10 x 100 B records from a
random position (every call goes upstream); the ceiling's `CheckTail` and `Read`.

Long-polls: `lp_callers` callers each wait at the tail of one stream with `Read(wait=30)` while a
record is appended `lp_rate` times a second (its append time, CLOCK_MONOTONIC, in the body), and
read on from the next seq_num after each answer. Identical callers share one upstream long-poll;
"distinct" callers differ only in `count`, so each has its own. Reported: answers/s, append-to-
answer latency, and upstream reads per append.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from tests.bench.ceiling import UNARY_READ_COUNT, UNARY_READ_SIZE
from tests.bench.common import (
    BASIN,
    CpuMeter,
    HostMeter,
    append,
    emulator_stats,
    fill,
    fmt,
    median,
    percentile,
    servers,
    table,
)

READ_STREAM_RECORDS = 10_000
STAMP = struct.Struct(">Q")


@dataclass
class UnaryParams:
    callers: int = 50
    seconds: float = 1.5
    warmup: float = 0.5
    sequential: int = 1000
    repeats: int = 3
    lp_callers: int = 100
    lp_rate: float = 10.0
    lp_seconds: float = 3.0
    lp_warmup: float = 0.5  # seconds of appends before a long-poll window starts


@dataclass
class UnaryRow:
    what: str
    rate: float  # calls/s with `callers` concurrent callers
    ceiling: float  # the ceiling's calls/s for the same method (NaN for the ceiling rows)
    p50_ms: float
    p99_ms: float
    server_cpu: float  # % of one core
    cpu_us_per_call: float
    upstream_per_call: float
    client_cpu: float
    host_busy: float  # % of all cores busy on the machine


@dataclass
class LongPollRow:
    what: str
    answers: float  # answers with records, per second
    p50_ms: float
    p99_ms: float
    upstream_per_append: float
    sidecar_cpu: float


@dataclass
class UnaryResult:
    params: UnaryParams
    rows: list[UnaryRow] = field(default_factory=list)
    long_polls: list[LongPollRow] = field(default_factory=list)


Call = Callable[[int], Awaitable[object]]


async def concurrent(call: Call, callers: int, seconds: float) -> int:
    """Calls made by `callers` closed-loop callers in `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller(i: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call(i)
            done += 1

    await asyncio.gather(*(caller(i) for i in range(callers)))
    return done


async def sequential(call: Call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call(0)
        out.append(time.perf_counter() - t0)
    return out


@dataclass
class Samples:
    rates: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    per_call: list[float] = field(default_factory=list)
    upstream: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    host: list[float] = field(default_factory=list)


async def sample(
    call: Call, server_pid: int, http: aiohttp.ClientSession, url: str, p: UnaryParams, s: Samples
) -> None:
    """One calls/s sample (with CPU and upstream requests) and one latency sample."""
    before = (await emulator_stats(http, url))["requests_total"]
    meter, host = CpuMeter(server_pid, 0), HostMeter()
    meter.start()
    host.start()
    t0 = time.perf_counter()
    n = await concurrent(call, p.callers, p.seconds)
    elapsed = time.perf_counter() - t0
    server, mine = meter.stop()
    s.host.append(host.stop())
    after = (await emulator_stats(http, url))["requests_total"]
    s.rates.append(n / elapsed)
    s.cpus.append(server)
    s.per_call.append(server / 100 * elapsed / n * 1e6)
    s.upstream.append((after - before) / n)
    s.client.append(mine)
    lat = await sequential(call, p.sequential)
    s.p50s.append(percentile(lat, 50) * 1000)
    s.p99s.append(percentile(lat, 99) * 1000)


async def long_poll(
    stub: stream_pb2_grpc.StreamServiceStub,
    http: aiohttp.ClientSession,
    url: str,
    stream: str,
    *,
    identical: bool,
    sidecar_pid: int,
    p: UnaryParams,
) -> tuple[float, list[float], float, float]:
    """One sample: (answers/s, latencies in s, upstream reads per append, sidecar CPU %), over a
    window of `lp_seconds` that starts `lp_warmup` after the callers, on one steady append schedule."""
    await append(http, url, stream, [STAMP.pack(time.monotonic_ns())])
    tail = (await stub.CheckTail(pb.CheckTailRequest(basin=BASIN, stream=stream, max_staleness_ms=0))).tail.seq_num
    t0 = time.monotonic_ns() + int(p.lp_warmup * 1e9)
    t1 = t0 + int(p.lp_seconds * 1e9)
    latencies: list[float] = []
    answers = 0
    stop = asyncio.Event()

    async def caller(i: int) -> None:
        nonlocal answers
        next_seq = tail
        count = None if identical else 1000 - i
        while not stop.is_set():
            resp = await stub.Read(pb.ReadRequest(basin=BASIN, stream=stream, seq_num=next_seq, count=count, wait=30))
            now = time.monotonic_ns()
            if resp.records:
                answers += t0 <= now < t1
                for r in resp.records:
                    stamp = STAMP.unpack_from(r.body)[0]
                    if t0 <= stamp < t1:
                        latencies.append((now - stamp) / 1e9)
                next_seq = resp.records[-1].seq_num + 1

    async def appender() -> int:
        """Appends on a steady schedule until the window's end; returns those within the window."""
        period = int(1e9 / p.lp_rate)
        t_next, in_window = time.monotonic_ns(), 0
        while t_next < t1:
            await asyncio.sleep(max(0, t_next - time.monotonic_ns()) / 1e9)
            stamp = time.monotonic_ns()
            await append(http, url, stream, [STAMP.pack(stamp)])
            in_window += t0 <= stamp < t1
            t_next += period
        return in_window

    async def upstream_reads() -> int:
        stats = await emulator_stats(http, url)
        n: int = stats["requests"].get(f"{BASIN}/{stream}", {}).get("read", 0)
        return n

    callers = [asyncio.create_task(caller(i)) for i in range(p.lp_callers)]
    appending = asyncio.create_task(appender())
    await asyncio.sleep((t0 - time.monotonic_ns()) / 1e9)
    before = await upstream_reads()
    meter = CpuMeter(sidecar_pid)
    meter.start()
    await asyncio.sleep((t1 - time.monotonic_ns()) / 1e9)
    after = await upstream_reads()
    (cpu,) = meter.stop()
    appends = await appending
    await asyncio.sleep(0.3)  # the window's last answers
    stop.set()
    await append(http, url, stream, [STAMP.pack(time.monotonic_ns())])  # wakes every caller to see `stop`
    await asyncio.wait(callers, timeout=5)
    for t in callers:
        t.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    return answers / p.lp_seconds, latencies, (after - before) / max(1, appends), cpu


async def run_unary(p: UnaryParams) -> UnaryResult:
    result = UnaryResult(p)
    rng = random.Random(5)
    async with (
        servers(sidecar=True, ceiling=True) as s,
        aiohttp.ClientSession() as http,
        grpc.aio.insecure_channel(s.sidecar_address) as side_ch,
        grpc.aio.insecure_channel(s.ceiling_address) as ceil_ch,
    ):
        assert s.sidecar is not None and s.ceiling is not None
        side = stream_pb2_grpc.StreamServiceStub(side_ch)  # type: ignore[no-untyped-call]
        ceil = stream_pb2_grpc.StreamServiceStub(ceil_ch)  # type: ignore[no-untyped-call]
        url = s.emulator_url
        tails = [f"tail-{i}" for i in range(p.callers)]
        for name in tails:
            await fill(http, url, name, 1, 16)
        await fill(http, url, "unary-read", READ_STREAM_RECORDS, UNARY_READ_SIZE)

        def check_tail(stub: stream_pb2_grpc.StreamServiceStub, staleness_ms: int, per_caller: bool) -> Call:
            def call(i: int) -> Awaitable[object]:
                stream = tails[i] if per_caller else tails[0]
                req = pb.CheckTailRequest(basin=BASIN, stream=stream, max_staleness_ms=staleness_ms)
                answer: Awaitable[object] = stub.CheckTail(req)
                return answer

            return call

        def read(stub: stream_pb2_grpc.StreamServiceStub) -> Call:
            def call(i: int) -> Awaitable[object]:
                seq = rng.randrange(READ_STREAM_RECORDS - UNARY_READ_COUNT)
                req = pb.ReadRequest(basin=BASIN, stream="unary-read", seq_num=seq, count=UNARY_READ_COUNT)
                answer: Awaitable[object] = stub.Read(req)
                return answer

            return call

        cases: list[tuple[str, Call, int]] = [
            ("CheckTail ceiling (trivial server)", check_tail(ceil, 0, False), s.ceiling.pid),
            ("CheckTail cached (max_staleness_ms=60000)", check_tail(side, 60_000, False), s.sidecar.pid),
            ("CheckTail uncached (max_staleness_ms=0), a stream per caller", check_tail(side, 0, True), s.sidecar.pid),
            ("CheckTail max_staleness_ms=0, one stream (single flight)", check_tail(side, 0, False), s.sidecar.pid),
            (f"Read ceiling (trivial server, {UNARY_READ_COUNT} x {UNARY_READ_SIZE} B)", read(ceil), s.ceiling.pid),
            (f"Read {UNARY_READ_COUNT} x {UNARY_READ_SIZE} B, random start (uncached)", read(side), s.sidecar.pid),
        ]
        for _, call, _ in cases:
            await concurrent(call, p.callers, p.warmup)
        # Round robin over the cases, so drift on a shared machine hits them all alike.
        samples = [Samples() for _ in cases]
        for _ in range(p.repeats):
            for (_, call, pid), acc in zip(cases, samples, strict=True):
                await sample(call, pid, http, url, p, acc)
        ceiling = float("nan")
        for (what, _, _), x in zip(cases, samples, strict=True):
            row = UnaryRow(
                what, median(x.rates), float("nan"), median(x.p50s), median(x.p99s), median(x.cpus),
                median(x.per_call), median(x.upstream), median(x.client), median(x.host),
            )  # fmt: skip
            if "ceiling" in what:
                ceiling = row.rate
            else:
                row.ceiling = ceiling
            result.rows.append(row)

        for identical in (True, False):
            stream = f"longpoll-{'same' if identical else 'distinct'}"
            await fill(http, url, stream, 1, 8)
            polls = [
                await long_poll(side, http, url, stream, identical=identical, sidecar_pid=s.sidecar.pid, p=p)
                for _ in range(p.repeats)
            ]
            what = f"{p.lp_callers} {'identical' if identical else 'distinct'} long-polls"
            result.long_polls.append(
                LongPollRow(
                    what,
                    median([x[0] for x in polls]),
                    median([percentile(x[1], 50) * 1000 for x in polls]),
                    median([percentile(x[1], 99) * 1000 for x in polls]),
                    median([x[2] for x in polls]),
                    median([x[3] for x in polls]),
                )
            )
    return result


def _cells(x: UnaryRow) -> list[str]:
    return [
        x.what, fmt(x.rate), fmt(x.rate / x.ceiling, ".2f"), fmt(x.p50_ms, ".2f"), fmt(x.p99_ms, ".2f"),
        fmt(x.server_cpu), fmt(x.cpu_us_per_call), fmt(x.upstream_per_call, ".2f"), fmt(x.client_cpu),
        fmt(x.host_busy),
    ]  # fmt: skip


def format_unary(r: UnaryResult) -> str:
    p = r.params
    head = (
        f"2. Unary calls: calls/s with {p.callers} concurrent callers ({p.seconds:g} s samples), p50/p99 of "
        f"{p.sequential} sequential calls; median of {p.repeats}\n"
        "   server = the process answering (sidecar or ceiling); upstream/call = emulator requests per call; "
        "host busy = % of all cores busy"
    )
    rows = [_cells(x) for x in r.rows]
    header = [
        "call", "calls/s", "vs ceiling", "p50 ms", "p99 ms", "server CPU%", "CPU us/call", "upstream/call",
        "client CPU%", "host busy%",
    ]  # fmt: skip
    lp_head = (
        f"   Read long-polls at the tail of one stream: {p.lp_callers} callers, {p.lp_rate:g} appends/s of one record, "
        f"{p.lp_seconds:g} s samples, median of {p.repeats}; latency from append to answer"
    )
    lp_rows = [
        [
            x.what,
            fmt(x.answers),
            fmt(x.p50_ms, ".2f"),
            fmt(x.p99_ms, ".2f"),
            fmt(x.upstream_per_append, ".1f"),
            fmt(x.sidecar_cpu),
        ]
        for x in r.long_polls
    ]
    lp_header = ["Read(wait=30) callers", "answers/s", "p50 ms", "p99 ms", "upstream reads/append", "sidecar CPU%"]
    return "\n".join([head, table(header, rows), lp_head, table(lp_header, lp_rows)])
