"""The Python client's auto-resume (clients/RESUME.md): the sans-IO rules in
`s2sidecar_client._resume`, then both clients against a scripted fake StreamService (a real
grpc.aio server on loopback) that fails on cue, checking every request a retry sends and that
every record arrives once, in order. Real sidecar restarts: test_python_resume_restarts.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from s2sidecar_client import (
    RangeNotSatisfiable,
    ReadBatch,
    ReadLimit,
    RetryPolicy,
    S2SidecarClient,
    S2SidecarSyncClient,
    SeqNum,
    SequencedRecord,
    SidecarError,
    StreamNotFound,
    StreamPosition,
    TailOffset,
    Unavailable,
)
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb
from s2sidecar_client._resume import Attempts, SessionState, metered_bytes
from s2sidecar_client.errors import from_status, is_retryable

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
FAST = RetryPolicy(max_attempts=4, min_backoff=0.001, max_backoff=0.002)

# --- the sans-IO rules ---------------------------------------------------------------------------


def error(code: grpc.StatusCode, message: str = "x", retry_after: float | None = None) -> SidecarError:
    """The error a failed call raises (with a RetryInfo delay when `retry_after` is set)."""
    err = from_status(code, message, ())
    err.retry_after = retry_after
    return err


@pytest.mark.parametrize(
    ("code", "message", "retry_after", "retried"),
    [
        (grpc.StatusCode.UNAVAILABLE, "connection refused", None, True),
        (grpc.StatusCode.UNAVAILABLE, "draining", 0.5, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limited", 1.0, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", None, False),
        (grpc.StatusCode.ABORTED, "try again", 0.2, True),
        (grpc.StatusCode.ABORTED, "conflict", None, False),
        (grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2", None, True),
        (grpc.StatusCode.UNKNOWN, "Stream removed", None, True),
        (grpc.StatusCode.INTERNAL, "recvmsg: Connection reset by peer", None, True),
        (grpc.StatusCode.INTERNAL, "bad message from upstream", None, False),
        (grpc.StatusCode.UNKNOWN, "exception in handler", None, False),
        (grpc.StatusCode.NOT_FOUND, "stream not found", None, False),
        (grpc.StatusCode.INVALID_ARGUMENT, "bad", None, False),
        (grpc.StatusCode.OUT_OF_RANGE, "past the tail", None, False),
        (grpc.StatusCode.PERMISSION_DENIED, "no", None, False),
        (grpc.StatusCode.UNAUTHENTICATED, "no token", None, False),
        (grpc.StatusCode.FAILED_PRECONDITION, "fenced", 0.1, False),
        (grpc.StatusCode.CANCELLED, "by you", None, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "your timeout", None, False),
    ],
)
def test_what_is_retried(code: grpc.StatusCode, message: str, retry_after: float | None, retried: bool) -> None:
    err = error(code, message, retry_after)
    assert is_retryable(err) is retried
    assert err.retryable is retried


def test_backoff_doubles_from_100ms_to_1s_with_up_to_as_much_again_of_jitter() -> None:
    policy = RetryPolicy()
    low = [policy.backoff(n, rng=lambda: 0.0) for n in range(1, 8)]
    assert low == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    high = [policy.backoff(n, rng=lambda: 1.0) for n in range(1, 8)]
    assert high == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    for n in range(1, 20):
        assert 0.1 <= policy.backoff(n) <= 2.0


def test_channel_reconnect_backoff_has_the_same_bounds() -> None:
    assert dict(RetryPolicy().channel_options()) == {
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.min_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 1000,
    }


def test_a_longer_retry_info_delay_wins_and_the_budget_counts_failures_in_a_row() -> None:
    attempts = Attempts(RetryPolicy(max_attempts=3), rng=lambda: 0.0)
    assert attempts.retry_delay(error(UNAVAILABLE, retry_after=5.0)) == 5.0
    assert attempts.retry_delay(error(UNAVAILABLE, retry_after=0.01)) == pytest.approx(0.2)  # backoff wins
    attempts.progress()
    assert attempts.retry_delay(error(UNAVAILABLE)) == pytest.approx(0.1)  # counting again from 1
    assert attempts.retry_delay(error(UNAVAILABLE)) == pytest.approx(0.2)
    assert attempts.retry_delay(error(UNAVAILABLE)) is None  # the 3rd failure in a row: spent
    assert Attempts(RetryPolicy()).retry_delay(error(grpc.StatusCode.NOT_FOUND)) is None


def test_a_deadline_too_close_for_the_delay_ends_the_retries() -> None:
    attempts = Attempts(RetryPolicy(), rng=lambda: 0.0)
    assert attempts.retry_delay(error(UNAVAILABLE), remaining=0.05) is None
    assert attempts.retry_delay(error(UNAVAILABLE), remaining=5.0) == pytest.approx(0.2)


def test_metered_bytes() -> None:
    assert metered_bytes(SequencedRecord(0, 0, (), b"")) == 8
    assert metered_bytes(SequencedRecord(0, 0, ((b"ab", b"cde"), (b"", b"x")), b"body")) == 8 + 4 + 5 + 1 + 4


def rec(seq_num: int, body: bytes = b"0123456789") -> SequencedRecord:
    return SequencedRecord(seq_num, 0, (), body)  # metered: 18 bytes


def test_a_retried_session_continues_after_what_it_delivered_with_smaller_limits() -> None:
    req = pb.ReadSessionRequest(stream="s", timestamp=1000, count=10, bytes=180, until=99, clamp=True, wait=5)
    state = SessionState(req, RetryPolicy())
    assert state.request() == req  # nothing delivered: the original start
    state.on_batch(ReadBatch((rec(40), rec(41), rec(42)), StreamPosition(100, 0)))
    retry = state.request()
    assert retry == pb.ReadSessionRequest(stream="s", seq_num=43, count=7, bytes=126, until=99, clamp=True, wait=5)
    assert retry is not None and retry.WhichOneof("start") == "seq_num"  # the timestamp start is gone
    state.on_batch(ReadBatch((rec(43), rec(44)), None))
    assert state.request() == pb.ReadSessionRequest(
        stream="s", seq_num=45, count=5, bytes=90, until=99, clamp=True, wait=5
    )


@pytest.mark.parametrize(
    ("limit", "records"),
    [
        ({"count": 3}, [rec(0), rec(1), rec(2)]),
        ({"bytes": 36}, [rec(0), rec(1)]),
        ({"count": 5, "bytes": 20}, [rec(0, b"0123456789abc")]),  # 21 metered bytes: past the limit
    ],
)
def test_a_session_whose_limit_is_used_up_ends_instead_of_retrying(
    limit: dict[str, int], records: list[SequencedRecord]
) -> None:
    state = SessionState(pb.ReadSessionRequest(stream="s", seq_num=0, **limit), RetryPolicy())
    state.on_batch(ReadBatch(tuple(records), None))
    assert state.request() is None


def test_unset_limits_are_left_unset() -> None:
    state = SessionState(pb.ReadSessionRequest(stream="s", tail_offset=0), RetryPolicy())
    state.on_batch(ReadBatch((rec(7),), None))
    retry = state.request()
    assert retry == pb.ReadSessionRequest(stream="s", seq_num=8)
    assert retry is not None and not retry.HasField("count") and not retry.HasField("bytes")


def test_a_heartbeat_moves_the_position_to_the_tail_and_is_progress() -> None:
    state = SessionState(pb.ReadSessionRequest(stream="s", tail_offset=0), RetryPolicy(max_attempts=2))
    assert state.on_error(error(UNAVAILABLE)) is not None
    state.on_batch(ReadBatch((), StreamPosition(12, 0)))  # a heartbeat: caught up at 12
    assert state.next_seq_num == 12
    assert state.request() == pb.ReadSessionRequest(stream="s", seq_num=12)
    assert state.on_error(error(UNAVAILABLE)) is not None  # the budget started again
    err = error(UNAVAILABLE)
    assert state.on_error(err) is None
    assert err.next_seq_num == 12
    state.on_batch(ReadBatch((), None))  # neither records nor tail: not a heartbeat, no move
    assert state.next_seq_num == 12


def test_the_clients_own_position_wins_over_s2_next_seq_num() -> None:
    err = from_status(UNAVAILABLE, "draining", (("s2-next-seq-num", "3"),))
    assert err.next_seq_num == 3
    state = SessionState(pb.ReadSessionRequest(stream="s", seq_num=0), RetryPolicy(max_attempts=1))
    state.on_batch(ReadBatch((rec(0), rec(1), rec(2), rec(3), rec(4)), None))
    assert state.on_error(err) is None
    assert err.next_seq_num == 5


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(min_backoff=2.0, max_backoff=1.0)


# --- a scripted fake StreamService -----------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    """`n` records from where the call stands (its `seq_num` start, else 0)."""

    n: int
    caught_up: bool = False


@dataclass(frozen=True)
class Heartbeat:
    tail: int


@dataclass(frozen=True)
class Fail:
    code: grpc.StatusCode
    message: str = "scripted failure"
    retry_after: float | None = None
    next_seq_num: int | None = None


@dataclass(frozen=True)
class GoAway:
    """Stop the server with the call open, then start a new one on the same port."""


Step = Records | Heartbeat | Fail | GoAway


def body(seq_num: int) -> bytes:
    return f"record-{seq_num}".encode()


def fake_record(seq_num: int) -> pb.SequencedRecord:
    return pb.SequencedRecord(seq_num=seq_num, timestamp=seq_num, headers=[pb.Header(name=b"k", value=b"v")],
                              body=body(seq_num))  # fmt: skip


def fake_metered(seq_num: int) -> int:
    return 8 + 2 + 2 + len(body(seq_num))


class FakeSidecar:
    """Each call of a method plays the next script for it (the last one again when they run out)
    and keeps the request it got."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[list[Step]]] = {}
        self.requests: dict[str, list[Any]] = {"Read": [], "ReadSession": [], "CheckTail": []}
        self.address = ""
        self._server: grpc.aio.Server | None = None
        self._restarting: asyncio.Task[None] | None = None

    async def start(self, address: str) -> None:
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((self.handler(),))
        port = self._server.add_insecure_port(address)
        self.address = f"127.0.0.1:{port}"
        await self._server.start()

    async def stop(self) -> None:
        if self._restarting is not None:
            await self._restarting
        if self._server is not None:
            await self._server.stop(None)
            self._server = None

    async def restart(self) -> None:
        assert self._server is not None
        await self._server.stop(None)  # cuts off the calls in flight, like a killed sidecar
        await self.start(self.address)

    def script(self, method: str, *plays: list[Step]) -> None:
        self.scripts[method] = list(plays)

    def _play(self, method: str, request: Any) -> list[Step]:
        self.requests[method].append(request)
        plays = self.scripts[method]
        return plays[min(len(self.requests[method]), len(plays)) - 1]

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext[Any, Any], fail: Fail) -> None:
        status = status_pb2.Status(code=fail.code.value[0], message=fail.message)
        if fail.retry_after is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromMilliseconds(round(fail.retry_after * 1000))
            status.details.add().Pack(info)
        trailers: list[tuple[str, str | bytes]] = [("grpc-status-details-bin", status.SerializeToString())]
        if fail.next_seq_num is not None:
            trailers.append(("s2-next-seq-num", str(fail.next_seq_num)))
        await context.abort(fail.code, fail.message, trailing_metadata=tuple(trailers))

    async def read_session(self, req: pb.ReadSessionRequest, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        pos = req.seq_num if req.WhichOneof("start") == "seq_num" else 0
        for step in self._play("ReadSession", req):
            match step:
                case Records(n, caught_up):
                    records = [fake_record(pos + i) for i in range(n)]
                    await context.write(pb.ReadSessionResponse(records=records, caught_up=caught_up))
                    pos += n
                case Heartbeat(tail):
                    await context.write(pb.ReadSessionResponse(tail=pb.StreamPosition(seq_num=tail), caught_up=True))
                case Fail():
                    await self._fail(context, step)
                case GoAway():
                    self._restarting = asyncio.create_task(self.restart())
                    await asyncio.Event().wait()  # cancelled by the stop

    async def read(self, req: pb.ReadRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.ReadResponse:
        [step] = self._play("Read", req)
        if isinstance(step, Fail):
            await self._fail(context, step)
        assert isinstance(step, Records)
        return pb.ReadResponse(records=[fake_record(req.seq_num + i) for i in range(step.n)])

    async def check_tail(
        self, req: pb.CheckTailRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CheckTailResponse:
        [step] = self._play("CheckTail", req)
        if isinstance(step, Fail):
            await self._fail(context, step)
        assert isinstance(step, Heartbeat)
        return pb.CheckTailResponse(tail=pb.StreamPosition(seq_num=step.tail, timestamp=7))

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "s2sidecar.v1.StreamService",
            {
                "ReadSession": grpc.unary_stream_rpc_method_handler(
                    self.read_session, pb.ReadSessionRequest.FromString, pb.ReadSessionResponse.SerializeToString
                ),
                "Read": grpc.unary_unary_rpc_method_handler(
                    self.read, pb.ReadRequest.FromString, pb.ReadResponse.SerializeToString
                ),
                "CheckTail": grpc.unary_unary_rpc_method_handler(
                    self.check_tail, pb.CheckTailRequest.FromString, pb.CheckTailResponse.SerializeToString
                ),
            },
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeSidecar]:
    sidecar = FakeSidecar()
    await sidecar.start("127.0.0.1:0")
    try:
        yield sidecar
    finally:
        await sidecar.stop()


Session = Callable[..., Awaitable[list[ReadBatch]]]


@pytest.fixture(params=["async", "sync"])
def session(request: pytest.FixtureRequest, fake: FakeSidecar) -> Session:
    """Runs one `read_session("s", **kwargs)` to its end with the async or the sync client
    (`retry=FAST` unless given)."""
    if request.param == "async":

        async def run_async(retry: RetryPolicy = FAST, **kwargs: Any) -> list[ReadBatch]:
            async with S2SidecarClient(fake.address, retry=retry) as client:
                return [b async for b in client.read_session("s", **kwargs)]

        return run_async

    async def run_sync(retry: RetryPolicy = FAST, **kwargs: Any) -> list[ReadBatch]:
        def run() -> list[ReadBatch]:
            with S2SidecarSyncClient(fake.address, retry=retry) as client:
                return list(client.read_session("s", **kwargs))

        return await asyncio.to_thread(run)

    return run_sync


def seqs(batches: list[ReadBatch]) -> list[int]:
    return [r.seq_num for b in batches for r in b.records]


def sent(fake: FakeSidecar) -> list[tuple[str | None, int, int | None, int | None, int | None]]:
    """(start kind, start value, count, bytes, wait) of each ReadSession request."""
    out = []
    for r in fake.requests["ReadSession"]:
        kind = r.WhichOneof("start")
        out.append(
            (
                kind,
                getattr(r, kind) if kind else 0,
                r.count if r.HasField("count") else None,
                r.bytes if r.HasField("bytes") else None,
                r.wait if r.HasField("wait") else None,
            )
        )
    return out


async def test_a_session_resumes_after_each_kind_of_failure(fake: FakeSidecar, session: Session) -> None:
    fake.script(
        "ReadSession",
        [Records(2), Records(1), Fail(UNAVAILABLE, "draining", retry_after=0.01, next_seq_num=3)],
        [Records(2), Fail(grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2")],
        [Heartbeat(5), Fail(UNAVAILABLE, "Socket closed")],
        [Fail(grpc.StatusCode.UNKNOWN, "Stream removed")],
        [Records(5)],
    )
    batches = await session(start=SeqNum(0), limit=ReadLimit(count=10, bytes=1000), wait=7)
    assert seqs(batches) == list(range(10))
    assert [r.body for b in batches for r in b.records] == [body(i) for i in range(10)]
    used = [sum(fake_metered(i) for i in range(n)) for n in (3, 5)]
    assert sent(fake) == [
        ("seq_num", 0, 10, 1000, 7),
        ("seq_num", 3, 7, 1000 - used[0], 7),
        ("seq_num", 5, 5, 1000 - used[1], 7),
        ("seq_num", 5, 5, 1000 - used[1], 7),  # the heartbeat moved nothing new: still 5
        ("seq_num", 5, 5, 1000 - used[1], 7),
    ]


async def test_a_follower_resumes_from_a_heartbeats_tail(fake: FakeSidecar, session: Session) -> None:
    fake.script(
        "ReadSession",
        [Heartbeat(12), Fail(UNAVAILABLE)],
        [Records(3)],  # ends: a stand-in for "the session goes on"
    )
    batches = await session(start=TailOffset(0), heartbeats=True)
    assert batches[0].is_heartbeat and batches[0].tail == StreamPosition(12, 0)
    assert seqs(batches) == [12, 13, 14]
    assert sent(fake) == [("tail_offset", 0, None, None, None), ("seq_num", 12, None, None, None)]


async def test_heartbeats_stay_hidden_by_default_but_still_count(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Heartbeat(4), Fail(UNAVAILABLE)], [Records(1)])
    batches = await session(start=TailOffset(0))
    assert [b.is_heartbeat for b in batches] == [False]
    assert seqs(batches) == [4]


async def test_a_session_whose_count_was_delivered_ends_on_a_failure(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Records(3), Fail(UNAVAILABLE)])
    assert seqs(await session(start=SeqNum(0), limit=ReadLimit(count=3))) == [0, 1, 2]
    assert len(fake.requests["ReadSession"]) == 1


async def test_a_session_whose_bytes_were_delivered_ends_on_a_failure(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Records(2), Fail(UNAVAILABLE)])
    limit = ReadLimit(bytes=fake_metered(0) + fake_metered(1))
    assert seqs(await session(start=SeqNum(0), limit=limit)) == [0, 1]
    assert len(fake.requests["ReadSession"]) == 1


async def test_not_found_is_raised_at_once(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Fail(grpc.StatusCode.NOT_FOUND, "no such stream")])
    with pytest.raises(SidecarError) as err:
        await session(start=SeqNum(0))
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert len(fake.requests["ReadSession"]) == 1


