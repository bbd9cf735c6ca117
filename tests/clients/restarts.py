"""The restart test every client runs (clients/RESUME.md): a real sidecar process is
stopped and started again on the same port 10 times (5 SIGTERM, 5 SIGKILL, in random order, at
random points) under a client's auto-resuming `ReadSession`; every record must arrive exactly once,
in order, including those appended while the sidecar was down.

The emulator runs in this process, so the streams outlive the sidecar and appends go on while it is
down. Each client brings a driver (RESUME.md, "The restart test's driver"): a command that prints
`<seq_num> <body>` per record. `DriverCmd(address, stream, start_seq_num, count)` builds its argv.

    await restarts.catch_up_and_follow_across_restarts(cmd)  # both at once: the full test
    await restarts.catch_up_across_restarts(cmd)     # 100,000 records, bounded session
    await restarts.follow_across_restarts(cmd)       # live follower while a writer appends
    await restarts.missing_stream_fails_at_once(cmd) # NOT_FOUND is not retried
    await restarts.encrypted_session_across_restarts(cmd)  # the client's key on every resume
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import aiohttp

from sidecar.emulator import CREATE_ON_APPEND, Emulator, EmulatorConfig
from sidecar.testing import SidecarProcess, free_port
from sidecar.types import AppendRecord
from sidecar.wire.protobuf import encode_append_input

DriverCmd = Callable[[str, str, int, "int | None"], list[str]]


def driver_cmd(*program: str) -> DriverCmd:
    """The DriverCmd for a driver run as `program...` with RESUME.md's command line."""

    def cmd(address: str, stream: str, start: int, count: int | None) -> list[str]:
        argv = [*program, "--addr", address, "--stream", stream, "--start-seq-num", str(start)]
        return argv if count is None else [*argv, "--count", str(count)]

    return cmd

BASIN = "restart-basin"
# An encrypted stream's key, standard base64 of 32 bytes (docs/encryption.md); drivers take
# it as `--encryption-key` and give it to their client (RESUME.md, "The restart test's driver").
ENCRYPTION_KEY = "c2VjcmV0LWtleS1vZi10aGUtcmVzdGFydC10ZXN0LSE="
RESTARTS = 10  # 5 SIGTERM (drain: UNAVAILABLE with s2-next-seq-num) and 5 SIGKILL (connection reset)
BODY_SIZE = 1000  # 100,000 records = 100 MB: far more than gRPC windows and socket buffers hold in flight

_names = itertools.count()


def body(seq_num: int) -> str:
    """The body of record `seq_num` (ASCII, so drivers print it as is)."""
    return f"r{seq_num}-".ljust(BODY_SIZE, "x")


