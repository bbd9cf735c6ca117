"""The Python client (`clients/python`) against a real sidecar process."""

from __future__ import annotations

import asyncio

import pytest
from s2sidecar_client import (
    InvalidArgument,
    RangeNotSatisfiable,
    ReadLimit,
    S2SidecarClient,
    S2SidecarSyncClient,
    SeqNum,
    SidecarError,
    StreamNotFound,
    StreamPosition,
    TailOffset,
    Timestamp,
    Unauthenticated,
)

from tests.clients.conftest import APP_TOKEN, BASE_TS, N_RECORDS, Live


@pytest.fixture
async def client(live: Live):
    async with S2SidecarClient(live.address) as c:
        yield c


async def test_read_batch_from_seq_num_0(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream)
    batch = await client.read(stream, start=SeqNum(0), limit=ReadLimit(count=100))
    assert [r.seq_num for r in batch.records] == list(range(N_RECORDS))
    assert [r.body for r in batch.records] == [f"record-{i}".encode() for i in range(N_RECORDS)]
    assert batch.records[3].timestamp == BASE_TS + 3000
    assert batch.records[0].headers == ()
    assert batch.next_seq_num == N_RECORDS


async def test_session_from_tail_offset_sees_a_later_append(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream)
    seen: list[tuple[int, bytes]] = []
    async with client.read_session(stream, start=TailOffset(10)) as session:
        async for batch in session:
            seen.extend((r.seq_num, r.body) for r in batch.records)
            if len(seen) == 10:  # caught up: now append, after the session started
                await live.append(stream, [{"body": "live"}])
            if len(seen) >= 11:
                break
    assert seen[:10] == [(i, f"record-{i}".encode()) for i in range(10, 20)]
    assert seen[10] == (20, b"live")


async def test_session_surfaces_heartbeats_when_asked(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream, 1)
    async with client.read_session(stream, start=SeqNum(1), heartbeats=True) as session:
        batch = await asyncio.wait_for(anext(session), 30)
    assert batch.is_heartbeat and batch.tail == StreamPosition(1, BASE_TS)


async def test_start_at_a_timestamp(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream)
    batch = await client.read(stream, start=Timestamp(BASE_TS + 5000), limit=ReadLimit(count=3))
    assert [r.seq_num for r in batch.records] == [5, 6, 7]
    # `wait=1`: end the session after a second without new records (it follows for ever otherwise)
    session = [
        r.seq_num
        async for b in client.read_session(stream, start=Timestamp(BASE_TS + 17500), wait=1)
        for r in b.records
    ]
    assert session == [18, 19]


async def test_stop_until_a_timestamp(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream)
    batch = await client.read(stream, start=SeqNum(0), until=BASE_TS + 8000)
    assert [r.seq_num for r in batch.records] == list(range(8))
    seqs = [
        r.seq_num
        async for b in client.read_session(stream, start=SeqNum(2), until=Timestamp(BASE_TS + 5000))
        for r in b.records
    ]
    assert seqs == [2, 3, 4]


async def test_check_tail(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream)
    assert await client.check_tail(stream) == StreamPosition(N_RECORDS, BASE_TS + 19000)
    await live.append(stream, [{"body": "one more", "timestamp": BASE_TS + 20000}])
    fresh = await client.check_tail(stream, max_staleness_ms=0)  # read-your-writes, past the cache
    assert fresh == StreamPosition(N_RECORDS + 1, BASE_TS + 20000)


async def test_missing_stream_is_stream_not_found(client: S2SidecarClient, stream: str) -> None:
    with pytest.raises(StreamNotFound) as err:
        await client.read(stream, start=SeqNum(0), limit=ReadLimit(count=100))
    assert err.value.reason == "stream_not_found" and not err.value.retryable
    with pytest.raises(StreamNotFound):
        await client.check_tail(stream)
    with pytest.raises(StreamNotFound):
        async for _ in client.read_session(stream, start=SeqNum(0)):
            pass


async def test_start_past_the_tail_carries_the_tail(live: Live, client: S2SidecarClient, stream: str) -> None:
    await live.fill(stream)
    with pytest.raises(RangeNotSatisfiable) as err:
        await client.read(stream, start=SeqNum(50))
    assert err.value.tail == StreamPosition(N_RECORDS, BASE_TS + 19000)
    assert "clamp" in err.value.message
    # clamp starts at the tail; a unary read there needs `wait` (S2 answers 416 otherwise)
    clamped = await client.read(stream, start=SeqNum(50), clamp=True, wait=1)
    assert clamped.records == ()


