"""Bad input gets a clear answer: random requests (hypothesis) and one test per validation rule.

The property: whatever a client sends, the sidecar answers with a status a client can act on
(never UNKNOWN or INTERNAL), every error has a message, an INVALID_ARGUMENT message starts with
the request field to change, and the sidecar keeps serving afterwards.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from tests.api.helpers import collect, padded, trailing

Code = grpc.StatusCode
U64 = 2**64 - 1
U32 = 2**32 - 1
I64 = 2**63 - 1
READY = "prepared-stream"  # 20 records, appended once for the module
READY_RECORDS = 20
FIELDS = ("basin", "stream", "seq_num", "timestamp", "tail_offset", "count", "bytes", "until", "clamp", "wait")
# What a request can legitimately end with: an answer, a client mistake, or our own deadline.
ACCEPTABLE = {Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.OUT_OF_RANGE, Code.DEADLINE_EXCEEDED, Code.CANCELLED}


@pytest.fixture(scope="module")
async def h() -> AsyncIterator[SidecarHarness]:
    async with SidecarHarness() as harness:
        await harness.append_many(READY, READY_RECORDS)
        yield harness


# -- strategies ---------------------------------------------------------------------------------

_valid_basin = st.from_regex(r"[a-z0-9][a-z0-9-]{6,46}[a-z0-9]", fullmatch=True)
_good_basins = st.sampled_from(["", "test-basin"])  # the default basin, or named
_other_basins = st.one_of(
    _valid_basin,  # valid but unknown: NOT_FOUND
    st.text(max_size=7),  # too short
    st.text(alphabet="abc-", min_size=49, max_size=60),  # too long
    _valid_basin.map(str.upper),  # uppercase
    st.text(min_size=8, max_size=48),  # unicode, any characters
    st.sampled_from(["-leading-dash", "trailing-dash-", "under_score1", "with space1"]),
)
_other_streams = st.one_of(
    st.sampled_from(["", ".", "..", "...", "a/b", "%2F", "?x=1", "with space", "\u00e9t\u00e9"]),
    st.text(min_size=1, max_size=40),  # unicode, control characters, NUL
    st.text(min_size=0, max_size=8).map(lambda s: s + "\x00" + s),
    st.integers(500, 530).map(lambda n: "s" * n),  # around the 512-byte limit
    st.integers(250, 260).map(lambda n: "\u00e9" * n),  # 2-byte characters: 500-520 bytes
    st.integers(120, 130).map(lambda n: "\U0001f600" * n),  # 4-byte characters: 480-520 bytes
)
u64s = st.one_of(st.integers(0, 40), st.integers(0, U64), st.sampled_from([0, I64, I64 + 1, U64]))
optional_u64 = st.none() | u64s
waits = st.none() | st.integers(0, 70) | st.sampled_from([60, 61, U32]) | st.integers(0, U32)


@dataclass(frozen=True)
class Call:
    method: str  # Read, ReadSession, CheckTail
    fields: dict[str, Any]

    def message(self) -> Any:
        fields = {k: v for k, v in self.fields.items() if v is not None}
        if self.method == "CheckTail":
            return pb.CheckTailRequest(basin=fields["basin"], stream=fields["stream"])
        kind = pb.ReadRequest if self.method == "Read" else pb.ReadSessionRequest
        return kind(**fields)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    method = draw(st.sampled_from(["Read", "ReadSession", "CheckTail"]))
    # Three in four requests name a good basin and the prepared stream, so that most of them get
    # past validation and exercise the start, stops and wait against real data.
    basin = draw(_good_basins) if draw(st.integers(0, 3)) else draw(_other_basins)
    stream = READY if draw(st.integers(0, 3)) else draw(_other_streams)
    fields: dict[str, Any] = {"basin": basin, "stream": stream}
    start = draw(st.sampled_from([None, "seq_num", "timestamp", "tail_offset"]))
    if start is not None:
        fields[start] = draw(u64s)
    for name in ("count", "bytes", "until"):
        fields[name] = draw(optional_u64)
    fields["clamp"] = draw(st.booleans())
    fields["wait"] = draw(waits)
    return Call(method, fields)


# -- the oracle: which field a request gets wrong, written from the proto's documentation --------


def _basin_ok(name: str) -> bool:
    return 8 <= len(name) <= 48 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name) is not None


def _stream_ok(name: str) -> bool:
    return 1 <= len(name.encode()) <= 512 and name not in (".", "..") and "\x00" not in name


def bad_field(call: Call) -> str | None:
    """The field the sidecar must name, in the order it checks them; None for a valid request."""
    f = call.fields
    if not _basin_ok(f["basin"] or "test-basin"):
        return "basin"
    if not _stream_ok(f["stream"]):
        return "stream"
    if call.method == "CheckTail":
        return None
    if f.get("timestamp") is not None and f["until"] is not None and f["timestamp"] >= f["until"]:
        return "until"
    if call.method == "Read" and (f["wait"] or 0) > 60:
        return "wait"
    return None


async def perform(h: SidecarHarness, call: Call) -> tuple[Code, str]:
    """Send one call with a short deadline; a session is read for at most 3 messages or 0.3 s."""
    try:
        if call.method == "Read":
            await h.stub.Read(call.message(), timeout=1.0)
        elif call.method == "CheckTail":
            await h.stub.CheckTail(call.message(), timeout=1.0)
        else:
            session = h.stub.ReadSession(call.message(), timeout=2.0)
            try:
                async with asyncio.timeout(0.3):
                    n = 0
                    async for _ in session:
                        n += 1
                        if n == 3:
                            break
            except TimeoutError:
                pass
            finally:
                session.cancel()
        return Code.OK, ""
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""


def check_answer(call: Call, code: Code, message: str) -> None:
    assert code in ACCEPTABLE, f"{call}: {code} {message!r}"
    if code != Code.OK:
        assert message.strip(), f"{call}: {code} with an empty message"
    expected = bad_field(call)
    if expected is not None:
        assert code == Code.INVALID_ARGUMENT, f"{call}: expected INVALID_ARGUMENT on {expected}, got {code} {message!r}"
        assert message.startswith(f"{expected}:"), f"{call}: message should name {expected!r}: {message!r}"
    else:
        assert code != Code.INVALID_ARGUMENT, f"{call}: a valid request was refused: {message!r}"
    if code == Code.INVALID_ARGUMENT:
        assert message.split(":", 1)[0] in FIELDS, message


# -- the property -------------------------------------------------------------------------------


# pytest-asyncio runs an `async def` test decorated with `@given` by wrapping hypothesis's inner
# test in a synchronous function that runs each example's coroutine to completion on the test's
# event loop (here the session loop, which is idle between examples). So each example can await
# the module's harness, which lives on that same loop. Each example sends a few calls at once.
@settings(
    max_examples=150,
    deadline=None,
    database=None,  # do not write .hypothesis/ into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(calls(), min_size=1, max_size=8))
async def test_random_requests_get_clear_answers(h: SidecarHarness, batch: list[Call]) -> None:
    results = await asyncio.gather(*(perform(h, c) for c in batch))
    for call, (code, message) in zip(batch, results, strict=True):
        check_answer(call, code, message)


async def test_still_serving_after_the_random_requests(h: SidecarHarness) -> None:
    # Runs after the property in file order; on its own it checks the same thing on a fresh sidecar.
    resp = await h.stub.Read(pb.ReadRequest(stream=READY, seq_num=0), timeout=5)
    assert [r.seq_num for r in resp.records] == list(range(READY_RECORDS))
    assert [r.body for r in resp.records] == [padded(i) for i in range(READY_RECORDS)]
    records, _ = await collect(h.stub.ReadSession(pb.ReadSessionRequest(stream=READY, seq_num=5, count=10)))
    assert [r.seq_num for r in records] == list(range(5, 15))
    assert h.channel is not None
    health = health_pb2_grpc.HealthStub(h.channel)
    for service in ("", "s2sidecar.v1.StreamService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stats = await h.emulator_stats()
    assert stats["open_sessions_total"] == 0 or await _sessions_drain(h)


async def _sessions_drain(h: SidecarHarness) -> bool:
    for _ in range(100):
        if (await h.emulator_stats())["open_sessions_total"] == 0:
            return True
        await asyncio.sleep(0.05)
    return False


# -- one test per rule, for every method --------------------------------------------------------


def _request(method: str, **fields: Any) -> Any:
    if method == "CheckTail":
        return pb.CheckTailRequest(**fields)
    return (pb.ReadRequest if method == "Read" else pb.ReadSessionRequest)(**fields)


async def call_error(h: SidecarHarness, method: str, **fields: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if method == "ReadSession":
            await collect(h.stub.ReadSession(_request(method, **fields), timeout=5))
        else:
            await getattr(h.stub, method)(_request(method, **fields), timeout=5)
    return info.value


def bad_request_field(err: grpc.aio.AioRpcError) -> str:
    raw = trailing(err)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    raise AssertionError("no BadRequest in the status details")


def assert_invalid(err: grpc.aio.AioRpcError, field: str, *rule: str) -> None:
    message = err.details() or ""
    assert err.code() == Code.INVALID_ARGUMENT, (err.code(), message)
    assert message.startswith(f"{field}: "), message
    for words in rule:
        assert words in message, f"{words!r} not in {message!r}"
    assert bad_request_field(err) == field


ALL = ["Read", "ReadSession", "CheckTail"]
READS = ["Read", "ReadSession"]
NOT_READ = ["ReadSession", "CheckTail"]  # test_read.py covers these rules for Read


@pytest.mark.parametrize("method", NOT_READ)
async def test_basin_too_short(h: SidecarHarness, method: str) -> None:
    err = await call_error(h, method, basin="short", stream=READY)
    assert_invalid(err, "basin", "8-48 characters", "got 5")


@pytest.mark.parametrize("method", ALL)
async def test_basin_too_long(h: SidecarHarness, method: str) -> None:
    err = await call_error(h, method, basin="b" * 49, stream=READY)
    assert_invalid(err, "basin", "8-48 characters", "got 49")


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize(
    "basin", ["Bad_Basin", "UPPERCASE-BASIN", "-leading-dash", "trailing-dash-", "b\u00e4sin-name"]
)
async def test_basin_bad_characters(h: SidecarHarness, method: str, basin: str) -> None:
    err = await call_error(h, method, basin=basin, stream=READY)
    assert_invalid(err, "basin", "a-z, 0-9 and '-'", "start and end with a letter or digit")


@pytest.mark.parametrize("method", NOT_READ)
async def test_stream_empty(h: SidecarHarness, method: str) -> None:
    err = await call_error(h, method, stream="")
    assert_invalid(err, "stream", "required")


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("name", [".", ".."])
async def test_stream_dot_names(h: SidecarHarness, method: str, name: str) -> None:
    err = await call_error(h, method, stream=name)
    assert_invalid(err, "stream", "must not be '.' or '..'")


@pytest.mark.parametrize("method", ALL)
async def test_stream_longer_than_512_bytes(h: SidecarHarness, method: str) -> None:
    err = await call_error(h, method, stream="\u00e9" * 257)  # 514 bytes, 257 characters
    assert_invalid(err, "stream", "1-512 bytes", "got 514")


@pytest.mark.parametrize("method", ALL)
async def test_stream_of_512_bytes_is_valid_and_not_found(h: SidecarHarness, method: str) -> None:
    start = {} if method == "CheckTail" else {"seq_num": 0}
    err = await call_error(h, method, stream="\u00e9" * 256, **start)
    assert err.code() == Code.NOT_FOUND, err.details()


@pytest.mark.parametrize("method", ALL)
async def test_stream_with_nul(h: SidecarHarness, method: str) -> None:
    err = await call_error(h, method, stream="a\x00b")
    assert_invalid(err, "stream", "NUL")


@pytest.mark.parametrize("method", ALL)
async def test_no_basin_without_a_default_basin(method: str) -> None:
    async with SidecarHarness(default_basin=None) as nodefault:
        await nodefault.append_many("s", 1)
        err = await call_error(nodefault, method, stream="s")
        assert_invalid(err, "basin", "required", "--default-basin")
        # Naming the basin works on the same sidecar.
        if method == "CheckTail":
            resp = await nodefault.stub.CheckTail(pb.CheckTailRequest(basin=nodefault.basin, stream="s"))
            assert resp.tail.seq_num == 1


async def test_read_wait_over_60_names_the_limit_and_the_alternative(h: SidecarHarness) -> None:
    err = await call_error(h, "Read", stream=READY, seq_num=0, wait=U32)
    assert_invalid(err, "wait", "at most 60 seconds", f"got {U32}", "ReadSession")


async def test_session_wait_over_60_is_fine(h: SidecarHarness) -> None:
    records, _ = await collect(h.stub.ReadSession(pb.ReadSessionRequest(stream=READY, seq_num=18, count=2, wait=61)))
    assert [r.seq_num for r in records] == [18, 19]


@pytest.mark.parametrize("method", READS)
@pytest.mark.parametrize(("timestamp", "until"), [(10, 10), (11, 10), (U64, 0)])
async def test_timestamp_not_before_until(h: SidecarHarness, method: str, timestamp: int, until: int) -> None:
    err = await call_error(h, method, stream=READY, timestamp=timestamp, until=until)
    assert_invalid(err, "until", "greater than the start timestamp", str(timestamp), "exclusive")


@pytest.mark.parametrize("method", READS)
@pytest.mark.parametrize("offset", [I64, I64 + 1, U64])
async def test_tail_offset_takes_u64_and_saturates_at_the_first_record(
    h: SidecarHarness, method: str, offset: int
) -> None:
    if method == "Read":
        resp = await h.stub.Read(pb.ReadRequest(stream=READY, tail_offset=offset))
        assert [r.seq_num for r in resp.records] == list(range(READY_RECORDS))
    else:
        req = pb.ReadSessionRequest(stream=READY, tail_offset=offset, count=READY_RECORDS)
        records, _ = await collect(h.stub.ReadSession(req))
        assert [r.seq_num for r in records] == list(range(READY_RECORDS))


@pytest.mark.parametrize("method", ALL)
async def test_unknown_basin_is_not_found(h: SidecarHarness, method: str) -> None:
    fields: dict[str, Any] = {"basin": "no-such-basin", "stream": READY}
    if method != "CheckTail":
        fields["seq_num"] = 0
    err = await call_error(h, method, **fields)
    assert err.code() == Code.NOT_FOUND
    assert "not_found" in (err.details() or "") and "check the" in (err.details() or "")


@pytest.mark.parametrize("start", [{"seq_num": READY_RECORDS + 1}, {"seq_num": U64}, {"timestamp": U64}])
async def test_session_start_past_the_tail_is_out_of_range_with_the_tail(
    h: SidecarHarness, start: dict[str, int]
) -> None:
    err = await call_error(h, "ReadSession", stream=READY, **start)
    assert err.code() == Code.OUT_OF_RANGE
    message = err.details() or ""
    assert f"next seq_num is {READY_RECORDS}" in message and "clamp" in message
    meta = trailing(err)
    assert meta["s2-tail-seq-num"] == str(READY_RECORDS)
    assert int(str(meta["s2-tail-timestamp"])) > 0


async def test_read_start_past_the_tail_by_timestamp_is_out_of_range(h: SidecarHarness) -> None:
    err = await call_error(h, "Read", stream=READY, timestamp=U64)
    assert err.code() == Code.OUT_OF_RANGE
    assert trailing(err)["s2-tail-seq-num"] == str(READY_RECORDS)


async def test_read_wait_at_the_tail_with_a_short_deadline_returns_an_empty_batch(h: SidecarHarness) -> None:
    resp = await h.stub.Read(pb.ReadRequest(stream=READY, seq_num=READY_RECORDS, wait=10), timeout=1.5)
    assert list(resp.records) == []
