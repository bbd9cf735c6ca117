"""Load: hundreds of sessions and unary callers against a sidecar, with faults; nothing lost or repeated.

    .venv/bin/python -m tests.bench.load [--sessions 300] [--unary 50] [--seconds 60] [--faults]
        [--streams 8] [--upstream-protocol auto|http1|http2]

The README's largest runs, 5,000 sessions: `--sessions 5000 --streams 50 --unary 0`, once per
`--upstream-protocol`.

Starts the emulator and the sidecar as separate processes on loopback (as `tests/bench/bench.py`
does). An appender writes records at a steady rate to a few streams; every record's body is its
own seq_num, so readers can check what they get. For the given duration:

* half the sessions follow a stream live from a random start; when one ends with an error the
  client resumes where `s2-next-seq-num` says (as an app would) and checks that it says the right
  place; at the end each must catch up to the stream's final tail;
* the other half are bounded catch-up sessions (`count`) from a random start, restarted when done;
  each must end with `count` records or at a tail at least as far as the one known when it opened;
* unary callers call `Read` (checked the same way) and `CheckTail` (never behind the tail known 1 s
  before the call: the default `--tail-max-staleness`);
* with `--faults`, every second the emulator is told to cut sessions, answer 503 to reads and
  tails, stall answers, corrupt one, or end the open sessions of a stream.

All sessions open at once. Every session checks that seq_nums run on without a gap or a repeat
from its start, and the longest silence on any session (open to first message, then between
messages: records or heartbeats) must stay under MAX_SILENCE; no call may end CANCELLED (apps do
not retry it). Printed: calls
by status code, records delivered, lost and repeated (must be 0), the sidecar's memory, open file
descriptors and threads before, at peak and after the clients left, and the emulator's open
upstream sessions after (must drop to 0). Exits non-zero if anything was lost, repeated or leaked.
`tests/bench/test_load_light.py` runs the same code, smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.testing import free_port
from sidecar.types import AppendRecord
from sidecar.wire.protobuf import decode_append_ack, encode_append_input
from tests.bench.common import BASIN, start, stop

BODY = 16  # body = the record's seq_num, zero-padded to 16 bytes
CALLS_PER_CHANNEL = 50  # spread calls over several HTTP/2 connections, as many apps would
MAX_SILENCE = 15.0  # S2 sends a heartbeat at least every 15 s on a caught-up session


@dataclass
class LoadConfig:
    sessions: int = 300
    unary: int = 50
    seconds: float = 60.0
    faults: bool = False
    streams: int = 8
    rate: float = 400.0  # records appended per second, over all streams
    prefill: int = 2000  # records per stream before the clients start
    catch_up_max: int = 500  # catch-up sessions ask for 1..catch_up_max records
    catch_up_timeout: float = 30.0  # the followers' time to reach the final tail after the run
    settle: float = 3.0  # seconds after the clients left before measuring "after"
    idle: float = 0.0  # if > 0, measure again this long after: idle upstream keep-alives have expired
    upstream_protocol: str = "auto"  # the sidecar's --upstream-protocol
    seed: int | None = None


@dataclass
class Sample:
    rss_kb: int = 0
    hwm_kb: int = 0
    fds: int = 0
    threads: int = 0
    upstream_conns: int = 0  # TCP connections from the sidecar to the emulator (pooled, idle or busy)


@dataclass
class Results:
    config: LoadConfig
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, status code name)
    appended: int = 0
    delivered_sessions: int = 0
    delivered_read: int = 0
    lost: int = 0
    repeated: int = 0
    corrupt: int = 0  # a body that is not its seq_num
    bad_resume_points: int = 0  # s2-next-seq-num not where the client had got to
    tail_went_back: int = 0  # CheckTail behind a tail already known
    followers: int = 0
    followers_caught_up: int = 0
    resumed_by_client: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    before: Sample = field(default_factory=Sample)
    peak: Sample = field(default_factory=Sample)
    after: Sample = field(default_factory=Sample)
    after_idle: Sample | None = None
    upstream_sessions_peak: int = 0
    upstream_sessions_after: int = -1
    elapsed: float = 0.0
    longest_silence: float = 0.0  # seconds, on any session: open to first message, or between two
    silences: Counter[str] = field(default_factory=Counter)  # the longest, by kind of session and gap

    @property
    def bad_codes(self) -> int:
        return sum(n for (_, code), n in self.calls.items() if code in ("UNKNOWN", "INTERNAL", "CANCELLED"))

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.repeated == 0
            and self.corrupt == 0
            and self.bad_resume_points == 0
            and self.tail_went_back == 0
            and self.followers_caught_up == self.followers
            and self.upstream_sessions_after == 0
            and self.bad_codes == 0
            and self.longest_silence <= MAX_SILENCE
        )

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


# -- processes and measurements -------------------------------------------------------------------


@dataclass
class Processes:
    emulator: asyncio.subprocess.Process
    sidecar: asyncio.subprocess.Process
    emulator_url: str
    grpc_address: str


@contextlib.asynccontextmanager
async def processes(*sidecar_args: str) -> AsyncIterator[Processes]:
    """The emulator and the sidecar as separate processes, as users run them."""
    emu_port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{emu_port}"
    emulator = await start("emulator", "--listen", f"127.0.0.1:{emu_port}", "--basin", BASIN, ready="http://")
    try:
        sidecar = await start(
            "--listen", f"127.0.0.1:{grpc_port}", "--basin-endpoint", f"{url}/v1", "--admin-listen", "off",
            "--log-level", "warning", *sidecar_args, ready="serving gRPC",
        )  # fmt: skip
    except BaseException:
        emulator.kill()
        await emulator.wait()
        raise
    try:
        yield Processes(emulator, sidecar, url, f"127.0.0.1:{grpc_port}")
    finally:
        for proc in (sidecar, emulator):
            await stop(proc)


def sample(pid: int, upstream_port: int | None = None) -> Sample:
    """Memory, threads, open file descriptors and upstream connections of a process, from /proc."""
    s = Sample()
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "VmRSS":
                s.rss_kb = int(value.split()[0])
            elif key == "VmHWM":
                s.hwm_kb = int(value.split()[0])
            elif key == "Threads":
                s.threads = int(value)
    sockets: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        s.fds += 1
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                sockets.add(target[8:-1])
    if upstream_port is not None:
        s.upstream_conns = _connections_to(sockets, upstream_port)
    return s


def _connections_to(inodes: set[str], port: int) -> int:
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                # remote address column is HEX_IP:HEX_PORT; state 01 is ESTABLISHED; column 9 the inode
                if cols[9] in inodes and cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


async def emulator_stats(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/_emulator/stats") as resp:
        result: dict[str, Any] = await resp.json()
        return result


# -- the load -------------------------------------------------------------------------------------


def padded(i: int) -> bytes:
    return str(i).zfill(BODY).encode()


class Streams:
    """What the appender has written: the tail each stream is known to have reached, and when."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.tail = dict.fromkeys(names, 0)
        self._history: dict[str, list[tuple[float, int]]] = {n: [] for n in names}

    def appended(self, name: str, tail: int) -> None:
        self.tail[name] = tail
        self._history[name].append((time.monotonic(), tail))

    def tail_at(self, name: str, when: float) -> int:
        """The tail as acknowledged by `when` (time.monotonic())."""
        known = 0
        for t, tail in reversed(self._history[name]):
            if t <= when:
                known = tail
                break
        return known