async def test_a_spent_budget_raises_the_last_error_with_the_clients_position(
    fake: FakeSidecar, session: Session
) -> None:
    fake.script(
        "ReadSession",
        [Records(2), Fail(UNAVAILABLE, "first")],
        [Fail(UNAVAILABLE, "again", next_seq_num=1)],  # a wrong trailer: the client's own position wins
    )
    with pytest.raises(Unavailable) as err:
        await session(start=SeqNum(0))
    assert err.value.next_seq_num == 2
    assert err.value.message == "again"
    # progress, then FAST.max_attempts (4) failures in a row: the first call and 3 retries
    assert sent(fake) == [("seq_num", 0, None, None, None)] + [("seq_num", 2, None, None, None)] * 3


async def test_resume_off_raises_the_first_failure(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Records(2), Fail(UNAVAILABLE, "draining", retry_after=0.01, next_seq_num=2)])
    with pytest.raises(Unavailable) as err:
        await session(start=SeqNum(0), resume=False)
    assert err.value.next_seq_num == 2 and err.value.retry_after == pytest.approx(0.01)
    assert len(fake.requests["ReadSession"]) == 1


async def test_a_session_resumes_across_a_server_that_goes_away(fake: FakeSidecar, session: Session) -> None:
    """A real transport failure: the server stops mid-session, cutting its calls off, and a new one
    takes its port."""
    fake.script("ReadSession", [Records(3), Heartbeat(3), GoAway()], [Records(2)])
    # a budget of seconds, not FAST's few milliseconds: the new server takes a moment to listen
    patient = RetryPolicy(max_attempts=100, min_backoff=0.01, max_backoff=0.05)
    batches = await session(start=SeqNum(0), limit=ReadLimit(count=5), retry=patient)
    assert seqs(batches) == [0, 1, 2, 3, 4]
    assert sent(fake) == [("seq_num", 0, 5, None, None), ("seq_num", 3, 2, None, None)]