@dataclass
class Sidecar:
    """A sidecar process reading from `upstream`, restartable on one port."""

    upstream: str
    port: int = field(default_factory=free_port)
    proc: SidecarProcess | None = None
    stops: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = SidecarProcess(
            "--basin-endpoint", f"{self.upstream}/v1", "--default-basin", BASIN, "--grace-period", "1",
            grpc_port=self.port,
        )  # fmt: skip
        await self.proc.__aenter__()

    async def stop(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.proc.send_signal(sig)
        code = await self.proc.wait(within=30)
        # SIGTERM drains and exits 0; SIGKILL leaves no chance to say goodbye
        expected = 0 if sig == signal.SIGTERM else -signal.SIGKILL
        assert code == expected, f"sidecar exited {code} after {sig.name}:\n{self.proc.output[-3000:]}"
        self.stops.append(sig.name)
        self.proc = None

    async def close(self) -> None:
        if self.proc is not None:
            await self.proc.kill()


@contextlib.asynccontextmanager
async def _world(stream_cipher: str | None = None) -> AsyncIterator[tuple[Emulator, Sidecar, aiohttp.ClientSession]]:
    """With `stream_cipher`, every stream of the basin is encrypted (append with ENCRYPTION_KEY)."""
    basin = CREATE_ON_APPEND if stream_cipher is None else {**CREATE_ON_APPEND, "stream_cipher": stream_cipher}
    emulator = Emulator(EmulatorConfig(port=0, heartbeat_min=0.5, heartbeat_max=1.0, basins={BASIN: basin}))
    await emulator.start()
    sidecar = Sidecar(emulator.url)
    try:
        async with aiohttp.ClientSession() as http:
            yield emulator, sidecar, http
    finally:
        await sidecar.close()
        await emulator.stop()


async def _append(
    http: aiohttp.ClientSession, emulator: Emulator, stream: str, seq_nums: range, *, encrypted: bool = False
) -> None:
    headers = {"s2-basin": BASIN, "content-type": "application/protobuf", "accept": "application/protobuf"}
    if encrypted:
        headers["s2-encryption-key"] = ENCRYPTION_KEY
    async with http.post(
        f"{emulator.url}/v1/streams/{stream}/records",
        data=encode_append_input([AppendRecord(body=body(i).encode()) for i in seq_nums]),
        headers=headers,
    ) as resp:
        assert resp.status == 200, await resp.text()


class Driver:
    """A client's driver process; `seen` collects (seq_num, body) as it prints them."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.seen: list[tuple[int, str]] = []
        self.stderr = b""
        self.proc: asyncio.subprocess.Process | None = None
        self._progress = asyncio.Event()
        self._flowing = asyncio.Event()  # cleared: stop reading, so a full pipe holds the driver still
        self._flowing.set()

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 20
        )
        self._stdout = asyncio.create_task(self._read_stdout())
        self._stderr = asyncio.create_task(self._read_stderr())

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            await self._flowing.wait()
            line = await self.proc.stdout.readline()
            if not line:
                return
            seq, _, text = line.decode().rstrip("\n").partition(" ")
            self.seen.append((int(seq), text))
            self._progress.set()

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def until_seen(self, n: int, within: float) -> None:
        """Wait until `n` records arrived (fails with the driver's stderr if it exits first)."""
        deadline = time.monotonic() + within
        while len(self.seen) < n:
            assert self.proc is not None
            if self.proc.returncode is not None:
                await self._stdout
                if len(self.seen) >= n:
                    return
                await self._stderr
                raise AssertionError(self.report(f"driver exited {self.proc.returncode} after {len(self.seen)} of {n}"))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(self.report(f"{len(self.seen)} of {n} records after {within} s"))
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.2))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the driver still (its output is not read, so it blocks writing) for the block."""
        self._flowing.clear()
        try:
            yield
        finally:
            self._flowing.set()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def assert_running(self, why: str) -> None:
        assert self.proc is not None
        if self.proc.returncode is not None:
            await self._stdout
            await self._stderr
            raise AssertionError(
                self.report(f"driver exited {self.proc.returncode} after {len(self.seen)} records: {why}")
            )

    async def assert_finished_cleanly(self) -> None:
        """It ended: with 0 (it may print no more), or fail now rather than after every stop."""
        assert self.proc is not None
        if self.proc.returncode != 0:
            await self._stdout
            await self._stderr
            raise AssertionError(self.report(f"driver exited {self.proc.returncode} after {len(self.seen)} records"))

    async def exit_code(self, within: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), within)
        await self._stdout
        await self._stderr
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def report(self, what: str) -> str:
        return f"{what}\ndriver: {' '.join(self.argv)}\ndriver stderr (tail):\n{self.stderr.decode(errors='replace')[-3000:]}"


def assert_exactly_once(seen: list[tuple[int, str]], total: int, start: int = 0) -> None:
    """Records start..total-1, each once, in order, with the bodies written."""
    seqs = [s for s, _ in seen]
    if seqs != list(range(start, total)):
        counts: dict[int, int] = {}
        for s in seqs:
            counts[s] = counts.get(s, 0) + 1
        repeated = sorted(s for s, c in counts.items() if c > 1)
        lost = sorted(set(range(start, total)) - counts.keys())
        first_bad = next((i for i, s in enumerate(seqs) if s != start + i), None)
        raise AssertionError(
            f"expected seq_nums {start}..{total - 1} once each, in order; got {len(seqs)} records: "
            f"{len(lost)} lost (first {lost[:5]}), {len(repeated)} repeated (first {repeated[:5]}), "
            f"first out of place at index {first_bad}"
        )
    wrong = [(s, b) for s, b in seen if b != body(s)]
    assert not wrong, f"{len(wrong)} records with the wrong body, first: {wrong[0][0]} {wrong[0][1][:40]!r}"


def _signals(rng: random.Random) -> list[signal.Signals]:
    sigs = [signal.SIGTERM] * (RESTARTS // 2) + [signal.SIGKILL] * (RESTARTS - RESTARTS // 2)
    rng.shuffle(sigs)
    return sigs


def _rng() -> random.Random:
    seed = random.randrange(1 << 32)
    print(f"restart test seed {seed}", file=sys.stderr)  # pytest shows it when the test fails
    return random.Random(seed)


async def catch_up_and_follow_across_restarts(
    cmd: DriverCmd, *, records: int = 100_000, min_catch_up_cuts: int = 3
) -> None:
    """The full restart test: a catch-up over `records` records and a live follower at once, while the
    sidecar is stopped 10 times and started again. At least `min_catch_up_cuts` stops must come
    while the catch-up runs (a short catch-up can end before the last stops)."""
    await across_restarts(cmd, catch_up=records, follow=True, min_catch_up_cuts=min_catch_up_cuts)


async def catch_up_across_restarts(cmd: DriverCmd, *, records: int = 100_000) -> None:
    await across_restarts(cmd, catch_up=records, follow=False)


async def follow_across_restarts(cmd: DriverCmd) -> None:
    await across_restarts(cmd, catch_up=None, follow=True)


async def across_restarts(
    cmd: DriverCmd, *, catch_up: int | None, follow: bool, min_catch_up_cuts: int = 3
) -> None:
    """`catch_up`: a bounded session over that many records; the sidecar is stopped each time its
    driver has printed past another random point. `follow`: a live follower from seq_num 0 while a
    writer appends small batches all along, including while the sidecar is down (without a catch-up,
    stops come at random times). Every session must end with each record once, in order."""
    assert catch_up or follow
    rng = _rng()
    n = next(_names)
    async with _world() as (emulator, sidecar, http):
        if catch_up:
            for lo in range(0, catch_up, 1000):
                await _append(http, emulator, f"catch-up-{n}", range(lo, min(catch_up, lo + 1000)))
        await _append(http, emulator, f"follow-{n}", range(0, 100))
        written = 100
        down = False
        written_while_down: list[int] = []
        stop_writing = asyncio.Event()

        async def writer() -> None:
            # Stopped by the flag, never cancelled: a cancel landing during an append would leave
            # records in the stream that `written` does not count.
            nonlocal written
            while not stop_writing.is_set():
                k = rng.randint(1, 50)
                await _append(http, emulator, f"follow-{n}", range(written, written + k))
                if down:
                    written_while_down.extend(range(written, written + k))
                written += k
                await asyncio.sleep(rng.uniform(0.005, 0.05))

        await sidecar.start()
        catching_up = Driver(cmd(sidecar.address, f"catch-up-{n}", 0, catch_up)) if catch_up else None
        following = Driver(cmd(sidecar.address, f"follow-{n}", 0, None)) if follow else None
        drivers = [d for d in (following, catching_up) if d is not None]
        writing = asyncio.create_task(writer()) if following else None
        try:
            if following:
                await following.start()
                await following.until_seen(100, within=60)  # before the catch-up runs ahead
            if catching_up:
                await catching_up.start()
            # Stops come as the catch-up passes random points in its first third. What a driver has
            # printed lags what its client library has buffered (megabytes), so a fast client may
            # still finish early: the stops after that cut only the follower, and at least
            # `min_catch_up_cuts` must have come while the catch-up was running.
            points = sorted(rng.sample(range(catch_up // 100, catch_up // 3), RESTARTS)) if catch_up else None
            catch_up_cut = 0
            for i, sig in enumerate(_signals(rng)):
                if catching_up and points and catching_up.running:
                    await catching_up.until_seen(points[i], within=120)
                else:
                    await asyncio.sleep(rng.uniform(0.2, 1.5))
                if catching_up and catching_up.running:
                    catch_up_cut += 1
                elif catching_up:
                    await catching_up.assert_finished_cleanly()
                if following:
                    await following.assert_running(f"it ended before stop {i + 1} ({sig.name})")
                await sidecar.stop(sig)
                down = True
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                down = False
                await sidecar.start()
                if following:
                    # Back on a live session (new records flowing) before the next stop: a stop that
                    # came while the follower was still backing off would cut nothing. The catch-up
                    # is held meanwhile, or it could run to its end.
                    with catching_up.held() if catching_up else contextlib.nullcontext():
                        await following.until_seen(len(following.seen) + 1, within=60)
            if catching_up and catch_up:
                code = await catching_up.exit_code(within=120)
                assert code == 0, catching_up.report(f"catch-up driver exited {code}")
                assert_exactly_once(catching_up.seen, catch_up)
                assert catch_up_cut >= min_catch_up_cuts, f"only {catch_up_cut} stops came during the catch-up"
            if following and writing:
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                stop_writing.set()
                await writing
                await following.until_seen(written, within=60)
                await asyncio.sleep(0.5)  # anything past the last record (a repeat) would show up here
                assert_exactly_once(following.seen, written)
                assert written_while_down, "the writer appended nothing while the sidecar was down"
            assert len(sidecar.stops) == RESTARTS
        finally:
            if writing:
                writing.cancel()
            for d in drivers:
                await d.kill()


async def missing_stream_fails_at_once(cmd: DriverCmd) -> None:
    """NOT_FOUND cannot be fixed by retrying: the driver must fail fast, saying so."""
    async with _world() as (_, sidecar, _http):
        await sidecar.start()
        driver = Driver(cmd(sidecar.address, f"missing-{next(_names)}", 0, None))
        await driver.start()
        try:
            started = time.monotonic()
            code = await driver.exit_code(within=30)
            elapsed = time.monotonic() - started
            assert code != 0, driver.report("driver exited 0 for a missing stream")
            assert b"NOT_FOUND" in driver.stderr, driver.report("no NOT_FOUND on stderr")
            assert not driver.seen
            # no timing assertion (noisy machines); a retried NOT_FOUND would take the whole budget (~1 min)
            print(f"missing stream: driver failed after {elapsed:.1f} s", file=sys.stderr)
        finally:
            await driver.kill()


async def encrypted_session_across_restarts(cmd: DriverCmd) -> None:
    """An encrypted stream followed with the key the driver gives its client (`--encryption-key`):
    the session resumes across a SIGTERM and a SIGKILL with the key still sent (a resume without it
    would end in FAILED_PRECONDITION, which is not retried), and reads every record once, those
    appended while the sidecar was down included. Without the key the driver fails at once with
    FAILED_PRECONDITION. Neither prints the key."""
    async with _world(stream_cipher="aegis-256") as (emulator, sidecar, http):
        stream = f"sealed-{next(_names)}"
        await _append(http, emulator, stream, range(0, 100), encrypted=True)
        await sidecar.start()
        keyless = Driver(cmd(sidecar.address, stream, 0, None))
        keyed = Driver([*cmd(sidecar.address, stream, 0, None), "--encryption-key", ENCRYPTION_KEY])
        try:
            await keyless.start()
            assert await keyless.exit_code(within=30) == 1, keyless.report("no error without the key")
            assert b"FAILED_PRECONDITION" in keyless.stderr and not keyless.seen, keyless.report("not the missing key")
            await keyed.start()
            await keyed.until_seen(100, within=60)
            written = 100
            for sig in (signal.SIGTERM, signal.SIGKILL):
                await sidecar.stop(sig)
                await _append(http, emulator, stream, range(written, written + 50), encrypted=True)
                written += 50
                await sidecar.start()
                await keyed.until_seen(written, within=60)
            await _append(http, emulator, stream, range(written, written + 50), encrypted=True)
            written += 50
            await keyed.until_seen(written, within=60)
            await asyncio.sleep(0.5)  # a repeat would show up here
            await keyed.assert_running("a follower ended")
            assert_exactly_once(keyed.seen, written)
        finally:
            await keyless.kill()
            await keyed.kill()
        await asyncio.wait_for(keyed._stderr, 10)
        for driver in (keyless, keyed):
            assert ENCRYPTION_KEY.encode() not in driver.stderr, driver.report("the driver printed the key")