class Checker:
    """One session's (or Read's) view: seq_nums must run on from its start, bodies must match."""

    def __init__(self, results: Results, what: str, start: int) -> None:
        self.results = results
        self.what = what
        self.next = start
        self.last_message = time.monotonic()
        self.messages = 0

    def records(self, records: Any) -> int:
        """One message's records (none for a heartbeat)."""
        r = self.results
        now = time.monotonic()
        gap = now - self.last_message
        r.longest_silence = max(r.longest_silence, gap)
        key = f"{self.what.split()[0]} {'between messages' if self.messages else 'to first message'}"
        r.silences[key] = max(r.silences[key], gap)
        self.last_message = now
        self.messages += 1
        # The common case checked in comprehensions (the load generator must not be the bottleneck
        # it measures); the loop below finds what is wrong when it is not that.
        lo, n = self.next, len(records)
        if [rec.seq_num for rec in records] == list(range(lo, lo + n)) and [rec.body for rec in records] == [
            padded(i) for i in range(lo, lo + n)
        ]:
            self.next += n
            return n
        for rec in records:
            seq = rec.seq_num
            if seq > self.next:
                r.lost += seq - self.next
                r.problem(f"{self.what}: gap, expected {self.next}, got {seq}")
            elif seq < self.next:
                r.repeated += 1
                r.problem(f"{self.what}: repeat, expected {self.next}, got {seq}")
                continue
            if rec.body != padded(seq):
                r.corrupt += 1
                r.problem(f"{self.what}: record {seq} has body {rec.body[:40]!r}")
            self.next = seq + 1
        return len(records)