@pytest.fixture(params=["async", "sync"])
def watched(request: pytest.FixtureRequest, fake: FakeSidecar) -> Callable[..., Awaitable[tuple[list[bool], bool]]]:
    """Runs one `read_session("s", **kwargs)` to its end with the async or the sync client: its
    `is_caught_up()` as each batch arrives, and at the end."""

    async def run_async(**kwargs: Any) -> tuple[list[bool], bool]:
        async with S2SidecarClient(fake.address, retry=FAST) as client, client.read_session("s", **kwargs) as s:
            return [s.is_caught_up() async for _ in s], s.is_caught_up()

    async def run_sync(**kwargs: Any) -> tuple[list[bool], bool]:
        def run() -> tuple[list[bool], bool]:
            with S2SidecarSyncClient(fake.address, retry=FAST) as client, client.read_session("s", **kwargs) as s:
                return [s.is_caught_up() for _ in s], s.is_caught_up()

        return await asyncio.to_thread(run)

    return run_async if request.param == "async" else run_sync


async def test_caught_up_is_what_the_last_message_said_and_false_after_a_resume(
    fake: FakeSidecar, watched: Callable[..., Awaitable[tuple[list[bool], bool]]]
) -> None:
    fake.script(
        "ReadSession",
        [Records(2), Records(1, caught_up=True), Fail(UNAVAILABLE)],
        [Records(1), Heartbeat(4)],  # the heartbeat is hidden, yet the session is caught up at the end
    )
    assert await watched(start=SeqNum(0)) == ([False, True, False], True)


