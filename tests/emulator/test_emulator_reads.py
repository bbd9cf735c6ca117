"""One-shot reads: starts, stops, the tail (416, clamp), long polls, limits, JSON and protobuf."""

from __future__ import annotations

import asyncio
import time

import pytest

from .helpers import S2

TAIL5 = {"seq_num": 5, "timestamp": 40}


def rec(seq: int) -> dict[str, object]:
    """Record `seq` of FIVE as S2's JSON shows it."""
    return {"seq_num": seq, "timestamp": [10, 20, 20, 30, 40][seq], "body": f"r{seq}"}


def batch(*seqs: int) -> dict[str, object]:
    """A catch-up answer: S2 puts the tail only on batches served live (lite/src/backend/read.rs)."""
    return {"records": [rec(s) for s in seqs]}


@pytest.mark.parametrize(
    ("params", "seqs"),
    [
        ("seq_num=0", (0, 1, 2, 3, 4)),
        ("seq_num=3", (3, 4)),
        ("timestamp=0", (0, 1, 2, 3, 4)),
        ("timestamp=20", (1, 2, 3, 4)),  # first record with ts >= 20
        ("timestamp=25", (3, 4)),
        ("timestamp=40", (4,)),
        ("tail_offset=2", (3, 4)),
        ("tail_offset=5", (0, 1, 2, 3, 4)),
        ("tail_offset=100", (0, 1, 2, 3, 4)),  # saturates at the first record
        ("seq_num=0&count=2", (0, 1)),
        ("seq_num=1&count=1", (1,)),
        ("seq_num=0&bytes=25", (0, 1)),  # 10 metered bytes each: a third would make 30
        ("seq_num=0&bytes=30", (0, 1, 2)),
        ("seq_num=0&bytes=9", ()),  # even the first record is too big
        ("seq_num=0&until=30", (0, 1, 2)),  # until is exclusive
        ("seq_num=0&until=11", (0,)),
        ("seq_num=0&until=10", ()),
        ("timestamp=15&until=21", (1, 2)),
        ("seq_num=0&count=0", ()),
        ("seq_num=0&bytes=0", ()),
        ("seq_num=2&count=2&bytes=100&until=100&wait=0&unknown=1", (2, 3)),
        ("seq_num=4&clamp=true", (4,)),
        ("seq_num=0&wait=5", (0, 1, 2, 3, 4)),  # records available: no waiting
    ],
)
async def test_starts_and_stops(s2: S2, five: str, params: str, seqs: tuple[int, ...]) -> None:
    started = time.monotonic()
    assert await s2.read(five, params) == (200, batch(*seqs))
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "params",
    [
        "seq_num=6",  # past the tail
        "seq_num=6&wait=1",
        "timestamp=41",  # past the last timestamp
        "seq_num=5",  # at the tail, cannot follow (one-shot without wait)
        "",  # default start: tail_offset=0, at the tail
        "tail_offset=0&count=5",
        "seq_num=6&clamp=true",  # clamped to the tail, still cannot follow
        "timestamp=99&clamp=true&wait=0",
    ],
)
async def test_416_carries_the_tail(s2: S2, five: str, params: str) -> None:
    assert await s2.read(five, params) == (416, {"tail": TAIL5})


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ("seq_num=1&timestamp=2", 422, "invalid"),
        ("seq_num=1&tail_offset=2", 422, "invalid"),
        ("timestamp=30&until=30", 422, "invalid"),
        ("timestamp=31&until=30", 422, "invalid"),
        ("seq_num=-1", 400, "bad_query"),
        ("count=abc", 400, "bad_query"),
        ("clamp=yes", 400, "bad_query"),
        ("wait=4294967296", 400, "bad_query"),
        # serde's "duplicate field": S2 deserializes the query into a struct (s2-lite 0.43.4)
        ("seq_num=0&seq_num=1", 400, "bad_query"),
        ("seq_num=0&count=1&count=1", 400, "bad_query"),
    ],
)
async def test_bad_queries(s2: S2, five: str, params: str, status: int, code: str) -> None:
    got_status, body = await s2.read(five, params)
    assert (got_status, body["code"]) == (status, code)
    assert body["message"]


async def test_bad_format_header_on_read(s2: S2, five: str) -> None:
    status, body = await s2.read(five, "seq_num=0", {"s2-format": "utf8"})
    assert (status, body["code"]) == (400, "bad_header")


async def test_missing_stream_is_created_on_read(s2: S2, stream: str) -> None:
    """BASIN has `create_stream_on_read`: the read creates the stream, then starts at its tail and
    cannot follow (416). Basins without it answer 404: see test_conformance."""
    assert await s2.read(stream, "seq_num=0") == (416, {"tail": {"seq_num": 0, "timestamp": 0}})


async def test_long_poll_returns_early_on_append(s2: S2, five: str) -> None:
    async def append_later() -> None:
        await asyncio.sleep(0.3)
        await s2.append(five, [{"timestamp": 50, "body": "live"}])

    task = asyncio.create_task(append_later())
    started = time.monotonic()
    status, body = await s2.read(five, "seq_num=5&wait=10")
    elapsed = time.monotonic() - started
    await task
    assert status == 200
    assert body == {
        "records": [{"seq_num": 5, "timestamp": 50, "body": "live"}],
        "tail": {"seq_num": 6, "timestamp": 50},
    }
    assert 0.25 < elapsed < 1.5