def _code(e: grpc.aio.AioRpcError) -> str:
    return e.code().name


def _meta(e: grpc.aio.AioRpcError, key: str) -> str | None:
    for k, v in e.trailing_metadata() or ():
        if k == key:
            return str(v)
    return None


async def appender(http: aiohttp.ClientSession, url: str, streams: Streams, cfg: LoadConfig, stop: asyncio.Event,
                   results: Results) -> None:  # fmt: skip
    """Append at `cfg.rate` records/s in ticks of 0.1 s, round-robin over the streams: each tick
    appends to as many streams as the rate allows (at least one), one record each, so a low rate
    over many streams stays low (every stream once a tick would be 10 x streams records/s)."""
    per_tick = max(1, round(cfg.rate / 10))
    turn = 0
    next_tick = time.monotonic()
    while not stop.is_set():
        names = streams.names
        if per_tick >= len(names):
            for name in names:
                await append(http, url, name, streams, per_tick // len(names), results)
        else:
            for k in range(per_tick):
                await append(http, url, names[(turn + k) % len(names)], streams, 1, results)
            turn = (turn + per_tick) % len(names)
        next_tick += 0.1
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))


async def append(http: aiohttp.ClientSession, url: str, name: str, streams: Streams, n: int, results: Results) -> None:
    lo = streams.tail[name]
    body = encode_append_input([AppendRecord(body=padded(i)) for i in range(lo, lo + n)])
    async with http.post(
        f"{url}/v1/streams/{name}/records",
        data=body,
        headers={"s2-basin": BASIN, "content-type": "application/protobuf", "accept": "application/protobuf"},
    ) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"append to {name} failed: {resp.status} {data[:200]!r}")
    start, end, _ = decode_append_ack(data)
    if start.seq_num != lo:
        raise RuntimeError(f"append to {name} landed at {start.seq_num}, expected {lo}")
    streams.appended(name, end.seq_num)
    results.appended += n


async def follower(stub: stream_pb2_grpc.StreamServiceStub, name: str, check: Checker, results: Results) -> None:
    """Follow a stream live for ever (until cancelled); after an error status, resume where
    `s2-next-seq-num` says, checking that it says where this session had got to."""
    while True:
        call = stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=name, seq_num=check.next))
        try:
            async for msg in call:
                results.delivered_sessions += check.records(msg.records)
            results.calls["ReadSession", "OK"] += 1
            results.problem(f"follower {name}: a session with no stop ended")
        except grpc.aio.AioRpcError as e:
            results.calls["ReadSession", _code(e)] += 1
            resume = _meta(e, "s2-next-seq-num")
            if resume is not None and int(resume) != check.next:
                results.bad_resume_points += 1
                results.problem(f"follower {name}: s2-next-seq-num {resume}, but the next record is {check.next}")
            results.resumed_by_client += 1
            await asyncio.sleep(0.05)
        finally:
            call.cancel()


async def catch_up(stub: stream_pb2_grpc.StreamServiceStub, streams: Streams, stop: asyncio.Event,
                   cfg: LoadConfig, results: Results, rng: random.Random) -> None:  # fmt: skip
    """Bounded sessions from a random start, one after another, until the run ends."""
    while not stop.is_set():
        name = rng.choice(streams.names)
        known_tail = streams.tail[name]
        begin = rng.randrange(max(0, known_tail - 4 * cfg.catch_up_max), known_tail)
        count = rng.randint(1, cfg.catch_up_max)
        check = Checker(results, f"catch-up {name}@{begin}+{count}", begin)
        call = stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=name, seq_num=begin, count=count))
        try:
            async for msg in call:
                results.delivered_sessions += check.records(msg.records)
                if stop.is_set():
                    return
            results.calls["ReadSession", "OK"] += 1
            got = check.next - begin
            if got != count and check.next < known_tail:
                results.lost += known_tail - check.next
                results.problem(f"{check.what}: ended at {check.next} with {got} records, tail was {known_tail}")
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and stop.is_set():
                return
            results.calls["ReadSession", _code(e)] += 1
            resume = _meta(e, "s2-next-seq-num")
            if resume is not None and int(resume) != check.next:
                results.bad_resume_points += 1
                results.problem(f"{check.what}: s2-next-seq-num {resume}, but the next record is {check.next}")
        finally:
            call.cancel()