async def test_caught_up_is_on_each_batch(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Records(1), Records(1, caught_up=True), Heartbeat(2)])
    batches = await session(start=SeqNum(0), heartbeats=True)
    assert [(b.caught_up, b.is_heartbeat) for b in batches] == [(False, False), (True, False), (True, True)]


async def test_ignore_command_records_is_sent_with_every_resume(fake: FakeSidecar, session: Session) -> None:
    fake.script("ReadSession", [Records(2), Fail(UNAVAILABLE)], [Records(1)])
    assert seqs(await session(start=SeqNum(0), ignore_command_records=True)) == [0, 1, 2]
    assert [(r.seq_num, r.ignore_command_records) for r in fake.requests["ReadSession"]] == [(0, True), (2, True)]


@pytest.mark.parametrize("limit", [ReadLimit(count=3), ReadLimit(bytes=100), ReadLimit(count=3, bytes=100)])
async def test_ignore_command_records_with_a_limit_is_refused_up_front(
    fake: FakeSidecar, session: Session, limit: ReadLimit
) -> None:
    with pytest.raises(ValueError, match="leave the limit to the app"):
        await session(start=SeqNum(0), limit=limit, ignore_command_records=True)
    assert fake.requests["ReadSession"] == []


async def test_read_sends_ignore_command_records_with_every_retry(fake: FakeSidecar) -> None:
    fake.script("Read", [Fail(UNAVAILABLE)], [Records(2)])
    async with S2SidecarClient(fake.address, retry=FAST) as client:
        await client.read("s", start=SeqNum(5), limit=ReadLimit(count=2), ignore_command_records=True)
    expected = pb.ReadRequest(stream="s", seq_num=5, count=2, ignore_command_records=True)
    assert fake.requests["Read"] == [expected] * 2
    fake.requests["Read"].clear()
    await asyncio.to_thread(lambda: S2SidecarSyncClient(fake.address).read("s", ignore_command_records=True))
    assert fake.requests["Read"][0].ignore_command_records


