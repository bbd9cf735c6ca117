"""Nothing lost, nothing repeated: a 100,000-record session cut at least 20 times at random
points under each kind of upstream fault still delivers seq_nums 0..99,999 exactly once, in order.

Faults come from the emulator's hooks over real sockets. Pending faults are taken oldest first,
one per request, so a list [cut, fault, cut, fault, ...] makes every session request die at a
random byte (often inside a frame: a truncated frame) and every reconnect meet the fault.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.emulator import EmulatorConfig
from sidecar.testing import SidecarHarness
from sidecar.types import AppendRecord
from sidecar.upstream import UpstreamFormat

N = 100_000
CUTS = 22
BODY = 12  # bytes per record body: ~20 bytes per record on the wire, ~2 MB per session

# Cuts may land before a whole batch got through, so failures can follow each other without
# progress: a larger budget than the default, and short backoff to keep the suite quick.
FAST_RETRIES: dict[str, Any] = {"retry_attempts": 40, "retry_base_delay": 0.005, "heartbeat_timeout": 0.3}

# One entry per transient failure docs/guarantees.md's "Sessions resume" lists: what a reconnect meets
# after each cut.
RECONNECT_FAULTS: dict[str, dict[str, Any] | None] = {
    "connection reset": None,  # the cut alone
    "408": {"fail": 1, "status": 408, "code": "request_timeout"},
    "429": {"fail": 1, "status": 429, "code": "rate_limited", "retry_after_ms": 30},
    "500": {"fail": 1, "status": 500, "code": "storage"},
    "502": {"fail": 1, "status": 502, "code": "hot_server"},
    "503": {"fail": 1, "status": 503, "code": "unavailable"},
    "504": {"fail": 1, "status": 504, "code": "upstream_timeout"},
    "transaction_conflict": {"fail": 1, "status": 409, "code": "transaction_conflict"},
    "server_draining": {"fail": 1, "status": 503, "code": "server_draining"},
    "malformed frame": {"corrupt": True, "times": 1},
    "silence": {"stall_seconds": 0.6, "times": 1},
}


async def read_all(h: SidecarHarness, stream: str) -> list[int]:
    seen: list[int] = []
    req = pb.ReadSessionRequest(stream=stream, seq_num=0, count=N)
    async for msg in h.stub.ReadSession(req, timeout=120):
        seen.extend(r.seq_num for r in msg.records)
    return seen


def assert_exactly_once(seen: list[int]) -> None:
    assert len(seen) == N, f"got {len(seen)} records"
    assert seen == list(range(N)), "records lost, repeated or out of order"


async def inject_cuts(h: SidecarHarness, stream: str, rng: random.Random, then: dict[str, Any] | None) -> None:
    for _ in range(CUTS):
        await h.inject_fault(kind="session", stream=stream, cut_after_bytes=rng.randrange(1, 90_000))
        if then is not None:
            await h.inject_fault(kind="session", stream=stream, **then)


@pytest.mark.parametrize("fault", list(RECONNECT_FAULTS))
async def test_session_survives_repeated_faults(fault: str) -> None:
    rng = random.Random(fault)  # reproducible cut points per fault kind
    async with SidecarHarness(**FAST_RETRIES) as h:
        await h.append_many("chaos", N, size=BODY)
        await inject_cuts(h, "chaos", rng, RECONNECT_FAULTS[fault])
        assert_exactly_once(await read_all(h, "chaos"))
        counts = (await h.emulator_stats())["requests"][f"{h.basin}/chaos"]
        assert counts["session_s2s"] >= CUTS + 1


@pytest.mark.parametrize("fault", ["connection reset", "503", "malformed frame"])
async def test_sse_session_survives_repeated_faults(fault: str) -> None:
    rng = random.Random(fault)
    async with SidecarHarness(**FAST_RETRIES, upstream_format=UpstreamFormat.JSON) as h:
        await h.append_many("chaos", N, size=BODY)
        await inject_cuts(h, "chaos", rng, RECONNECT_FAULTS[fault])
        assert_exactly_once(await read_all(h, "chaos"))
        assert (await h.emulator_stats())["requests"][f"{h.basin}/chaos"]["session_sse"] >= CUTS + 1


async def test_session_survives_the_upstream_going_away(tmp_path: Path) -> None:
    """Connection refused: the emulator is restarted (on disk) 20 times while a session reads."""
    emulator = EmulatorConfig(port=0, data_dir=tmp_path, heartbeat_min=0.2, heartbeat_max=0.4)
    async with SidecarHarness(emulator=emulator, heartbeat_timeout=1.0, retry_attempts=40, retry_base_delay=0.02) as h:
        await h.append_many("chaos", N, size=500)  # ~52 MB: a few dozen messages of up to 2 MiB
        seen: list[int] = []
        restarts = 0
        messages = 0

        async def reader() -> None:
            # A follower (no stop) that leaves when it has everything.
            nonlocal messages
            req = pb.ReadSessionRequest(stream="chaos", seq_num=0)
            async for msg in h.stub.ReadSession(req, timeout=120):
                seen.extend(r.seq_num for r in msg.records)
                messages += 1
                if len(seen) >= N:
                    break
                # The app holds each message until the upstream has restarted once more, so every
                # restart lands inside the session, whatever the machine's speed.
                while restarts < min(20, messages):  # noqa: ASYNC110  (a poll keeps the test short)
                    await asyncio.sleep(0.01)

        task = asyncio.create_task(reader())
        while restarts < 20 and not task.done():
            await asyncio.sleep(0.02)
            if messages > restarts:
                await h.restart_emulator(down_for=0.1)
                restarts += 1
        await asyncio.wait_for(task, 120)
        assert restarts == 20 and messages > 20, f"only {restarts} restarts inside {messages} messages"
        assert_exactly_once(seen[:N])
        assert len(seen) == N


async def test_session_survives_server_draining_mid_stream(harness: SidecarHarness, stream: str) -> None:
    """`server_draining` on an open session: reconnect at once, nothing lost."""
    await harness.append_many(stream, 50)
    seen: list[int] = []
    call = harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0))
    closes = 0
    async for msg in call:
        seen.extend(r.seq_num for r in msg.records)
        if not msg.records and closes < 5:  # caught up: drain the upstream, then append more
            closes += 1
            async with harness.http.post(  # type: ignore[union-attr]
                f"{harness.emulator.url}/_emulator/sessions/close",
                params={"basin": harness.basin, "stream": stream, "status": "503", "code": "server_draining"},
            ) as resp:
                assert resp.status < 300
            await harness.append_many(stream, 10)
        if len(seen) >= 100:
            break
    call.cancel()
    assert seen == list(range(100))


HEADER_HEAVY = 3000
HEADERS_PER_RECORD = 250  # 1-byte name and value: ~1 KB metered, ~2 KB of protobuf per record


async def test_session_survives_faults_with_header_heavy_records() -> None:
    """Batches of header-heavy records encode to about twice their metered size (a
    1 MiB metered batch is ~2 MiB of protobuf). Cut 22 times, every record arrives once and no
    message passes the 4 MiB every gRPC client accepts."""
    rng = random.Random("header-heavy")
    headers = tuple((b"h", b"v") for _ in range(HEADERS_PER_RECORD))
    async with SidecarHarness(**FAST_RETRIES) as h:
        for lo in range(0, HEADER_HEAVY, 200):
            await h.append("heavy", [AppendRecord(body=str(i).encode(), headers=headers) for i in range(lo, lo + 200)])
        for _ in range(CUTS):
            await h.inject_fault(kind="session", stream="heavy", cut_after_bytes=rng.randrange(1, 3_000_000))
            await h.inject_fault(kind="session", stream="heavy", fail=1, status=503, code="unavailable")
        seen: list[int] = []
        largest = 0
        req = pb.ReadSessionRequest(stream="heavy", seq_num=0, count=HEADER_HEAVY)
        async for msg in h.stub.ReadSession(req, timeout=120):
            largest = max(largest, msg.ByteSize())
            for r in msg.records:
                assert len(r.headers) == HEADERS_PER_RECORD and r.body == str(r.seq_num).encode()
                seen.append(r.seq_num)
        assert seen == list(range(HEADER_HEAVY))
        assert largest <= 4 * 1024 * 1024


TRIMMED_N = 40_000
TRIM_AHEAD = 15_000  # records (~15 MB): past what loopback socket buffers let the sidecar read ahead


def trim_command(to_seq_num: int) -> AppendRecord:
    """S2's trim command record: one header with an empty name and value `trim`, and the seq_num
    to trim up to as 8 bytes big-endian."""
    return AppendRecord(body=to_seq_num.to_bytes(8, "big"), headers=((b"", b"trim"),))


async def test_session_with_trims_mid_session_skips_only_trimmed_records() -> None:
    """Under faults: trims land ahead of a reading session while its upstream
    is cut again and again. S2 answers a read below the trim point from the first remaining
    record: the app gets every record that was not trimmed, once, in order, and never stalls."""
    rng = random.Random("trims")
    async with SidecarHarness(**FAST_RETRIES) as h:
        await h.append_many("trimmed", TRIMMED_N, size=1000)  # ~40 MB: the sidecar cannot read it all ahead
        for _ in range(CUTS):
            await h.inject_fault(kind="session", stream="trimmed", cut_after_bytes=rng.randrange(1, 1_000_000))
        seen: list[int] = []
        trim_point = 0
        trims = 0
        call = h.stub.ReadSession(pb.ReadSessionRequest(stream="trimmed", seq_num=0), timeout=120)
        async for msg in call:
            seen.extend(r.seq_num for r in msg.records)
            if seen and seen[-1] >= TRIMMED_N - 1:
                break
            if seen and trims < 3 and seen[-1] + TRIM_AHEAD < TRIMMED_N - 2000:
                trim_point = seen[-1] + TRIM_AHEAD  # well ahead of what the sidecar has read
                await h.append("trimmed", [trim_command(trim_point)])
                trims += 1
        call.cancel()
        data = [s for s in seen if s < TRIMMED_N]
        assert data == sorted(set(data)), "a record was repeated or out of order"
        missing = set(range(TRIMMED_N)) - set(data)
        assert missing, "no trim landed ahead of the session: the test did not exercise trimming"
        assert max(missing) < trim_point, "a record that was never trimmed is missing"
        assert set(range(trim_point, TRIMMED_N)) <= set(data)
        assert h.sidecar is not None and h.sidecar.metrics.trimmed_records_skipped.labels().value > 0