async def unary(stub: stream_pb2_grpc.StreamServiceStub, streams: Streams, stop: asyncio.Event,
                results: Results, rng: random.Random) -> None:  # fmt: skip
    while not stop.is_set():
        name = rng.choice(streams.names)
        known_tail = streams.tail[name]
        # CheckTail may answer a cached tail up to --tail-max-staleness (1 s) old (a tracked one is
        # milliseconds behind): it must never be behind what was acknowledged before that.
        stale_floor = streams.tail_at(name, time.monotonic() - 1.0)
        method = "Read" if rng.random() < 0.5 else "CheckTail"
        try:
            if method == "Read":
                begin = rng.randrange(known_tail)
                resp = await stub.Read(
                    pb.ReadRequest(basin=BASIN, stream=name, seq_num=begin, count=rng.randint(1, 1000)), timeout=10
                )
                check = Checker(results, f"Read {name}@{begin}", begin)
                results.delivered_read += check.records(resp.records)
                if not resp.records:
                    results.lost += 1
                    results.problem(f"Read {name}@{begin}: empty, although the tail was {known_tail}")
                results.calls["Read", "OK"] += 1
            else:
                tail = await stub.CheckTail(pb.CheckTailRequest(basin=BASIN, stream=name), timeout=10)
                if tail.tail.seq_num < stale_floor:
                    results.tail_went_back += 1
                    results.problem(f"CheckTail {name}: {tail.tail.seq_num} < {stale_floor}, known 1 s before")
                results.calls["CheckTail", "OK"] += 1
        except grpc.aio.AioRpcError as e:
            results.calls[method, _code(e)] += 1
            await asyncio.sleep(0.05)


FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("session cut", {"kind": "session", "cut_after_bytes": 2000, "times": 5}),
    ("session cut", {"kind": "session", "cut_after_bytes": 100, "times": 3}),
    ("read 503", {"kind": "read", "fail": 5, "status": 503, "code": "unavailable"}),
    ("tail 503", {"kind": "tail", "fail": 5, "status": 503, "code": "unavailable"}),
    ("session stall 2s", {"kind": "session", "stall_seconds": 2, "times": 2}),
    ("read stall 0.5s", {"kind": "read", "stall_seconds": 0.5, "times": 3}),
    ("session corrupt", {"kind": "session", "corrupt": True, "times": 2}),
    ("read 429", {"kind": "read", "fail": 2, "status": 429, "code": "rate_limited", "retry_after_ms": 200}),
]


async def fault_injector(http: aiohttp.ClientSession, url: str, streams: Streams, stop: asyncio.Event,
                         results: Results, rng: random.Random) -> None:  # fmt: skip
    """Every second: one fault from FAULTS, and every third second end a stream's open sessions."""
    tick = 0
    while not stop.is_set():
        await asyncio.sleep(1.0)
        tick += 1
        name, fault = FAULTS[tick % len(FAULTS)]
        async with http.post(f"{url}/_emulator/faults", json={**fault, "basin": BASIN}) as resp:
            assert resp.status == 200, await resp.text()
        results.faults[name] += 1
        if tick % 3 == 0:
            target = rng.choice(streams.names)
            params = {"basin": BASIN, "stream": target, "status": "503", "code": "unavailable"}
            async with http.post(f"{url}/_emulator/sessions/close", params=params) as resp:
                assert resp.status == 200, await resp.text()
            results.faults["sessions closed (503)"] += 1
    async with http.delete(f"{url}/_emulator/faults"):
        pass