@pytest.fixture(params=["async", "sync"])
def unary(request: pytest.FixtureRequest, fake: FakeSidecar) -> Callable[..., Awaitable[Any]]:
    """`call(method, timeout=...)`: one `read` or `check_tail` with the async or the sync client."""

    async def run_async(method: str, timeout: float = 30.0) -> Any:
        async with S2SidecarClient(fake.address, retry=FAST, timeout=timeout) as client:
            if method == "Read":
                return await client.read("s", start=SeqNum(5), limit=ReadLimit(count=2), wait=1)
            return await client.check_tail("s")

    async def run_sync(method: str, timeout: float = 30.0) -> Any:
        def run() -> Any:
            with S2SidecarSyncClient(fake.address, retry=FAST, timeout=timeout) as client:
                if method == "Read":
                    return client.read("s", start=SeqNum(5), limit=ReadLimit(count=2), wait=1)
                return client.check_tail("s")

        return await asyncio.to_thread(run)

    return run_async if request.param == "async" else run_sync


async def test_read_retries_then_answers(fake: FakeSidecar, unary: Callable[..., Awaitable[Any]]) -> None:
    fake.script("Read", [Fail(UNAVAILABLE)], [Fail(grpc.StatusCode.INTERNAL, "Received RST_STREAM")], [Records(2)])
    batch = await unary("Read")
    assert seqs([batch]) == [5, 6]
    expected = pb.ReadRequest(stream="s", seq_num=5, count=2, wait=1)
    assert fake.requests["Read"] == [expected] * 3  # the same request each time


