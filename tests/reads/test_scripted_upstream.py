"""Protocol edge cases against a scripted upstream (tests/scripted_upstream.py): what S2 may send,
what a broken upstream might send, and what the app must see: every record once, in order."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.upstream import UpstreamFormat
from tests.scripted_upstream import Heartbeat, Pause, Records, Reset, Terminal, body_of, scripted_sidecar


async def read(stub: object, request: pb.ReadSessionRequest, timeout: float = 20) -> tuple[list[int], int]:
    """Seq_nums of every record the session delivered (checking each body), and its heartbeats."""
    seen: list[int] = []
    heartbeats = 0
    async for msg in stub.ReadSession(request, timeout=timeout):  # type: ignore[attr-defined]
        for r in msg.records:
            assert r.body.startswith(body_of(r.seq_num)), "a record's body does not match its seq_num"
            seen.append(r.seq_num)
        heartbeats += not msg.records
    return seen, heartbeats


async def test_a_heartbeat_ahead_of_the_records_is_an_upstream_error_not_a_skip() -> None:
    """Records 0-4, a heartbeat with tail 7, then records 5-6. A heartbeat may never skip
    records the session has not delivered (S2 heartbeats once it has sent everything below the
    tail); the session resumes from seq_num 5."""
    async with scripted_sidecar() as (upstream, stub, _):
        upstream.script(Records(0, 5), Heartbeat(7), Records(5, 2))
        upstream.script(Records(5, 5))
        seen, _ = await read(stub, pb.ReadSessionRequest(stream="s", seq_num=0, count=10, wait=5))
        assert seen == list(range(10))
        assert [r.get("seq_num") for r in upstream.requests] == ["0", "5"]
        assert upstream.requests[1]["count"] == "5"


async def test_a_gap_inside_one_response_is_an_upstream_error() -> None:
    async with scripted_sidecar() as (upstream, stub, _):
        upstream.script(Records(0, 5), Records(8, 2))
        upstream.script(Records(5, 5))
        seen, _ = await read(stub, pb.ReadSessionRequest(stream="s", seq_num=0, count=10))
        assert seen == list(range(10))
        assert [r.get("seq_num") for r in upstream.requests] == ["0", "5"]


async def test_a_resumed_session_continues_past_trimmed_records() -> None:
    """S2 answers a read that starts below the trim point from the first remaining record
    (s2-lite's read path scans from the start key).
    Before: the batch at 9 was taken for a discontinuity and the session ended UNAVAILABLE."""
    async with scripted_sidecar(retry_attempts=3) as (upstream, stub, sidecar):
        upstream.script(Records(0, 5), Reset())
        upstream.script(Records(9, 3))  # 5..8 were trimmed while we reconnected
        seen, _ = await read(stub, pb.ReadSessionRequest(stream="s", seq_num=0, count=8))
        assert seen == [0, 1, 2, 3, 4, 9, 10, 11]  # count limits delivered records
        assert [r.get("seq_num") for r in upstream.requests] == ["0", "5"]
        assert sidecar.metrics.trimmed_records_skipped.labels().value == 4


async def test_a_resumed_session_that_finds_everything_trimmed_follows_from_the_tail() -> None:
    async with scripted_sidecar(retry_attempts=3) as (upstream, stub, _):
        upstream.script(Records(0, 5), Reset())
        upstream.script(Heartbeat(20), Records(20, 2))
        seen, heartbeats = await read(stub, pb.ReadSessionRequest(stream="s", seq_num=0, count=7))
        assert seen == [0, 1, 2, 3, 4, 20, 21] and heartbeats == 1


async def test_a_batch_larger_than_a_grpc_message_is_split_at_records() -> None:
    """Header-heavy records encode to about twice their metered size; a batch
    past the message limit reached the app as one 6 MB message and failed RESOURCE_EXHAUSTED."""
    async with scripted_sidecar() as (upstream, stub, _):
        # 6 records of ~1 MiB of protobuf each (1-byte header pairs): one 6 MiB frame.
        upstream.script(Records(0, 6, headers=110_000, body_size=100), Records(6, 1))
        sizes: list[int] = []
        seen: list[int] = []
        async for msg in stub.ReadSession(pb.ReadSessionRequest(stream="s", seq_num=0, count=7), timeout=30):
            sizes.append(msg.ByteSize())
            seen.extend(r.seq_num for r in msg.records)
        assert seen == list(range(7))
        assert max(sizes) <= 4 * 1024 * 1024 and len(sizes) >= 2


async def test_a_unary_read_never_answers_more_than_one_message_allows() -> None:
    """One Read answers one message: past the limit it answers the records that fit (the app
    continues from the last one, as after any batch)."""
    async with scripted_sidecar() as (upstream, stub, _):
        upstream.one_shot = Records(0, 6, headers=110_000)
        resp = await stub.Read(pb.ReadRequest(stream="s", seq_num=0), timeout=10)
        n = len(resp.records)
        assert 1 <= n < 6 and [r.seq_num for r in resp.records] == list(range(n))
        assert resp.ByteSize() <= 4 * 1024 * 1024


async def test_heartbeats_reset_the_retry_budget() -> None:
    """With 12 drops, each after a successful reconnect that delivered a
    heartbeat, the session failed UNAVAILABLE once 10 attempts were counted. Progress resets the
    budget, as S2's SDKs reset theirs after each delivered batch."""
    async with scripted_sidecar(retry_attempts=3) as (upstream, stub, _):
        for _ in range(12):
            upstream.script(Heartbeat(5), Reset())
        upstream.script(Records(5, 1, tail=6))
        seen, heartbeats = await read(stub, pb.ReadSessionRequest(stream="s", tail_offset=0, count=1, wait=30))
        assert seen == [5] and heartbeats == 12


async def test_wait_counts_from_the_first_heartbeat_across_reconnects() -> None:
    """`tail_offset 0, wait 3` with one upstream drop ended at 5.1 s (the wait
    restarted in full). S2's wait starts at the first heartbeat and only batches reset it."""
    async with scripted_sidecar() as (upstream, stub, _):
        upstream.script(Heartbeat(5), Pause(1.0), Reset())
        upstream.script(Heartbeat(5), Pause(2.0))  # ends the session when the wait runs out, as S2 does
        seen, _ = await read(stub, pb.ReadSessionRequest(stream="s", tail_offset=0, count=1, wait=3), timeout=10)
        assert seen == []
        assert upstream.requests[1]["wait"] == "2"  # 3 s less the second already waited


async def test_reconnect_advice_resumes_at_once_and_at_most_once_a_minute() -> None:
    """S2's s2s frames may set the reconnect-advised flag (0x10); S2's SDKs then end the session
    after that batch and resume, acting on advice at most once a minute (S2's TypeScript SDK:
    lib/stream/transport/s2s, AdvisedReconnects)."""
    async with scripted_sidecar() as (upstream, stub, sidecar):
        upstream.script(Records(0, 5, advised=True), Pause(30))
        upstream.script(Records(5, 5, advised=True), Records(10, 5))  # a second advice: stay on
        started = time.monotonic()
        seen, _ = await read(stub, pb.ReadSessionRequest(stream="s", seq_num=0, count=15))
        assert seen == list(range(15))
        assert time.monotonic() - started < 20  # did not sit out the 30 s pause
        assert [r.get("seq_num") for r in upstream.requests] == ["0", "5"]
        assert sidecar.metrics.advised_reconnects.labels().value == 1


@pytest.mark.parametrize(
    ("code", "status", "grpc_code"),
    [
        ("stream_deletion_pending", 409, grpc.StatusCode.NOT_FOUND),  # being deleted: gone for readers
        ("basin_deletion_pending", 409, grpc.StatusCode.NOT_FOUND),
        ("decryption_failed", 400, grpc.StatusCode.PERMISSION_DENIED),  # a wrong encryption key
    ],
)
async def test_sse_error_codes_are_not_retried_as_500s(code: str, status: int, grpc_code: grpc.StatusCode) -> None:
    """SSE error events carry S2's code but no status; codes missing from the
    table became retried 500s. S2: api/src/v1/error.rs (ErrorCode::status)."""
    async with scripted_sidecar(upstream_format=UpstreamFormat.JSON) as (upstream, stub, _):
        upstream.script(Records(0, 2), Terminal(status, code))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await read(stub, pb.ReadSessionRequest(stream="s", seq_num=0, count=10))
        assert info.value.code() == grpc_code
        assert len(upstream.requests) == 1  # not retried


async def test_a_late_joiner_of_a_shared_feed_gets_a_heartbeat_at_once() -> None:
    """A session starting at the tail got its first message 8-13 s late: the shared feed had
    consumed its heartbeat before the reader subscribed. S2 sends a heartbeat as soon as a
    session starts following."""
    async with scripted_sidecar() as (upstream, stub, _):
        upstream.script(Heartbeat(5), Pause(60))  # the feed's only heartbeat for a minute

        async def first_message() -> pb.ReadSessionResponse:
            call = stub.ReadSession(pb.ReadSessionRequest(stream="s"), timeout=30)
            async for msg in call:
                call.cancel()
                return msg
            raise AssertionError("the session ended without a message")

        first = await asyncio.wait_for(first_message(), 10)
        assert first.tail.seq_num == 5 and not first.records
        second = await asyncio.wait_for(first_message(), 10)  # joins the running feed
        assert second.tail.seq_num == 5 and not second.records
        assert len(upstream.requests) == 1  # both on the one shared upstream session