async def test_invalid_argument_names_the_field(client: S2SidecarClient) -> None:
    with pytest.raises(InvalidArgument) as err:
        await client.read("..", start=SeqNum(0))
    assert err.value.field == "stream"
    with pytest.raises(InvalidArgument) as err:
        await client.read("s", start=SeqNum(0), wait=61)
    assert err.value.field == "wait"
    assert isinstance(err.value, SidecarError)


async def test_unix_socket_target(live: Live, stream: str) -> None:
    await live.fill(stream, 2)
    async with S2SidecarClient(f"unix:{live.socket_path}") as c:
        assert (await c.check_tail(stream)).seq_num == 2


async def test_sync_client(live: Live, stream: str) -> None:
    await live.fill(stream)

    def run() -> tuple[list[int], StreamPosition, list[int]]:
        with S2SidecarSyncClient(live.address) as c:
            batch = c.read(stream, start=SeqNum(0), limit=ReadLimit(count=100))
            tail = c.check_tail(stream)
            session = [
                r.seq_num
                for b in c.read_session(stream, start=TailOffset(3), limit=ReadLimit(count=3))
                for r in b.records
            ]
            try:
                c.read(stream + "-missing")
            except StreamNotFound:
                pass
            else:
                raise AssertionError("expected StreamNotFound")
            return [r.seq_num for r in batch.records], tail, session

    seqs, tail, session = await asyncio.to_thread(run)
    assert seqs == list(range(N_RECORDS))
    assert tail == StreamPosition(N_RECORDS, BASE_TS + 19000)
    assert session == [17, 18, 19]


async def test_draining_sidecar_ends_a_session_without_resume_with_unavailable_and_next_seq_num() -> None:
    """SIGTERM: with resume off the session ends with UNAVAILABLE, RetryInfo and `s2-next-seq-num`
    (own sidecar). With resume on it would retry: test_python_resume*.py."""
    import aiohttp
    from s2sidecar_client import Unavailable

    from sidecar.testing import SidecarProcess

    async with SidecarProcess() as sc, aiohttp.ClientSession() as http:
        live = Live(sc, "", http)
        await live.fill("drain")
        async with S2SidecarClient(sc.address) as c:
            session = c.read_session("drain", start=SeqNum(0), resume=False)
            got = []
            with pytest.raises(Unavailable) as err:
                async for batch in session:
                    got.extend(r.seq_num for r in batch.records)
                    if len(got) == N_RECORDS:
                        sc.terminate()
            assert got == list(range(N_RECORDS))
            assert err.value.next_seq_num == N_RECORDS
            assert err.value.reason == "draining" and err.value.retry_after is not None
        assert await sc.wait() == 0


async def test_app_token(token_live: Live, stream: str) -> None:
    await token_live.fill(stream, 2)
    async with S2SidecarClient(token_live.address) as anonymous:
        with pytest.raises(Unauthenticated) as err:
            await anonymous.check_tail(stream)
        assert "authorization: Bearer" in err.value.message
    async with S2SidecarClient(f"unix:{token_live.socket_path}", token=APP_TOKEN) as c:
        assert (await c.check_tail(stream)).seq_num == 2
        assert [
            r.seq_num
            async for b in c.read_session(stream, start=SeqNum(0), limit=ReadLimit(count=2))
            for r in b.records
        ] == [0, 1]


async def test_ignore_command_records_and_caught_up(live: Live, client: S2SidecarClient, stream: str) -> None:
    """A fence between data records is left out of a read and of a session, and the session says
    it is caught up once it reached the tail."""
    await live.append(stream, [{"body": "a"}, {"body": "fence", "headers": [["", "fence"]]}, {"body": "b"}])
    batch = await client.read(stream, start=SeqNum(0), ignore_command_records=True)
    assert [(r.seq_num, r.body) for r in batch.records] == [(0, b"a"), (2, b"b")]
    assert [r.is_command for r in (await client.read(stream, start=SeqNum(0))).records] == [False, True, False]
    session = client.read_session(stream, start=SeqNum(0), heartbeats=True, ignore_command_records=True)
    async with session:
        assert not session.is_caught_up()
        seen: list[int] = []
        async for batch in session:
            seen.extend(r.seq_num for r in batch.records)
            if batch.caught_up:  # the records end right before the tail, or the heartbeat after them
                break
        assert seen == [0, 2]
        assert session.is_caught_up()