async def test_check_tail_retries_then_answers(fake: FakeSidecar, unary: Callable[..., Awaitable[Any]]) -> None:
    fake.script("CheckTail", [Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", retry_after=0.01)], [Heartbeat(9)])
    assert await unary("CheckTail") == StreamPosition(9, 7)
    assert len(fake.requests["CheckTail"]) == 2


async def test_unary_calls_give_up_when_the_deadline_leaves_no_room(
    fake: FakeSidecar, unary: Callable[..., Awaitable[Any]]
) -> None:
    fake.script("CheckTail", [Fail(UNAVAILABLE, "draining", retry_after=60)])
    with pytest.raises(Unavailable):
        await unary("CheckTail", timeout=5)
    assert len(fake.requests["CheckTail"]) == 1  # a 60 s RetryInfo does not fit in 5 s


async def test_unary_calls_raise_what_is_not_retried_at_once(
    fake: FakeSidecar, unary: Callable[..., Awaitable[Any]]
) -> None:
    fake.script("Read", [Fail(grpc.StatusCode.NOT_FOUND, "no such stream")])
    with pytest.raises(SidecarError) as err:
        await unary("Read")
    assert err.value.code == grpc.StatusCode.NOT_FOUND and not isinstance(err.value, StreamNotFound)
    assert len(fake.requests["Read"]) == 1


async def test_unary_calls_raise_when_the_budget_is_spent(
    fake: FakeSidecar, unary: Callable[..., Awaitable[Any]]
) -> None:
    fake.script("Read", [Fail(UNAVAILABLE, "down")])
    with pytest.raises(Unavailable):
        await unary("Read")
    assert len(fake.requests["Read"]) == FAST.max_attempts


async def test_default_target_is_s2_sidecar_address(fake: FakeSidecar, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.script("CheckTail", [Heartbeat(3)])
    monkeypatch.setenv("S2_SIDECAR_ADDRESS", fake.address)
    async with S2SidecarClient() as client:
        assert (await client.check_tail("s")).seq_num == 3
    assert await asyncio.to_thread(lambda: S2SidecarSyncClient().check_tail("s")) == StreamPosition(3, 7)


async def test_defaults_send_what_the_proto_defaults_to(fake: FakeSidecar) -> None:
    """With no options every call sends the stream alone: no start (the proto's tail), no limit,
    no wait, no clamp, no max staleness; the table in clients/README.md lists these defaults."""
    fake.script("Read", [Records(0)])
    fake.script("ReadSession", [Records(0)])
    fake.script("CheckTail", [Heartbeat(0)])
    async with S2SidecarClient(fake.address) as client:
        assert client.timeout == 30.0 and client.retry == RetryPolicy(max_attempts=60)
        await client.read("s")
        [b async for b in client.read_session("s")]
        await client.check_tail("s")

    def run() -> None:
        with S2SidecarSyncClient(fake.address) as client:
            client.read("s")
            list(client.read_session("s"))
            client.check_tail("s")

    await asyncio.to_thread(run)
    assert fake.requests["Read"] == [pb.ReadRequest(stream="s")] * 2
    assert fake.requests["ReadSession"] == [pb.ReadSessionRequest(stream="s")] * 2
    assert fake.requests["CheckTail"] == [pb.CheckTailRequest(stream="s")] * 2
    assert not fake.requests["CheckTail"][0].HasField("max_staleness_ms")


async def test_a_read_at_the_tail_without_wait_says_to_pass_a_start(fake: FakeSidecar) -> None:
    fake.script("Read", [Fail(grpc.StatusCode.OUT_OF_RANGE, "start is the tail; set wait")])
    async with S2SidecarClient(fake.address, retry=FAST) as client:
        with pytest.raises(RangeNotSatisfiable) as err:
            await client.read("s")
        assert "pass a start" in "".join(err.value.__notes__)
        with pytest.raises(RangeNotSatisfiable) as err:
            await client.read("s", start=SeqNum(3))  # a start of its own: no note
        assert not getattr(err.value, "__notes__", [])
    with pytest.raises(RangeNotSatisfiable) as err:
        await asyncio.to_thread(lambda: S2SidecarSyncClient(fake.address).read("s"))
    assert "start=SeqNum(0)" in "".join(err.value.__notes__)
