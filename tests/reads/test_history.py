"""The history cache against the real emulator: replays shared, bounds kept, and S2's answers kept
through deletion, re-creation and trimming. The emulator's `read_records` (records it served, per
stream) is the witness of what went upstream."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.types import AppendRecord

CACHE_ON = int(os.environ.get("S2_SIDECAR_TEST_HISTORY_CACHE_BYTES", 1)) != 0
needs_cache = pytest.mark.skipif(not CACHE_ON, reason="the history cache is off in this run")

Row = tuple[int, int, bytes]


async def session(h: SidecarHarness, **req: Any) -> tuple[list[Row], str | None]:
    """Every record a ReadSession delivers (seq_num, timestamp, body), and its error code if any."""
    out: list[Row] = []
    try:
        async for msg in h.stub.ReadSession(pb.ReadSessionRequest(**req)):
            out.extend((r.seq_num, r.timestamp, r.body) for r in msg.records)
    except grpc.aio.AioRpcError as e:
        return out, e.code().name
    return out, None


async def read(h: SidecarHarness, **req: Any) -> tuple[list[Row], str | None]:
    try:
        msg = await h.stub.Read(pb.ReadRequest(**req))
    except grpc.aio.AioRpcError as e:
        return [], e.code().name
    return [(r.seq_num, r.timestamp, r.body) for r in msg.records], None


async def served(h: SidecarHarness, stream: str) -> int:
    return int((await h.emulator_stats())["read_records"].get(f"{h.basin}/{stream}", 0))


async def delete(h: SidecarHarness, stream: str) -> None:
    await h.delete_stream(stream)


async def append_stamped(h: SidecarHarness, stream: str, n: int, *, prefix: bytes = b"r", size: int = 100) -> None:
    """`n` records with explicit timestamps (1000 + 10 * index), so two emulators hold identical streams."""
    for lo in range(0, n, 500):
        await h.append(
            stream,
            [
                AppendRecord(body=prefix + str(i).zfill(size).encode(), timestamp=1000 + 10 * i)
                for i in range(lo, min(n, lo + 500))
            ],
        )


def trim_to(point: int) -> AppendRecord:
    return AppendRecord(body=point.to_bytes(8, "big"), headers=((b"", b"trim"),))


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@needs_cache
async def test_concurrent_replays_read_the_range_from_upstream_once() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "replay", 3000, size=1000)
        results = await asyncio.gather(*(session(h, stream="replay", seq_num=0, count=3000) for _ in range(10)))
        for rows, err in results:
            assert err is None and [r[0] for r in rows] == list(range(3000))
        upstream = await served(h, "replay")
        assert upstream <= 1.2 * 3000, upstream  # without the cache: 10 x 3000
        # A replay after they finished: from the cache (a revalidation reads a record or two).
        rows, err = await session(h, stream="replay", seq_num=0, count=3000)
        assert err is None and [r[0] for r in rows] == list(range(3000))
        assert await served(h, "replay") <= upstream + 2


@needs_cache
async def test_a_small_cache_loses_nothing_and_repeats_nothing() -> None:
    # 64 KiB against 3000 x ~120 bytes: the cache evicts all the time, readers fetch their own gaps.
    async with SidecarHarness(history_cache_bytes=64 * 1024) as h:
        await append_stamped(h, "small", 3000)
        counts = [3000, 2999, 1500, 3000, 10]
        results = await asyncio.gather(*(session(h, stream="small", seq_num=0, count=c) for c in counts))
        for count, (rows, err) in zip(counts, results, strict=True):
            assert err is None and [r[0] for r in rows] == list(range(count))
        assert h.sidecar is not None and h.sidecar.reader is not None
        assert h.sidecar.reader.history.bytes <= 64 * 1024


async def test_bounds_answer_as_without_the_cache() -> None:
    """count, bytes, until, clamp, wait: identical with the cache off, cold and warm."""
    queries: list[dict[str, Any]] = [
        {"seq_num": 5, "count": 7},
        {"seq_num": 3, "bytes": 1000},
        {"seq_num": 0, "until": 1000 + 10 * 20},
        {"seq_num": 10},  # bounded by nothing but follows: cut by count below instead
        {"seq_num": 250, "count": 100},  # runs to the tail: ends there
        {"seq_num": 250, "count": 100, "wait": 1},  # follows for a second at the tail, then ends
        {"seq_num": 900, "count": 5},  # past the tail: 416 (OUT_OF_RANGE)
        {"seq_num": 900, "count": 5, "clamp": True},  # clamped to the tail, which cannot follow
        {"seq_num": 290, "bytes": 1, "count": 2},  # the first record does not fit
        {"seq_num": 0, "count": 300, "bytes": 5000, "until": 1000 + 10 * 250},
    ]
    answers: list[list[tuple[list[Row], str | None]]] = []
    for cache in (0, 256 * 1024 * 1024):
        async with SidecarHarness(history_cache_bytes=cache) as h:
            await append_stamped(h, "bounds", 300)
            got = []
            for _ in range(2):  # cold, then warm
                for q in queries:
                    if q == {"seq_num": 10}:
                        q = {"seq_num": 10, "count": 290}
                    got.append(await session(h, stream="bounds", **q))
                    got.append(await read(h, stream="bounds", **q))
            answers.append(got)
    off, on = answers
    assert on == off
    assert off[0][0][0][0] == 5 and len(off[0][0]) == 7  # the comparison compared something


@needs_cache
async def test_a_deleted_stream_is_not_answered_from_the_cache() -> None:
    # Within max age of the deletion the cache may still answer (the promise's bound; see
    # test_history_incarnations.py for it tried every way); past it, S2's 404.
    async with SidecarHarness(history_cache_max_age=0.5) as h:
        await append_stamped(h, "again", 50, prefix=b"old")
        rows, _ = await session(h, stream="again", seq_num=0, count=50)
        assert rows[0][2].startswith(b"old")
        await delete(h, "again")
        await asyncio.sleep(0.6)
        _, err = await read(h, stream="again", seq_num=0, count=10)
        assert err == "NOT_FOUND"  # S2's 404 also drops what the cache held
        await h.create_stream("again")
        await h.append("again", [b"new" + bytes([i]) for i in range(60)])
        rows, err = await session(h, stream="again", seq_num=0, count=60)
        assert err is None and [r[2][:3] for r in rows] == [b"new"] * 60
        rows, err = await read(h, stream="again", seq_num=0, count=5)
        assert err is None and [r[2][:3] for r in rows] == [b"new"] * 5


@needs_cache
async def test_a_recreated_stream_unseen_is_answered_anew_after_max_age() -> None:
    # The sidecar sees no 404 here: the cache's bound (max age) is what brings S2's answer back.
    async with SidecarHarness(history_cache_max_age=0.3) as h:
        await append_stamped(h, "twin", 50, prefix=b"old")
        rows, _ = await session(h, stream="twin", seq_num=0, count=50)
        await delete(h, "twin")
        await h.create_stream("twin")
        await append_stamped(h, "twin", 60, prefix=b"new")  # same timestamps, other bodies
        await asyncio.sleep(0.4)
        rows, err = await session(h, stream="twin", seq_num=0, count=60)
        assert err is None and [r[2][:3] for r in rows] == [b"new"] * 60


@pytest.mark.emulator_only  # the emulator trims at once; S2 eventually
@needs_cache
async def test_a_trim_the_sidecar_reads_drops_what_it_trimmed() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "trim", 100)
        await session(h, stream="trim", seq_num=0, count=100)  # cached
        await h.append("trim", [trim_to(40)])  # seq_num 100
        rows, err = await session(h, stream="trim", seq_num=100, count=1)
        assert err is None and [r[0] for r in rows] == [100]  # the sidecar saw the command
        rows, err = await session(h, stream="trim", seq_num=0, count=10)
        assert err is None and [r[0] for r in rows] == list(range(40, 50))  # as S2: the first remaining
        rows, err = await read(h, stream="trim", seq_num=5, count=3)
        assert err is None and [r[0] for r in rows] == [40, 41, 42]


@needs_cache
async def test_a_trim_the_sidecar_did_not_see_shows_within_max_age() -> None:
    async with SidecarHarness(history_cache_max_age=0.3) as h:
        await append_stamped(h, "trim2", 100)
        await session(h, stream="trim2", seq_num=0, count=100)
        await h.append("trim2", [trim_to(60)])
        await asyncio.sleep(0.4)
        rows, err = await session(h, stream="trim2", seq_num=0, count=10)
        assert err is None and [r[0] for r in rows] == list(range(60, 70))


@needs_cache
async def test_replays_from_the_cache_then_follow_live() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "live", 200)
        await session(h, stream="live", seq_num=0, count=200)
        got: list[int] = []
        replayed = asyncio.Event()

        async def follow() -> None:
            async for msg in h.stub.ReadSession(pb.ReadSessionRequest(stream="live", seq_num=0)):
                got.extend(r.seq_num for r in msg.records)
                if len(got) >= 200:
                    replayed.set()
                if len(got) >= 205:
                    return

        task = asyncio.create_task(follow())
        await asyncio.wait_for(replayed.wait(), 20)
        await h.append("live", [b"x"] * 5)
        await asyncio.wait_for(task, 20)
        assert got == list(range(205))


@needs_cache
async def test_metrics_and_span_say_what_the_cache_served() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "seen", 100)
        await session(h, stream="seen", seq_num=0, count=100)
        await session(h, stream="seen", seq_num=0, count=100)
        assert h.sidecar is not None
        text = h.sidecar.metrics.render()
        assert 's2_sidecar_history_cache_records_total{result="hit"} 100' in text
        assert 's2_sidecar_history_cache_records_total{result="miss"} 100' in text
        assert "s2_sidecar_history_cache_bytes " in text


@needs_cache
async def test_spans_say_how_many_records_came_from_the_history_cache() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with SidecarHarness(tracer_provider=provider) as h:
        await append_stamped(h, "spans", 100)
        await session(h, stream="spans", seq_num=0, count=100)  # cold: from upstream
        await session(h, stream="spans", seq_num=10, count=50)  # warm
        await read(h, stream="spans", seq_num=20, count=5)
    spans = exporter.get_finished_spans()
    cold, warm = [s for s in spans if s.name.endswith("/ReadSession")]
    [one] = [s for s in spans if s.name.endswith("/Read")]
    assert "s2.cache" not in (cold.attributes or {})
    assert (warm.attributes or {})["s2.cache"] == "history"
    assert (warm.attributes or {})["s2.cache.records"] == 50
    assert (one.attributes or {})["s2.cache"] == "history" and (one.attributes or {})["s2.cache.records"] == 5


@needs_cache
async def test_a_replay_whose_app_stopped_reading_holds_no_one_back() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "stall", 20_000, size=1000)
        stalled = h.stub.ReadSession(pb.ReadSessionRequest(stream="stall", seq_num=0, count=20_000))
        first = await stalled.read()  # its upstream session goes on until gRPC flow control stops it
        assert first.records[0].seq_num == 0
        rows, err = await session(h, stream="stall", seq_num=0, count=20_000)
        assert err is None and [r[0] for r in rows] == list(range(20_000))
        stalled.cancel()


async def test_concurrent_bounded_replays_each_keep_their_own_bounds() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "mixed", 3000)  # bodies b"r" + 100 digits: metered 8 + 101 each
        queries: list[dict[str, Any]] = [
            {"seq_num": 0, "count": 2500},
            {"seq_num": 0, "bytes": 50_000},
            {"seq_num": 0, "until": 1000 + 10 * 1234},
            {"seq_num": 0, "count": 5000},  # past the tail: ends there (no wait)
            {"seq_num": 700, "count": 100},
            {"seq_num": 0, "bytes": 50_000, "count": 300},
        ]
        results = await asyncio.gather(*(session(h, stream="mixed", **q) for q in queries))
        expected = [
            range(2500),
            range(50_000 // 109),
            range(1234),
            range(3000),
            range(700, 800),
            range(300),
        ]
        for q, want, (rows, err) in zip(queries, expected, results, strict=True):
            assert err is None, q
            assert [r[0] for r in rows] == list(want), q
            assert all(r[1] == 1000 + 10 * r[0] and r[2] == b"r" + str(r[0]).zfill(100).encode() for r in rows)


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@needs_cache
async def test_timestamp_and_tail_offset_starts_resolve_upstream() -> None:
    async with SidecarHarness() as h:
        await append_stamped(h, "where", 100)
        await session(h, stream="where", seq_num=0, count=100)  # all cached
        before = await served(h, "where")
        rows, err = await session(h, stream="where", timestamp=1000 + 10 * 40 - 5, count=5)
        assert err is None and [r[0] for r in rows] == [40, 41, 42, 43, 44]
        rows, err = await session(h, stream="where", tail_offset=3, count=3)
        assert err is None and [r[0] for r in rows] == [97, 98, 99]
        rows, err = await read(h, stream="where", timestamp=1000 + 10 * 7, count=2)
        assert err is None and [r[0] for r in rows] == [7, 8]
        assert await served(h, "where") == before + 5 + 3 + 2  # S2 answered where each starts


@pytest.mark.emulator_only  # emulator hooks: stats, faults
@needs_cache
async def test_a_read_with_a_deadline_does_not_wait_for_a_stuck_confirmation() -> None:
    async with SidecarHarness(history_cache_max_age=0.2) as h:
        await append_stamped(h, "stuck", 50)
        await session(h, stream="stuck", seq_num=0, count=50)
        await asyncio.sleep(0.3)  # the entries now need S2's confirmation, whose CheckTail hangs
        await h.inject_fault(kind="tail", stream="stuck", stall_seconds=30)
        msg = await h.stub.Read(pb.ReadRequest(stream="stuck", seq_num=10, count=3), timeout=3)
        assert [r.seq_num for r in msg.records] == [10, 11, 12]  # answered upstream, by the deadline
