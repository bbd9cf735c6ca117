"""Section 1: catch-up throughput. The sidecar against a direct aiohttp client of the same
emulator, and against the gRPC ceiling (`ceiling.py`: the same frames from memory).

A stream of `records` records is filled, then read from seq_num 0 to its end, over and over for
at least `min_seconds` per sample, by:

* direct: an s2s session over aiohttp, each frame decoded with upb (what an app does without
  the sidecar);
* sidecar `ReadSession` (the same client code as the ceiling: a grpc.aio stub, upb decode);
* gRPC ceiling `ReadSession`: a trivial grpc.aio server streaming the same frames, merged as the
  sidecar merges them, from memory;
* `Read` (1000 records a call) through the sidecar and direct (protobuf one-shot reads).

Rates are medians of `repeats` samples; CPU is % of one core over the samples (median), for the
process serving the client (sidecar, ceiling, or emulator for direct), the emulator, and this
(client) process.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import aiohttp
import grpc

from sidecar._proto.s2.v1 import records_pb2
from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from tests.bench.common import BASIN, CpuMeter, HostMeter, fill, fmt, median, servers, table

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]


@dataclass
class ThroughputParams:
    records: int = 200_000
    sizes: tuple[int, ...] = (100, 1024)
    repeats: int = 3
    min_seconds: float = 2.0


@dataclass
class ThroughputRow:
    what: str
    size: int
    rate: float  # records/s
    direct: float  # the direct client's records/s for the same method and size
    messages: float  # messages (frames) per session
    server_cpu: float  # % of one core: the process the client talks to
    emulator_cpu: float
    client_cpu: float
    host_busy: float  # % of all cores busy on the machine
    cpu_us_per_krec: float  # CPU of every process on the path (server, emulator, client) per 1000 records


@dataclass
class ThroughputResult:
    params: ThroughputParams
    rows: list[ThroughputRow] = field(default_factory=list)


async def direct_session(http: aiohttp.ClientSession, url: str, stream: str, n: int) -> tuple[int, int]:
    """What an app would do without the sidecar: an s2s session over aiohttp, decoding batches.
    Returns (records, frames)."""
    got = frames = 0
    async with http.get(
        f"{url}/v1/streams/{stream}/records",
        params={"seq_num": "0", "count": str(n)},
        headers={"s2-basin": BASIN, "content-type": "s2s/proto", "accept-encoding": "identity"},
    ) as resp:
        content = resp.content
        while got < n:
            length = int.from_bytes(await content.readexactly(3), "big")
            payload = await content.readexactly(length)
            got += len(records_pb2.ReadBatch.FromString(payload[1:]).records)
            frames += 1
    return got, frames


async def grpc_session(stub: stream_pb2_grpc.StreamServiceStub, stream: str, n: int) -> tuple[int, int]:
    got = messages = 0
    async for msg in stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=stream, seq_num=0, count=n)):
        got += len(msg.records)
        messages += 1
    return got, messages


async def direct_reads(http: aiohttp.ClientSession, url: str, stream: str, n: int) -> tuple[int, int]:
    got = calls = 0
    while got < n:
        async with http.get(
            f"{url}/v1/streams/{stream}/records",
            params={"seq_num": str(got)},
            headers={"s2-basin": BASIN, "accept": "application/protobuf"},
        ) as resp:
            got += len(records_pb2.ReadBatch.FromString(await resp.read()).records)
            calls += 1
    return got, calls


async def grpc_reads(stub: stream_pb2_grpc.StreamServiceStub, stream: str, n: int) -> tuple[int, int]:
    got = calls = 0
    while got < n:
        got += len((await stub.Read(pb.ReadRequest(basin=BASIN, stream=stream, seq_num=got))).records)
        calls += 1
    return got, calls


@dataclass
class Sample:
    rate: float
    messages: float
    cpu: list[float]
    host_busy: float
    direct: bool  # the emulator is the server: count its CPU once

    @property
    def path_cpu_us(self) -> float:
        """CPU µs per second used by every process on the path."""
        server, emulator, client = self.cpu
        return 1e4 * (server + client + (0 if self.direct else emulator))


async def sample(fn: Callable[[], Awaitable[tuple[int, int]]], pids: tuple[int, int], min_seconds: float) -> Sample:
    """Records/s, messages per run and CPU % of (server, emulator, client) over back-to-back runs
    lasting at least `min_seconds`."""
    meter, host = CpuMeter(*pids, 0), HostMeter()
    meter.start()
    host.start()
    t0 = time.perf_counter()
    records = messages = runs = 0
    while True:
        n, m = await fn()
        records, messages, runs = records + n, messages + m, runs + 1
        if time.perf_counter() - t0 >= min_seconds:
            break
    elapsed = time.perf_counter() - t0
    return Sample(records / elapsed, messages / runs, meter.stop(), host.stop(), pids[0] == pids[1])


async def run_throughput(p: ThroughputParams) -> ThroughputResult:
    result = ThroughputResult(p)
    async with (
        servers(sidecar=True, ceiling=True) as s,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http,
        grpc.aio.insecure_channel(s.sidecar_address, options=CHANNEL_OPTIONS) as side_ch,
        grpc.aio.insecure_channel(s.ceiling_address, options=CHANNEL_OPTIONS) as ceil_ch,
    ):
        assert s.sidecar is not None and s.ceiling is not None
        side = stream_pb2_grpc.StreamServiceStub(side_ch)  # type: ignore[no-untyped-call]
        ceil = stream_pb2_grpc.StreamServiceStub(ceil_ch)  # type: ignore[no-untyped-call]
        emu_pid = s.emulator.pid
        url = s.emulator_url
        for size in p.sizes:
            stream, n = f"bench-{size}", p.records
            await fill(http, url, stream, n, size)
            # Warm up: connections, upstream pools; the ceiling fetches its frames on this call.
            for stub in (side, ceil):
                await grpc_session(stub, stream, n)
            await direct_session(http, url, stream, n)
            await grpc_reads(side, stream, 1000)
            cases: list[tuple[str, Callable[[], Awaitable[tuple[int, int]]], int]] = [
                ("ReadSession direct (aiohttp s2s)", partial(direct_session, http, url, stream, n), emu_pid),
                ("ReadSession sidecar", partial(grpc_session, side, stream, n), s.sidecar.pid),
                ("ReadSession gRPC ceiling", partial(grpc_session, ceil, stream, n), s.ceiling.pid),
                ("Read 1000/call direct", partial(direct_reads, http, url, stream, n // 4), emu_pid),
                ("Read 1000/call sidecar", partial(grpc_reads, side, stream, n // 4), s.sidecar.pid),
            ]
            # Round robin over the cases, so drift on a shared machine hits them all alike.
            samples: list[list[Sample]] = [[] for _ in cases]
            for _ in range(p.repeats):
                for (_, fn, pid), acc in zip(cases, samples, strict=True):
                    acc.append(await sample(fn, (pid, emu_pid), p.min_seconds))
            direct = 0.0
            for (what, _, _), acc in zip(cases, samples, strict=True):
                rate = median([x.rate for x in acc])
                if "direct" in what:
                    direct = rate
                cpu = [median([x.cpu[i] for x in acc]) for i in range(3)]
                messages = median([x.messages for x in acc])
                busy = median([x.host_busy for x in acc])
                path_cpu = median([x.path_cpu_us / x.rate * 1000 for x in acc])
                row = ThroughputRow(what, size, rate, direct, messages, cpu[0], cpu[1], cpu[2], busy, path_cpu)
                result.rows.append(row)
    return result


def _cells(x: ThroughputRow) -> list[str]:
    return [
        x.what, f"{x.size} B", fmt(x.rate), fmt(x.rate * x.size / 1e6, ".0f"), fmt(x.rate / x.direct, ".2f"),
        fmt(x.messages, ".0f"), fmt(x.server_cpu), fmt(x.emulator_cpu), fmt(x.client_cpu), fmt(x.host_busy), fmt(x.cpu_us_per_krec),
    ]  # fmt: skip


def format_throughput(r: ThroughputResult) -> str:
    p = r.params
    head = (
        f"1. Catch-up throughput: {p.records:,} records per ReadSession ({p.records // 4:,} per Read loop), "
        f"runs back to back for >= {p.min_seconds:g} s per sample, median of {p.repeats}\n"
        "   CPU: % of one core for the process serving the client (sidecar, ceiling, or the emulator for direct), "
        "the emulator, and the client;\n"
        "   host busy: % of all cores busy on the machine (processes, kernel loopback networking, other tenants);\n"
        "   CPU us/1k rec: CPU of all the processes on the path (server, emulator, client) per 1000 records"
    )
    rows = [_cells(x) for x in r.rows]
    header = [
        "path", "record", "records/s", "MB/s", "vs direct", "msgs/run", "server CPU%", "emu CPU%", "client CPU%",
        "host busy%", "CPU us/1k rec",
    ]  # fmt: skip
    return head + "\n" + table(header, rows)