async def sampler(pid: int, http: aiohttp.ClientSession, url: str, stop: asyncio.Event, results: Results) -> None:
    while not stop.is_set():
        s = sample(pid, _port(url))
        p = results.peak
        p.rss_kb, p.hwm_kb = max(p.rss_kb, s.rss_kb), max(p.hwm_kb, s.hwm_kb)
        p.fds, p.threads = max(p.fds, s.fds), max(p.threads, s.threads)
        p.upstream_conns = max(p.upstream_conns, s.upstream_conns)
        with contextlib.suppress(aiohttp.ClientError):
            stats = await emulator_stats(http, url)
            results.upstream_sessions_peak = max(results.upstream_sessions_peak, stats["open_sessions_total"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


async def run_load(cfg: LoadConfig, procs: Processes) -> Results:
    """Run the load against running processes and return what was seen."""
    results = Results(cfg)
    rng = random.Random(cfg.seed)
    pid = procs.sidecar.pid
    streams = Streams([f"load-{i}" for i in range(cfg.streams)])
    n_channels = max(1, (cfg.sessions + cfg.unary) // CALLS_PER_CHANNEL + 1)
    channels = [grpc.aio.insecure_channel(procs.grpc_address) for _ in range(n_channels)]
    stubs = [stream_pb2_grpc.StreamServiceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
    async with aiohttp.ClientSession() as http:
        for name in streams.names:
            for lo in range(0, cfg.prefill, 1000):
                await append(http, procs.emulator_url, name, streams, min(1000, cfg.prefill - lo), results)
        # Warm up (gRPC connections, upstream pools), then measure the baseline.
        for stub in stubs:
            await stub.CheckTail(pb.CheckTailRequest(basin=BASIN, stream=streams.names[0]), timeout=10)
        for ch in channels:
            await ch.close(None)
        await asyncio.sleep(cfg.settle)
        results.before = sample(pid, _port(procs.emulator_url))
        channels = [grpc.aio.insecure_channel(procs.grpc_address) for _ in range(n_channels)]
        stubs = [stream_pb2_grpc.StreamServiceStub(ch) for ch in channels]  # type: ignore[no-untyped-call]

        stop, sampling_done = asyncio.Event(), asyncio.Event()
        started = time.monotonic()
        sampling = asyncio.create_task(sampler(pid, http, procs.emulator_url, sampling_done, results))
        background = [asyncio.create_task(appender(http, procs.emulator_url, streams, cfg, stop, results))]
        if cfg.faults:
            background.append(
                asyncio.create_task(fault_injector(http, procs.emulator_url, streams, stop, results, rng))
            )
        n_follow = cfg.sessions // 2
        tracked: list[tuple[str, Checker]] = []
        for _ in range(n_follow):
            name = rng.choice(streams.names)
            tracked.append((name, Checker(results, f"follower {name}", rng.randrange(streams.tail[name] + 1))))
        results.followers = n_follow
        followers = [
            asyncio.create_task(follower(stubs[i % n_channels], name, check, results))
            for i, (name, check) in enumerate(tracked)
        ]
        others = [
            asyncio.create_task(
                catch_up(stubs[i % n_channels], streams, stop, cfg, results, random.Random(rng.random()))
            )
            for i in range(n_follow, cfg.sessions)
        ] + [
            asyncio.create_task(unary(stubs[i % n_channels], streams, stop, results, random.Random(rng.random())))
            for i in range(cfg.unary)
        ]
        await asyncio.sleep(cfg.seconds)
        stop.set()
        await asyncio.gather(*background)
        final = dict(streams.tail)  # the appender has stopped: these are the final tails
        await asyncio.gather(*others)
        deadline = time.monotonic() + cfg.catch_up_timeout
        # Polling plain counters that many tasks advance; an Event per follower would be more code.
        while time.monotonic() < deadline and any(c.next < final[n] for n, c in tracked):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        results.followers_caught_up = sum(c.next >= final[n] for n, c in tracked)
        for n, c in tracked:
            if c.next < final[n]:
                results.problem(f"{c.what}: at {c.next}, final tail {final[n]}")
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        for t in others:
            if not t.cancelled() and t.exception() is not None:
                results.problem(f"client task failed: {t.exception()!r}")
        results.elapsed = time.monotonic() - started

        for ch in channels:
            await ch.close(None)
        sampling_done.set()
        await sampling
        # The clients have left: upstream sessions must close, and the sidecar settle back.
        deadline = time.monotonic() + max(cfg.settle, 10.0)
        while True:
            results.upstream_sessions_after = (await emulator_stats(http, procs.emulator_url))["open_sessions_total"]
            if results.upstream_sessions_after == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(cfg.settle)
        results.after = sample(pid, _port(procs.emulator_url))
        if cfg.idle > 0:
            await asyncio.sleep(cfg.idle)
            results.after_idle = sample(pid, _port(procs.emulator_url))
    return results


# -- report ---------------------------------------------------------------------------------------


def report(r: Results) -> str:
    cfg = r.config
    n_follow = cfg.sessions // 2
    lines = [
        f"s2-sidecar load: {cfg.sessions} sessions ({n_follow} following live, {cfg.sessions - n_follow} catch-up), "
        f"{cfg.unary} unary callers, {cfg.seconds:g} s, faults {'on' if cfg.faults else 'off'}; "
        f"{cfg.streams} streams of {cfg.prefill:,} records + {cfg.rate:g} records/s appended; python {sys.version.split()[0]}",
    ]
    codes = sorted({code for _, code in r.calls}, key=lambda c: (c != "OK", c))
    methods = sorted({m for m, _ in r.calls})
    lines.append(f"{'calls':<16}" + "".join(f"{c:>13}" for c in codes))
    for m in methods:
        lines.append(f"{m:<16}" + "".join(f"{r.calls.get((m, c), 0):>13,}" for c in codes))
    lines += [
        f"records appended {r.appended:,}; delivered {r.delivered_sessions + r.delivered_read:,} "
        f"(sessions {r.delivered_sessions:,}, Read {r.delivered_read:,})",
        f"lost {r.lost}  repeated {r.repeated}  corrupt {r.corrupt}  wrong s2-next-seq-num {r.bad_resume_points}  "
        f"tail went back {r.tail_went_back}",
        f"followers caught up to the final tail: {r.followers_caught_up}/{r.followers}; "
        f"client resumes after an error status: {r.resumed_by_client}",
        f"longest silence on a session: {r.longest_silence:.1f} s (at most {MAX_SILENCE:g}; "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.silences.items()))
        + f"); upstream protocol {cfg.upstream_protocol}",
    ]
    if r.faults:
        lines.append("faults injected: " + ", ".join(f"{k} x{v}" for k, v in sorted(r.faults.items())))
    mib = 1024
    idle = r.after_idle
    head = f"after {cfg.idle:g} s"
    lines += [
        f"{'sidecar':<16}{'before':>10}{'peak':>10}{f'after {cfg.settle:g} s':>12}" + (f"{head:>12}" if idle else ""),
        f"{'RSS MiB':<16}{r.before.rss_kb / mib:>10.1f}{r.peak.hwm_kb / mib:>10.1f}{r.after.rss_kb / mib:>12.1f}"
        + (f"{idle.rss_kb / mib:>12.1f}" if idle else "")
        + "   (peak = VmHWM)",
        f"{'open fds':<16}{r.before.fds:>10}{r.peak.fds:>10}{r.after.fds:>12}" + (f"{idle.fds:>12}" if idle else ""),
        f"{'threads':<16}{r.before.threads:>10}{r.peak.threads:>10}{r.after.threads:>12}"
        + (f"{idle.threads:>12}" if idle else ""),
        f"{'upstream conns':<16}{r.before.upstream_conns:>10}{r.peak.upstream_conns:>10}{r.after.upstream_conns:>12}"
        + (f"{idle.upstream_conns:>12}" if idle else "")
        + "   (TCP to the emulator, pooled)",
        f"upstream sessions open (emulator): peak {r.upstream_sessions_peak}, after the clients left "
        f"{r.upstream_sessions_after}",
        f"run {r.elapsed:.1f} s; result: {'OK' if r.ok else 'FAILED'}",
    ]
    lines += [f"  problem: {p}" for p in r.problems]
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--unary", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rate", type=float, default=400.0, help="records appended per second, all streams")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--idle",
        type=float,
        default=65.0,
        help="measure the sidecar again this long after the clients left (idle upstream keep-alives go after 30-60 s)",
    )
    parser.add_argument("--upstream-protocol", choices=("auto", "http1", "http2"), default="auto",
                        help="the sidecar's --upstream-protocol (auto is HTTP/1.1 to the emulator)")  # fmt: skip
    opts = parser.parse_args()
    cfg = LoadConfig(
        sessions=opts.sessions, unary=opts.unary, seconds=opts.seconds, faults=opts.faults,
        streams=opts.streams, rate=opts.rate, seed=opts.seed, idle=opts.idle,
        upstream_protocol=opts.upstream_protocol,
    )  # fmt: skip
    async with processes("--upstream-protocol", cfg.upstream_protocol) as procs:
        results = await run_load(cfg, procs)
    print(report(results))
    return 0 if results.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
