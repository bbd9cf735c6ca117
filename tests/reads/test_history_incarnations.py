"""The history cache's promise, tried as an adversary would: no record of a deleted incarnation (or
below a trim) is served later than `--history-cache-max-age` after it went, whatever the order of
reads, deletions, re-creations and evictions; and a one-shot `Read` answers the batch S2 would.

Every record's body names its incarnation (`inc<k>:`), and the test keeps when it sent each
deletion, so a record received later than that plus max age (plus `SLACK`, for delivery on a
loaded machine: the failures these tests catch were unbounded, tens of seconds late) is a
stale one. S2 defines a stream's identity over time by `created_at` in its listing (S2's
OpenAPI `StreamInfo`: `created_at`, `deleted_at` "if the stream is being deleted"); the emulator
writes it with nanoseconds, as s2-lite does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.emulator import EmulatorConfig
from sidecar.testing import SidecarHarness
from sidecar.types import AppendRecord
from tests.reads.test_history import delete, needs_cache, read, served, session, trim_to

MAX_AGE = 1.0
SLACK = 1.0


class Incarnations:
    """What the test did to one stream name: when each incarnation was deleted."""

    def __init__(self) -> None:
        self.deleted_at: dict[int, float] = {}

    def check(self, body: bytes, received_at: float) -> None:
        k = int(body.split(b":", 1)[0][3:])
        gone = self.deleted_at.get(k)
        assert gone is None or received_at <= gone + MAX_AGE + SLACK, (
            f"record of incarnation {k} received {received_at - gone:.2f} s after its deletion"
        )


async def fill(h: SidecarHarness, stream: str, k: int, n: int, *, size: int = 100, ts0: int = 1000) -> None:
    """`n` records of incarnation `k`, timestamps `ts0 + i` (the same in every incarnation)."""
    for lo in range(0, n, 500):
        await h.append(
            stream,
            [
                AppendRecord(body=f"inc{k}:{i}:".encode().ljust(size, b"."), timestamp=ts0 + i)
                for i in range(lo, min(n, lo + 500))
            ],
        )


async def remove(h: SidecarHarness, stream: str, incs: Incarnations, k: int) -> None:
    incs.deleted_at[k] = time.monotonic()  # before S2 deletes: the earliest it can be gone
    await delete(h, stream)


async def checked_session(h: SidecarHarness, incs: Incarnations, **req: Any) -> tuple[list[int], str | None]:
    seqs: list[int] = []
    try:
        async for msg in h.stub.ReadSession(pb.ReadSessionRequest(**req)):
            now = time.monotonic()
            for r in msg.records:
                incs.check(r.body, now)
                seqs.append(r.seq_num)
    except grpc.aio.AioRpcError as e:
        return seqs, e.code().name
    return seqs, None


async def checked_read(h: SidecarHarness, incs: Incarnations, **req: Any) -> tuple[list[int], str | None]:
    try:
        msg = await h.stub.Read(pb.ReadRequest(**req))
    except grpc.aio.AioRpcError as e:
        return [], e.code().name
    now = time.monotonic()
    for r in msg.records:
        incs.check(r.body, now)
    return [r.seq_num for r in msg.records], None


async def replay_for(h: SidecarHarness, incs: Incarnations, stream: str, starts: Sequence[int], seconds: float) -> int:
    """Replay (sessions and Reads) from each start again and again for `seconds`; every record is
    checked; returns how many records came from the newest incarnation's reads."""
    end = time.monotonic() + seconds
    got = 0
    while time.monotonic() < end:
        for start in starts:
            seqs, err = await checked_session(h, incs, stream=stream, seq_num=start, count=100)
            assert err is None and seqs == list(range(start, start + 100))
            seqs, err = await checked_read(h, incs, stream=stream, seq_num=start, count=100)
            assert err is None and seqs == list(range(start, start + 100))
            got += 1
        await asyncio.sleep(0.1)
    return got


@needs_cache
async def test_a_hole_filled_around_an_old_incarnation_never_serves_it_past_max_age() -> None:
    # A route to a stale record: app A caches 100..299; the stream is deleted and re-created; app B
    # reads from 0, which fills 0..99 and 300..399 around A's old records.
    incs = Incarnations()
    async with SidecarHarness(history_cache_max_age=MAX_AGE) as h:
        await fill(h, "hole", 1, 400)
        seqs, err = await checked_session(h, incs, stream="hole", seq_num=100, count=200)
        assert err is None and len(seqs) == 200
        await remove(h, "hole", incs, 1)
        await h.create_stream("hole")
        await fill(h, "hole", 2, 400)
        seqs, err = await checked_session(h, incs, stream="hole", seq_num=0, count=400)
        assert err is None and seqs == list(range(400))
        await replay_for(h, incs, "hole", (0, 100, 150, 250), 3 * MAX_AGE)


