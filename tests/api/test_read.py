"""`Read` end to end: gRPC client → sidecar → HTTP → emulator, over loopback sockets."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.types import AppendRecord
from tests.api.helpers import bodies, error_info, padded, seq_nums, trailing

Code = grpc.StatusCode


async def test_read_one_batch_from_seq_num_0_with_count_100(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 250)
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0, count=100))
    assert seq_nums(resp) == list(range(100))
    assert bodies(resp) == [padded(i) for i in range(100)]
    # No tail asserted: S2 sends one only on batches served from recent records, not on catch-up.


async def test_read_is_capped_at_1000_records(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 1500)
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=100))
    assert seq_nums(resp) == list(range(100, 1100))


async def test_read_tail_offset(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 30)
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, tail_offset=10))
    assert seq_nums(resp) == list(range(20, 30))
    saturated = await harness.stub.Read(pb.ReadRequest(stream=stream, tail_offset=1000))
    assert seq_nums(saturated) == list(range(30))


async def test_read_from_timestamp_and_until(harness: SidecarHarness, stream: str) -> None:
    base = int(time.time() * 1000) - 60_000
    await harness.append(stream, [AppendRecord(body=padded(i), timestamp=base + 10 * i) for i in range(20)])
    from_ts = await harness.stub.Read(pb.ReadRequest(stream=stream, timestamp=base + 45))
    assert seq_nums(from_ts) == list(range(5, 20))
    assert from_ts.records[0].timestamp == base + 50
    window = await harness.stub.Read(pb.ReadRequest(stream=stream, timestamp=base + 50, until=base + 100))
    assert seq_nums(window) == list(range(5, 10))
    until_only = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0, until=base + 30))
    assert seq_nums(until_only) == [0, 1, 2]


async def test_read_bytes_limit_is_metered(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 10, size=16)  # each record meters 8 + 16 = 24 bytes
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0, bytes=24 * 3 + 23))
    assert seq_nums(resp) == [0, 1, 2]
    none = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0, bytes=23))
    assert list(none.records) == []


async def test_count_zero_reads_nothing(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 5)
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0, count=0))
    assert list(resp.records) == []


async def test_binary_bodies_and_headers_pass_through(harness: SidecarHarness, stream: str) -> None:
    rec = AppendRecord(body=bytes(range(256)), headers=((b"\x00k\xff", b"\xfe\x00"), (b"type", b"")))
    await harness.append(stream, [rec])
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0))
    (got,) = resp.records
    assert got.body == bytes(range(256))
    assert [(h.name, h.value) for h in got.headers] == [(b"\x00k\xff", b"\xfe\x00"), (b"type", b"")]


async def test_long_poll_returns_early_when_a_record_is_appended(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 3)
    started = time.monotonic()
    call = harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=3, wait=20))
    await asyncio.sleep(0.3)
    await harness.append(stream, [b"late"])
    resp = await call
    assert bodies(resp) == [b"late"] and seq_nums(resp) == [3]
    assert time.monotonic() - started < 10


async def test_long_poll_returns_empty_when_the_wait_runs_out(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 3)
    started = time.monotonic()
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=3, wait=1))
    assert list(resp.records) == []
    assert time.monotonic() - started >= 0.9


async def test_long_poll_is_cut_short_by_the_callers_deadline(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 1)
    started = time.monotonic()
    resp = await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=1, wait=30), timeout=2.5)
    assert list(resp.records) == []  # an empty batch before the deadline, not DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2.5


async def test_start_past_the_tail_is_out_of_range_with_the_tail(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=9))
    err = info.value
    assert err.code() == Code.OUT_OF_RANGE
    assert "next seq_num is 5" in (err.details() or "") and "clamp" in (err.details() or "")
    assert trailing(err)["s2-tail-seq-num"] == "5"
    assert error_info(err).metadata["tail_seq_num"] == "5"


@pytest.mark.parametrize(
    "start",
    [{"seq_num": 5}, {"seq_num": 5, "clamp": True}, {"seq_num": 9, "clamp": True}, {"tail_offset": 0}],
    ids=["seq_num", "seq_num+clamp", "past+clamp", "tail_offset"],
)
async def test_start_at_the_tail_without_wait_says_to_wait(
    harness: SidecarHarness, stream: str, start: dict[str, int]
) -> None:
    """S2 answers 416 to a read that starts exactly at the tail (even with clamp) when it cannot
    wait there, as a one-shot read without wait cannot. The message must not tell a caller who
    started at the tail to start at or before it (it once did), but say that nothing is there yet
    and to set wait."""
    await harness.append_many(stream, 5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.stub.Read(pb.ReadRequest(stream=stream, **start))
    err = info.value
    assert err.code() == Code.OUT_OF_RANGE
    details = err.details() or ""
    assert details.startswith("start is the tail (the next seq_num is 5): no record is there yet"), details
    assert "set wait" in details and "past the tail" not in details
    assert trailing(err)["s2-tail-seq-num"] == "5"  # the same details as any 416


async def test_a_bounded_session_at_the_tail_says_to_wait(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=5, count=1, wait=0)):
            pass
    assert info.value.code() == Code.OUT_OF_RANGE
    assert "set wait" in (info.value.details() or "")


async def test_clamp_starts_at_the_tail(harness: SidecarHarness, stream: str) -> None:
    await harness.append_many(stream, 5)
    call = harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=500, clamp=True, wait=10))
    await asyncio.sleep(0.2)
    await harness.append(stream, [b"next"])
    resp = await call
    assert seq_nums(resp) == [5]


async def test_check_tail(harness: SidecarHarness, stream: str) -> None:
    await harness.create_stream(stream)
    empty = await harness.stub.CheckTail(pb.CheckTailRequest(stream=stream))
    assert (empty.tail.seq_num, empty.tail.timestamp) == (0, 0)
    await harness.append(stream, [AppendRecord(body=b"x", timestamp=1234)] * 3)
    # max_staleness_ms=0: read-your-writes (by default a tail up to 1 s old may come from the cache)
    resp = await harness.stub.CheckTail(pb.CheckTailRequest(basin=harness.basin, stream=stream, max_staleness_ms=0))
    assert (resp.tail.seq_num, resp.tail.timestamp) == (3, 1234)


async def test_missing_stream_is_not_found(harness: SidecarHarness, stream: str) -> None:
    for call in (
        harness.stub.Read(pb.ReadRequest(stream=stream, seq_num=0)),
        harness.stub.CheckTail(pb.CheckTailRequest(stream=stream)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == Code.NOT_FOUND
        assert "stream_not_found" in (info.value.details() or "")
        assert error_info(info.value).reason == "stream_not_found"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"basin": "Bad_Basin", "stream": "s"}, "basin"),
        ({"basin": "short", "stream": "s"}, "basin"),
        ({"stream": ""}, "stream"),
        ({"stream": ".."}, "stream"),
        ({"stream": "s", "seq_num": 0, "wait": 61}, "wait"),
        ({"stream": "s", "timestamp": 10, "until": 10}, "until"),
    ],
)
async def test_bad_requests_name_the_field(harness: SidecarHarness, request_fields: dict, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.stub.Read(pb.ReadRequest(**request_fields))
    assert info.value.code() == Code.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}:")
