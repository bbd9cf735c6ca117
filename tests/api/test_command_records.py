"""`ignore_command_records` and `caught_up`, end to end through the sidecar and the emulator.

What they must match is S2's SDKs today: command records (one header with an empty name: fence,
trim) are left out after the read, so `count` and `bytes` count them too, a session ends when the
records S2 returned reach the limit, and a unary read answers its one batch filtered, possibly
empty (s2-streamstore/s2 PR 387 and sdk/src/session/read.rs, s2-streamstore/s2-sdk-python PR 34,
s2-streamstore/s2-sdk-typescript issue 231). A session is caught up on a message that ends right
before its tail, as their `is_caught_up()` judges it, on the batch as S2 returned it.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.emulator import EmulatorConfig
from sidecar.testing import SidecarHarness
from sidecar.types import AppendRecord, metered_size
from tests.api.helpers import seq_nums
from tests.reads.test_history import needs_cache, served, trim_to

Code = grpc.StatusCode
NEXT_SEQ_NUM = "s2-next-seq-num"


def fence(token: bytes = b"tok") -> AppendRecord:
    return AppendRecord(body=token, headers=((b"", b"fence"),))


def data(i: int) -> AppendRecord:
    return AppendRecord(body=b"d%d" % i, headers=((b"h", b"v"),))


def mixed() -> list[AppendRecord]:
    """Data at 0, 2, 4, 5; a fence at 1, a trim at 3."""
    return [data(0), fence(), data(2), trim_to(0), data(4), data(5)]


def alternating(n: int) -> list[AppendRecord]:
    """Data at even seq_nums, fences at odd ones."""
    return [data(i) if i % 2 == 0 else fence() for i in range(n)]


def metered(r: AppendRecord) -> int:
    return metered_size(r.headers, r.body)


async def read(h: SidecarHarness, **req: object) -> tuple[list[int], dict[str, str | bytes]]:
    call = h.stub.Read(pb.ReadRequest(**req))  # type: ignore[arg-type]
    msg = await call
    return seq_nums(msg), dict(await call.trailing_metadata() or ())


async def session(h: SidecarHarness, **req: object) -> list[int]:
    out: list[int] = []
    async for msg in h.stub.ReadSession(pb.ReadSessionRequest(**req)):  # type: ignore[arg-type]
        out += seq_nums(msg)
    return out


# -- Read ---------------------------------------------------------------------------------------


async def test_read_counts_the_records_it_leaves_out(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, mixed())
    assert await read(harness, stream=stream, seq_num=0, count=4, ignore_command_records=True) == (
        [0, 2],
        {NEXT_SEQ_NUM: "4"},  # S2 returned 0..3: the app continues at 4
    )
    assert await read(harness, stream=stream, seq_num=0, count=4) == ([0, 1, 2, 3], {})
    assert await read(harness, stream=stream, seq_num=4, ignore_command_records=True) == ([4, 5], {})


async def test_a_read_of_only_command_records_is_empty(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, mixed())
    assert await read(harness, stream=stream, seq_num=1, count=1, ignore_command_records=True) == (
        [],
        {NEXT_SEQ_NUM: "2"},
    )
    assert await read(harness, stream=stream, seq_num=3, count=1, ignore_command_records=True) == (
        [],
        {NEXT_SEQ_NUM: "4"},
    )


async def test_a_read_bytes_limit_counts_the_records_left_out(harness: SidecarHarness, stream: str) -> None:
    records = mixed()
    await harness.append(stream, records)
    two = metered(records[0]) + metered(records[1])
    assert await read(harness, stream=stream, seq_num=0, bytes=two, ignore_command_records=True) == (
        [0],
        {NEXT_SEQ_NUM: "2"},
    )
    # One byte more does not fit the next record: the same answer.
    assert (await read(harness, stream=stream, seq_num=0, bytes=two + 1, ignore_command_records=True))[0] == [0]
    assert (
        await read(harness, stream=stream, seq_num=0, bytes=two + metered(records[2]), ignore_command_records=True)
    )[0] == [0, 2]


# -- ReadSession: limits ------------------------------------------------------------------------


async def test_a_session_count_counts_the_records_left_out(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, mixed())
    assert await session(harness, stream=stream, seq_num=0, count=4, ignore_command_records=True) == [0, 2]
    assert await session(harness, stream=stream, seq_num=0, count=5, ignore_command_records=True) == [0, 2, 4]
    assert await session(harness, stream=stream, seq_num=1, count=1, ignore_command_records=True) == []


async def test_a_session_count_spanning_many_batches_of_commands(harness: SidecarHarness, stream: str) -> None:
    for lo in range(0, 2600, 1000):
        await harness.append(stream, [data(i) if i % 2 == 0 else fence() for i in range(lo, min(2600, lo + 1000))])
    got = await session(harness, stream=stream, seq_num=0, count=2501, ignore_command_records=True)
    assert got == list(range(0, 2501, 2))  # 2501 records counted, 1251 of them data


async def test_a_session_bytes_limit_counts_the_records_left_out(harness: SidecarHarness, stream: str) -> None:
    records = mixed()
    await harness.append(stream, records)
    five = sum(metered(r) for r in records[:5])
    assert await session(harness, stream=stream, seq_num=0, bytes=five, ignore_command_records=True) == [0, 2, 4]
    assert await session(harness, stream=stream, seq_num=0, bytes=five - 1, ignore_command_records=True) == [0, 2]


async def test_a_session_ending_on_left_out_records_ends(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, [data(0), fence(), fence(), fence(), data(4)])
    assert await session(harness, stream=stream, seq_num=0, count=4, ignore_command_records=True) == [0]


# -- ReadSession: resuming ----------------------------------------------------------------------


@pytest.mark.emulator_only  # emulator hooks: faults
async def test_a_session_resumed_mid_stream_skips_nothing_and_repeats_nothing(
    harness: SidecarHarness, stream: str
) -> None:
    for lo in range(0, 3000, 1000):
        await harness.append(
            stream, [AppendRecord(body=b"%099d" % i) if i % 2 == 0 else fence() for i in range(lo, lo + 1000)]
        )
    await harness.inject_fault(kind="session", stream=stream, basin=harness.basin, cut_after_bytes=20_000, times=5)
    got = await session(harness, stream=stream, seq_num=0, count=2501, ignore_command_records=True)
    assert got == list(range(0, 2501, 2))
    stats = await harness.emulator_stats()
    assert stats["requests"][f"{harness.basin}/{stream}"].get("session_s2s", 0) >= 6  # five cut, then the rest


@pytest.mark.emulator_only  # emulator hooks: closing sessions
async def test_a_resume_after_left_out_records_counts_them_once(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, [data(0), fence(), data(2), fence()])
    call = harness.stub.ReadSession(
        pb.ReadSessionRequest(stream=stream, seq_num=0, count=6, wait=30, ignore_command_records=True)
    )
    got: list[int] = []
    closed = False
    async for msg in call:
        got += seq_nums(msg)
        if not msg.records and not closed:  # caught up after 4 records, 2 of them left out: cut it
            closed = True
            async with harness.http.post(  # type: ignore[union-attr]
                f"{harness.emulator.url}/_emulator/sessions/close",
                params={"basin": harness.basin, "stream": stream, "status": "503", "code": "server_draining"},
            ) as resp:
                assert resp.status < 300
            await harness.append(stream, [fence(), data(5), data(6)])
    # Resumed at 4 with 2 left of the count (fences 1 and 3 counted once): 4 and 5, then the end.
    assert got == [0, 2, 5]


# -- caught_up ----------------------------------------------------------------------------------


async def test_caught_up_after_the_backlog_then_on_live_records(harness: SidecarHarness, stream: str) -> None:
    for lo in range(0, 3000, 1000):
        await harness.append(stream, [AppendRecord(body=b"%099d" % i) for i in range(lo, lo + 1000)])
    call = harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0))
    seen: list[int] = []
    backlog: list[pb.ReadSessionResponse] = []
    appended = False
    async for msg in call:
        seen += seq_nums(msg)
        if not appended and msg.records:
            backlog.append(msg)
        elif not appended:  # the first heartbeat: everything before its tail was sent
            assert msg.caught_up and msg.tail.seq_num == 3000 and seen == list(range(3000))
            await harness.append(stream, [b"live-1", b"live-2"])
            appended = True
        elif msg.records:
            # Live records end right before their tail: caught up. (Had the sidecar read them
            # on a catch-up session of its own, S2 sends them with no tail, and a heartbeat after.)
            assert msg.caught_up == msg.HasField("tail") and seen == list(range(3002))
        else:
            assert msg.caught_up  # every heartbeat says it
        if appended and msg.caught_up and msg.tail.seq_num == 3002:
            break
    call.cancel()
    assert backlog and not any(m.caught_up or m.HasField("tail") for m in backlog)  # catching up: not yet


async def test_a_bounded_catch_up_is_never_caught_up(harness: SidecarHarness, stream: str) -> None:
    # S2 sets no tail on catch-up batches, so nothing says every record before a tail was sent.
    await harness.append(stream, [data(i) for i in range(10)])
    msgs = [m async for m in harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, count=10))]
    assert [r.seq_num for m in msgs for r in m.records] == list(range(10))
    assert not any(m.caught_up for m in msgs)


async def test_live_commands_left_out_leave_a_heartbeat(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, [data(0)])
    call = harness.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, ignore_command_records=True))
    stage = 0
    async for msg in call:
        if stage == 0 and not msg.records:  # caught up at 1: a fence comes live, alone
            assert msg.caught_up and msg.tail.seq_num == 1
            await harness.append(stream, [fence()])
            stage = 1
        elif stage == 1 and not msg.records and msg.tail.seq_num == 2:
            # The fence reached the tail: it went out as a heartbeat at the tail after it.
            assert msg.caught_up
            await harness.append(stream, [data(2), fence()])
            stage = 2
        elif stage == 2 and msg.records:
            # Record 2, and the fence after it that reached the tail: caught up at 4.
            assert seq_nums(msg) == [2] and msg.caught_up and msg.tail.seq_num == 4
            break
        else:
            assert seq_nums(msg) == ([0] if stage == 0 else []), (stage, msg)  # else heartbeats only
    call.cancel()
    assert stage == 2


# -- shared sessions and the history cache ------------------------------------------------------


async def test_followers_sharing_a_feed_each_get_their_own_view(harness: SidecarHarness, stream: str) -> None:
    await harness.append(stream, [data(0)])
    following = asyncio.Semaphore(0)

    async def follow(ignore: bool, last: int) -> list[pb.ReadSessionResponse]:
        got: list[pb.ReadSessionResponse] = []
        req = pb.ReadSessionRequest(stream=stream, tail_offset=0, ignore_command_records=ignore)
        async for msg in harness.stub.ReadSession(req, timeout=30):
            if not got:
                following.release()  # the first message: a heartbeat at the tail
            got.append(msg)
            if msg.records and msg.records[-1].seq_num >= last:
                break
        return got

    both = asyncio.gather(follow(True, 4), follow(False, 5))
    for _ in range(2):
        await following.acquire()
    await harness.append(stream, [fence(), data(2), trim_to(0), data(4), fence()])
    ignoring, plain = await both
    assert [r.seq_num for m in ignoring for r in m.records] == [2, 4]
    assert [r.seq_num for m in plain for r in m.records] == [1, 2, 3, 4, 5]
    assert ignoring[-1].caught_up and plain[-1].caught_up  # the batch reached its tail, for both
    if not harness.upstream_url:  # the emulator counts its sessions: one feed for both
        stats = await harness.emulator_stats()
        assert stats["requests"][f"{harness.basin}/{stream}"].get("session_s2s", 0) == 1


@needs_cache
@pytest.mark.emulator_only  # emulator hooks: stats
async def test_replays_from_the_history_cache_leave_out_commands_per_app() -> None:
    async with SidecarHarness() as h:
        records = alternating(2000)
        await h.append("cached", records[:1000])
        await h.append("cached", records[1000:])
        assert await session(h, stream="cached", seq_num=0, count=2000) == list(range(2000))
        before = await served(h, "cached")
        assert await session(h, stream="cached", seq_num=0, count=1501, ignore_command_records=True) == list(
            range(0, 1501, 2)
        )
        assert await read(h, stream="cached", seq_num=7, count=3, ignore_command_records=True) == (
            [8],
            {NEXT_SEQ_NUM: "10"},
        )
        assert await session(h, stream="cached", seq_num=1, count=3) == [1, 2, 3]  # the cache keeps the commands
        assert await served(h, "cached") <= before + 4  # from the cache (a revalidation reads a record or two)


# -- a stream's deletion ------------------------------------------------------------------------


@pytest.mark.emulator_only  # emulator configuration
async def test_the_trim_a_deletion_writes_is_left_out() -> None:
    config = EmulatorConfig(port=0, heartbeat_min=5, heartbeat_max=6, deletion_ends_reads_as_s2_lite=True)
    async with SidecarHarness(emulator=config) as h:
        await h.append("doomed", [data(0)])
        following = asyncio.Semaphore(0)

        async def follow(ignore: bool) -> tuple[list[pb.ReadSessionResponse], grpc.StatusCode | None]:
            got: list[pb.ReadSessionResponse] = []
            req = pb.ReadSessionRequest(stream="doomed", seq_num=0, ignore_command_records=ignore)
            try:
                async for msg in h.stub.ReadSession(req, timeout=30):
                    got.append(msg)
                    if not msg.records and len(got) == 2:
                        following.release()  # record 0, then caught up
            except grpc.aio.AioRpcError as e:
                return got, e.code()
            return got, None

        both = asyncio.gather(follow(True), follow(False))
        for _ in range(2):
            await following.acquire()
        # A follower is caught up before its live upstream read is surely open (under load the gap
        # is long): the deletion's trim reaches only a read open at the emulator when it is deleted.
        for _ in range(600):  # 30 s
            if (await h.emulator_stats())["open_sessions"].get(f"{h.basin}/doomed"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the followers' live read never opened at the emulator")
        await h.delete_stream("doomed")
        (ignoring, code), (plain, plain_code) = await both
        assert code == plain_code == Code.NOT_FOUND
        # Without the option, the deletion's trim command is a record; with it, a heartbeat.
        assert [r.body for m in plain for r in m.records] == [b"d0", b"\xff" * 8]
        assert [seq_nums(m) for m in ignoring] == [[0], [], []]
        assert ignoring[-1].caught_up and ignoring[-1].tail.seq_num == 2