@needs_cache
async def test_an_identical_first_record_does_not_pass_for_the_same_incarnation() -> None:
    # A route to a stale record: both incarnations start with a byte-identical record.
    incs = Incarnations()
    async with SidecarHarness(history_cache_max_age=MAX_AGE) as h:
        same = AppendRecord(body=b"inc0:the same first record", timestamp=500)
        await h.append("twin", [same])
        await fill(h, "twin", 1, 299)
        seqs, err = await checked_session(h, incs, stream="twin", seq_num=0, count=300)
        assert err is None and len(seqs) == 300
        await remove(h, "twin", incs, 1)
        await h.create_stream("twin")
        await h.append("twin", [same])
        await fill(h, "twin", 2, 299)
        await replay_for(h, incs, "twin", (0, 1, 150), 3 * MAX_AGE)


@needs_cache
async def test_an_evicted_lowest_chunk_refilled_from_the_new_stream_does_not_vouch_for_the_rest() -> None:
    # A route to a stale record: a small cache evicts the old incarnation's lowest chunk, and a
    # replay of the new stream from 0 fills that gap.
    incs = Incarnations()
    async with SidecarHarness(history_cache_max_age=MAX_AGE, history_cache_bytes=1 << 20) as h:
        await fill(h, "small", 1, 3500, size=300)  # ~1.1 MB: a bit more than the cache

        async def read_all(hi: int = 3500) -> None:  # in Reads of 100: one cache chunk each
            for lo in range(0, hi, 100):
                seqs, err = await checked_read(h, incs, stream="small", seq_num=lo, count=100)
                assert err is None and seqs == list(range(lo, lo + 100))

        await read_all()
        assert h.sidecar is not None
        history = h.sidecar.reader.history
        held = history.ranges((h.basin, "small", ""))
        assert held and held[0][0] > 0, held  # the lowest chunks were evicted
        await remove(h, "small", incs, 1)
        await h.create_stream("small")
        await fill(h, "small", 2, 3500, size=300)
        await read_all(held[0][0])  # the new stream's records fill the gap below the old ones
        await replay_for(h, incs, "small", (0, 900, 1500, 2800), 3 * MAX_AGE)


@needs_cache
async def test_deleted_and_recreated_in_a_tight_loop_every_record_is_of_a_live_incarnation() -> None:
    # Re-created within one second, many times (S2's created_at has nanoseconds: each is new).
    incs = Incarnations()
    async with SidecarHarness(history_cache_max_age=MAX_AGE) as h:
        await fill(h, "loop", 0, 300)
        for k in range(1, 8):
            seqs, err = await checked_session(h, incs, stream="loop", seq_num=100, count=100)
            assert err is None and seqs == list(range(100, 200))
            await remove(h, "loop", incs, k - 1)
            await h.create_stream("loop")
            await fill(h, "loop", k, 300)
            await asyncio.sleep(random.uniform(0, 0.4))
        await replay_for(h, incs, "loop", (0, 100), 3 * MAX_AGE)