async def test_long_poll_with_clamp_past_the_tail(s2: S2, five: str) -> None:
    async def append_later() -> None:
        await asyncio.sleep(0.2)
        await s2.append(five, [{"timestamp": 50, "body": "a"}, {"timestamp": 50, "body": "b"}])

    task = asyncio.create_task(append_later())
    status, body = await s2.read(five, "seq_num=99&clamp=true&wait=5")
    await task
    assert status == 200
    assert [r["seq_num"] for r in body["records"]] == [5, 6]


async def test_long_poll_times_out_empty(s2: S2, five: str) -> None:
    started = time.monotonic()
    assert await s2.read(five, "wait=1") == (200, {"records": []})
    assert 0.9 < time.monotonic() - started < 2
    headers = s2.headers({"Accept": "application/protobuf"})
    async with s2.http.get(s2.path(five, "/records?seq_num=5&wait=1"), headers=headers) as r:
        assert r.status == 200
        assert await r.read() == b""  # an empty ReadBatch


async def test_long_poll_until_stops_on_late_record(s2: S2, five: str) -> None:
    async def append_later() -> None:
        await asyncio.sleep(0.2)
        await s2.append(five, [{"body": "now"}])  # arrival time: far past until=45

    task = asyncio.create_task(append_later())
    started = time.monotonic()
    status, body = await s2.read(five, "seq_num=5&until=45&wait=5")
    await task
    assert status == 200
    assert body["records"] == []
    assert time.monotonic() - started < 1.5


async def test_protobuf_read_bytes(s2: S2, stream: str) -> None:
    await s2.append(stream, [{"timestamp": 5, "body": "ab"}, {"timestamp": 5, "headers": [["k", "v"]]}])
    for accept in ("application/protobuf", "application/x-protobuf", "application/protobuf, application/json"):
        headers = s2.headers({"Accept": accept})
        async with s2.http.get(s2.path(stream, "/records?seq_num=0"), headers=headers) as r:
            assert r.status == 200
            assert r.content_type == "application/protobuf"
            data = await r.read()
        # ReadBatch{records: [{seq_num: 0, timestamp: 5, body: "ab"},
        #                     {seq_num: 1, timestamp: 5, headers: [{name: "k", value: "v"}]}]}
        # (catch-up: no tail)
        assert data == b"\x0a\x06\x10\x05\x22\x02ab" + b"\x0a\x0c\x08\x01\x10\x05\x1a\x06\x0a\x01k\x12\x01v"


async def test_one_shot_caps_at_1000_records(s2: S2, stream: str) -> None:
    await s2.append(stream, [{"timestamp": 1, "body": ""}] * 1000)
    await s2.append(stream, [{"timestamp": 1, "body": ""}] * 200)
    status, body = await s2.read(stream, "seq_num=0&count=5000")
    assert status == 200
    assert len(body["records"]) == 1000
    assert body["records"][-1]["seq_num"] == 999
    status, body = await s2.read(stream, "seq_num=1000")
    assert len(body["records"]) == 200


async def test_one_shot_caps_at_1_mib(s2: S2, stream: str) -> None:
    big = "x" * (600 * 1024)
    await s2.append(stream, [{"timestamp": 1, "body": big}])
    await s2.append(stream, [{"timestamp": 1, "body": big}])
    status, body = await s2.read(stream, "seq_num=0&bytes=99999999")
    assert status == 200
    assert [r["seq_num"] for r in body["records"]] == [0]


@pytest.mark.parametrize(
    "params",
    [
        "seq_num=5&count=0",  # at the tail
        "seq_num=9&count=0",  # past it, without clamp
        "seq_num=9&bytes=0",
        "timestamp=99&count=0",
        "tail_offset=0&bytes=0",
    ],
)
async def test_an_exhausted_limit_is_an_empty_answer_wherever_it_starts(s2: S2, five: str, params: str) -> None:
    """count=0 or bytes=0 ends the read before the start is checked against the tail: 200 empty,
    never 416, also past the tail without `clamp` (S2: lite/src/backend/read.rs `read_session`,
    "An exhausted limit completes even when the requested start is unwritten"; s2-lite 0.43.4
    answers 200 `{"records":[]}`)."""
    assert await s2.read(five, params) == (200, {"records": []})


async def test_a_timestamp_start_on_a_fully_trimmed_stream_is_416(s2: S2, five: str) -> None:
    """A timestamp is looked up among the records not trimmed; none found resolves to the tail,
    where a read that cannot wait is 416 (S2: lite/src/backend/read.rs `read_start_seq_num`,
    `resolve_timestamp(...).unwrap_or(tail)`); a seq_num start there stays 200 empty."""
    trim = {"headers": [["", "trim"]], "body": "\u0000" * 7 + "\u0063", "timestamp": 45}  # trim through 99
    await s2.append(five, [trim])  # seq 5 trims itself and every record before it
    tail = {"seq_num": 6, "timestamp": 45}
    assert await s2.read(five, "timestamp=0") == (416, {"tail": tail})
    assert await s2.read(five, "timestamp=45") == (416, {"tail": tail})
    assert await s2.read(five, "seq_num=0") == (200, {"records": []})
    started = time.monotonic()
    assert await s2.read(five, "timestamp=0&wait=1") == (200, {"records": []})  # may wait: waits, then empty
    assert time.monotonic() - started >= 0.9