async def slow_reader(
    h: SidecarHarness, incs: Incarnations | None, per_message: float, **req: Any
) -> tuple[list[int], str | None, list[float]]:
    """A session whose app takes `per_message` seconds over each message (a small HTTP/2 window
    and no BDP probing, so gRPC itself buffers little ahead of it)."""
    channel = grpc.aio.insecure_channel(
        h.address, options=[("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 64 << 20)]
    )
    stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
    seqs: list[int] = []
    times: list[float] = []
    try:
        async for msg in stub.ReadSession(pb.ReadSessionRequest(**req)):
            now = time.monotonic()
            for r in msg.records:
                if incs is not None:
                    incs.check(r.body, now)
                seqs.append(r.seq_num)
                times.append(now)
            await asyncio.sleep(per_message)
    except grpc.aio.AioRpcError as e:
        return seqs, e.code().name, times
    finally:
        await channel.close()
    return seqs, None, times


@needs_cache
@pytest.mark.emulator_only  # the pending window's length is the emulator's deletion_delay
async def test_a_stream_still_being_deleted_is_not_served_from_the_cache() -> None:
    """S2 lists a stream being deleted with `deleted_at` until its background deletion ends (S2:
    lite/src/backend/streams.rs `mark_stream_deleted`), with the same `created_at`: the cache must not
    take that listing for the live incarnation. A window longer than max age: a replay past max age
    but inside the window gets no record of it."""
    emulator = EmulatorConfig(port=0, heartbeat_min=1.0, heartbeat_max=2.0, deletion_delay=MAX_AGE + SLACK + 5)
    async with SidecarHarness(emulator=emulator, history_cache_max_age=MAX_AGE) as h:
        await fill(h, "pending", 1, 300)
        for _ in range(2):  # the second from the cache, confirmed with S2
            seqs, err = await session(h, stream="pending", seq_num=0, count=300)
            assert err is None and len(seqs) == 300
        await delete(h, "pending")
        await asyncio.sleep(MAX_AGE + SLACK)
        listed = await h.http.get(f"{h.url}/v1/streams?prefix=pending", headers={"s2-basin": h.basin})
        assert (await listed.json())["streams"][0]["deleted_at"] is not None  # still being deleted
        for replay in (session, read):
            rows, err = await replay(h, stream="pending", seq_num=0, count=300)
            # S2's answer is 409 stream_deletion_pending: NOT_FOUND (gone for readers).
            assert (rows, err) == ([], "NOT_FOUND"), replay.__name__


@needs_cache
async def test_a_slow_replay_of_a_deleted_stream_stops_within_max_age() -> None:
    # One lookup used to hand a session the whole cached range, however slowly
    # its app read it; S2 (and the cache off) end the session with NOT_FOUND.
    incs = Incarnations()
    n = 20_000
    async with SidecarHarness(history_cache_max_age=MAX_AGE) as h:
        await fill(h, "slow", 1, n, size=1000)
        seqs, err = await checked_session(h, incs, stream="slow", seq_num=0, count=n)
        assert err is None and len(seqs) == n  # all of it cached now
        task = asyncio.create_task(slow_reader(h, incs, 0.5, stream="slow", seq_num=0, count=n))
        await asyncio.sleep(0.5)
        await remove(h, "slow", incs, 1)
        seqs, err, _ = await task
    assert err == "NOT_FOUND" and len(seqs) < n, (err, len(seqs))


@needs_cache
async def test_a_slow_replay_over_a_trim_skips_the_trimmed_records_within_max_age() -> None:
    n, point = 20_000, 18_000
    async with SidecarHarness(history_cache_max_age=MAX_AGE) as h:
        await fill(h, "slowtrim", 1, n, size=1000)
        seqs, err = await session(h, stream="slowtrim", seq_num=0, count=n)
        assert err is None and len(seqs) == n
        task = asyncio.create_task(slow_reader(h, None, 0.5, stream="slowtrim", seq_num=0, count=n + 1))
        await asyncio.sleep(0.5)
        trimmed_at = time.monotonic()
        await h.append("slowtrim", [trim_to(point)])  # seq_num 20,000; the session reads it last
        seqs, err, times = await task
    assert err is None and seqs[-1] == n
    late = [s for s, t in zip(seqs, times, strict=True) if s < point and t > trimmed_at + MAX_AGE + SLACK]
    assert not late, f"{len(late)} trimmed records received past max age, the first {late[0]}"
    assert seqs == sorted(set(seqs)) and seqs[-(n - point + 1) :] == list(range(point, n + 1))


@needs_cache
async def test_a_read_partly_in_the_cache_answers_the_whole_batch() -> None:
    # S2 answers a one-shot read with as many records as its bounds allow (at most 1000
    # records or 1 MiB metered).
    async with SidecarHarness() as h:
        await fill(h, "short", 1, 400)
        for _ in range(2):  # the second from the cache (which then counts as confirmed with S2)
            seqs, err = await session(h, stream="short", seq_num=0, count=5)
            assert err is None and len(seqs) == 5
        seqs2, err = await read(h, stream="short", seq_num=0, count=1000)
        assert err is None and [r[0] for r in seqs2] == list(range(400))
        seqs2, err = await read(h, stream="short", seq_num=2)
        assert err is None and [r[0] for r in seqs2] == list(range(2, 400))
        # Cached in the middle too: 0..4 and 100..149 held, the rest read upstream in the call.
        await session(h, stream="short", seq_num=100, count=50)
        rows, err = await read(h, stream="short", seq_num=0, count=300)
        assert err is None and [r[0] for r in rows] == list(range(300))
        assert [r[2] for r in rows] == [f"inc1:{i}:".encode().ljust(100, b".") for i in range(300)]


async def _direct_read(h: SidecarHarness, stream: str, req: dict[str, Any]) -> list[int]:
    """The same read straight from the emulator (S2's answer)."""
    assert h.http is not None
    params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in req.items()}
    async with h.http.get(f"{h.url}/v1/streams/{stream}/records", params=params, headers={"s2-basin": h.basin}) as resp:
        body = await resp.json()
    return [r["seq_num"] for r in body.get("records", [])]


@needs_cache
async def test_random_reads_over_a_randomly_filled_cache_answer_as_s2_does() -> None:
    rng = random.Random(20)
    async with SidecarHarness() as h:
        await fill(h, "mix", 1, 3000, size=rng.choice((50, 300, 1200)))
        for _ in range(150):
            lo = rng.randrange(0, 3000)
            await session(h, stream="mix", seq_num=lo, count=rng.randrange(1, 400))  # fills the cache
            req: dict[str, Any] = {"seq_num": rng.randrange(0, 3000)}
            if rng.random() < 0.5:
                req["count"] = rng.randrange(1, 1500)
            if rng.random() < 0.3:
                req["bytes"] = rng.randrange(1, 2 << 20)
            if rng.random() < 0.2:
                req["until"] = 1000 + rng.randrange(0, 3000)
            rows, err = await read(h, stream="mix", **req)
            assert err is None
            assert [r[0] for r in rows] == await _direct_read(h, "mix", req), req


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@needs_cache
async def test_a_basin_that_may_not_list_streams_serves_by_age_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    incs = Incarnations()
    async with SidecarHarness(history_cache_max_age=MAX_AGE) as h:
        await h.inject_fault(
            kind="list", basin=h.basin, fail=10_000, status=403, code="permission_denied", message="scoped token"
        )
        await fill(h, "scoped", 1, 400)
        before = await served(h, "scoped")
        seqs, err = await checked_session(h, incs, stream="scoped", seq_num=100, count=200)
        assert err is None and len(seqs) == 200
        seqs, err = await checked_session(h, incs, stream="scoped", seq_num=100, count=200)
        assert err is None and len(seqs) == 200
        # The second replay came from the cache (+1: the one-record read of the confirmation that
        # found listing refused).
        assert await served(h, "scoped") - before <= 201
        assert h.sidecar is not None
        text = h.sidecar.metrics.render()
        assert 's2_sidecar_history_cache_basins{mode="age"} 1' in text
        assert 's2_sidecar_history_cache_basins{mode="incarnation"} 0' in text
        assert any("refused to list" in r.getMessage() and h.basin in r.getMessage() for r in caplog.records)
        await remove(h, "scoped", incs, 1)
        await h.create_stream("scoped")
        await fill(h, "scoped", 2, 400)
        await checked_session(h, incs, stream="scoped", seq_num=0, count=400)
        await replay_for(h, incs, "scoped", (0, 100, 250), 3 * MAX_AGE)
        await asyncio.sleep(MAX_AGE + 0.1)
        before = await served(h, "scoped")
        seqs, err = await checked_session(h, incs, stream="scoped", seq_num=0, count=400)
        assert err is None and await served(h, "scoped") - before == 400  # past max age: read again


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@needs_cache
async def test_an_incarnation_confirmed_keeps_serving_past_max_age_without_rereading() -> None:
    async with SidecarHarness(history_cache_max_age=0.5) as h:
        await fill(h, "kept", 1, 1000)
        seqs, err = await session(h, stream="kept", seq_num=0, count=1000)
        assert err is None and len(seqs) == 1000
        before = await served(h, "kept")
        for _ in range(3):
            await asyncio.sleep(0.6)
            seqs, err = await session(h, stream="kept", seq_num=0, count=1000)
            assert err is None and len(seqs) == 1000
        # Only the confirmations' one-record reads went upstream: S2's listing vouched for the rest.
        assert await served(h, "kept") - before <= 3
        assert h.sidecar is not None
        text = h.sidecar.metrics.render()
        assert 's2_sidecar_history_cache_basins{mode="incarnation"} 1' in text
        assert 's2_sidecar_history_cache_confirmations_total{result="same"}' in text


@needs_cache
async def test_a_replay_behind_a_slowly_read_leader_does_not_go_at_its_pace() -> None:
    # The leader's app reads (slowly), so its upstream session keeps moving; a reader waiting for
    # it waits at most 1 s in all, then reads on its own.
    n = 20_000
    async with SidecarHarness() as h:
        await fill(h, "pace", 1, n, size=1000)
        channel = grpc.aio.insecure_channel(h.address, options=[("grpc.http2.bdp_probe", 0)])
        got: list[int] = []

        async def leader() -> None:
            stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
            async for msg in stub.ReadSession(pb.ReadSessionRequest(stream="pace", seq_num=0, count=n)):
                got.extend(r.seq_num for r in msg.records)
                await asyncio.sleep(0.7)  # moves every 0.7 s: within the old per-move patience

        task = asyncio.create_task(leader())
        await asyncio.sleep(1.0)
        seqs, err = await session(h, stream="pace", seq_num=0, count=n)
        assert err is None and [r[0] for r in seqs] == list(range(n))
        assert len(got) < n // 2, len(got)  # done long before the leader was half way
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await channel.close()
