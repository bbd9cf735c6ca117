"""Malformed or broken upstream answers end in a clear UNAVAILABLE, promptly; one bad answer is
retried transparently. Never UNKNOWN or INTERNAL, never a hang.

Faults come from the emulator's hooks (`corrupt`, `fail`, `cut_after_bytes`, `stall_seconds`) and
from tiny aiohttp servers in this file that answer what S2 never would (HTML, oversized s2s frames,
JSON of the wrong shape). Every sidecar here has a small retry budget: 2 retries, 10 ms apart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from aiohttp import web
from google.rpc import error_details_pb2, status_pb2

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.testing import SidecarHarness
from sidecar.upstream import UpstreamFormat, UpstreamProtocol
from tests.api.helpers import collect, error_info, padded, trailing

Code = grpc.StatusCode
RETRIES: dict[str, Any] = {"retry_attempts": 2, "retry_base_delay": 0.01}
ATTEMPTS = 3  # the first try and two retries
PROMPT = 10.0  # seconds: "not a hang", loosely (each of these takes well under a second)
N = 30  # records in each stream here


@pytest.fixture(scope="module")
async def h() -> AsyncIterator[SidecarHarness]:
    async with SidecarHarness(**RETRIES) as harness:
        yield harness


@pytest.fixture(scope="module")
async def hj() -> AsyncIterator[SidecarHarness]:
    """JSON reads and SSE sessions upstream."""
    async with SidecarHarness(upstream_format=UpstreamFormat.JSON, **RETRIES) as harness:
        yield harness


@pytest.fixture
async def s(h: SidecarHarness, hj: SidecarHarness, stream: str) -> AsyncIterator[str]:
    """A stream of N records in both emulators; faults left pending for it are cleared after."""
    for x in (h, hj):
        await x.append_many(stream, N)
    yield stream
    for x in (h, hj):
        assert x.http is not None
        async with x.http.delete(f"{x.emulator.url}/_emulator/faults"):
            pass


async def timed(call: Awaitable[Any]) -> tuple[grpc.aio.AioRpcError, float]:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value, time.monotonic() - started


def has_retry_info(err: grpc.aio.AioRpcError) -> bool:
    raw = trailing(err)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status_pb2.Status.FromString(raw).details)


def assert_unavailable(err: grpc.aio.AioRpcError, elapsed: float, *words: str) -> None:
    message = err.details() or ""
    assert err.code() == Code.UNAVAILABLE, (err.code(), message)
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"
    assert has_retry_info(err)
    assert elapsed < PROMPT


async def upstream_requests(x: SidecarHarness, stream: str, kind: str) -> int:
    return int((await x.emulator_stats())["requests"].get(f"{x.basin}/{stream}", {}).get(kind, 0))


def read(x: SidecarHarness, stream: str, **kw: Any) -> Awaitable[pb.ReadResponse]:
    return x.stub.Read(pb.ReadRequest(stream=stream, seq_num=0, **kw), timeout=30)


def tail(x: SidecarHarness, stream: str) -> Awaitable[pb.CheckTailResponse]:
    return x.stub.CheckTail(pb.CheckTailRequest(stream=stream), timeout=30)


def session(x: SidecarHarness, stream: str) -> Awaitable[Any]:
    return collect(x.stub.ReadSession(pb.ReadSessionRequest(stream=stream, seq_num=0, count=N), timeout=30))


# -- the emulator's faults ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
async def test_persistently_corrupt_read_is_unavailable(
    h: SidecarHarness, hj: SidecarHarness, s: str, fmt: str
) -> None:
    x = h if fmt == "protobuf" else hj
    await x.inject_fault(kind="read", stream=s, corrupt=True, times=100)
    err, elapsed = await timed(read(x, s))
    assert_unavailable(err, elapsed, "malformed", fmt if fmt == "protobuf" else "JSON", "from upstream")
    assert error_info(err).reason == "upstream_protocol"
    assert await upstream_requests(x, s, "read") == ATTEMPTS


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
async def test_one_corrupt_read_is_retried(h: SidecarHarness, hj: SidecarHarness, s: str, fmt: str) -> None:
    x = h if fmt == "protobuf" else hj
    await x.inject_fault(kind="read", stream=s, corrupt=True, times=1)
    resp = await read(x, s)
    assert [r.body for r in resp.records] == [padded(i) for i in range(N)]
    assert await upstream_requests(x, s, "read") == 2


async def test_persistently_corrupt_tail_is_unavailable(h: SidecarHarness, s: str) -> None:
    await h.inject_fault(kind="tail", stream=s, corrupt=True, times=100)
    err, elapsed = await timed(tail(h, s))
    assert_unavailable(err, elapsed, "malformed JSON from upstream")
    assert await upstream_requests(h, s, "tail") == ATTEMPTS


async def test_one_corrupt_tail_is_retried(h: SidecarHarness, s: str) -> None:
    await h.inject_fault(kind="tail", stream=s, corrupt=True, times=1)
    assert (await tail(h, s)).tail.seq_num == N


@pytest.mark.parametrize("fmt", ["s2s", "sse"])
async def test_persistently_corrupt_session_is_unavailable(
    h: SidecarHarness, hj: SidecarHarness, s: str, fmt: str
) -> None:
    x = h if fmt == "s2s" else hj
    await x.inject_fault(kind="session", stream=s, corrupt=True, times=100)
    err, elapsed = await timed(session(x, s))
    assert_unavailable(err, elapsed, "malformed")
    assert await upstream_requests(x, s, f"session_{fmt}") == ATTEMPTS


@pytest.mark.parametrize("fmt", ["s2s", "sse"])
async def test_session_that_fails_for_good_after_progress_says_where_to_resume(
    h: SidecarHarness, hj: SidecarHarness, s: str, fmt: str
) -> None:
    x = h if fmt == "s2s" else hj
    call = x.stub.ReadSession(pb.ReadSessionRequest(stream=s, seq_num=0), timeout=30)  # follows live
    it = aiter(call)
    first = await anext(it)
    assert [r.seq_num for r in first.records] == list(range(N))
    # Every later upstream session is garbage; then the emulator ends the open one (503).
    await x.inject_fault(kind="session", stream=s, corrupt=True, times=100)
    assert x.http is not None
    started = time.monotonic()
    async with x.http.post(f"{x.emulator.url}/_emulator/sessions/close", params={"stream": s, "code": "unavailable"}):
        pass
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for msg in it:
            assert not msg.records, "no record after the first batch"
    assert_unavailable(info.value, time.monotonic() - started, "malformed")
    assert trailing(info.value)["s2-next-seq-num"] == str(N)
    assert error_info(info.value).metadata["next_seq_num"] == str(N)


async def test_session_that_fails_for_good_at_once_says_where_to_resume(h: SidecarHarness, s: str) -> None:
    await h.inject_fault(kind="session", stream=s, corrupt=True, times=100)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await collect(h.stub.ReadSession(pb.ReadSessionRequest(stream=s, seq_num=7, count=5), timeout=30))
    assert info.value.code() == Code.UNAVAILABLE
    assert trailing(info.value).get("s2-next-seq-num") == "7"


@pytest.mark.parametrize("fmt", ["s2s", "sse"])
async def test_one_corrupt_session_message_is_retried(h: SidecarHarness, hj: SidecarHarness, s: str, fmt: str) -> None:
    x = h if fmt == "s2s" else hj
    await x.inject_fault(kind="session", stream=s, corrupt=True, times=1)
    records, _ = await session(x, s)
    assert [r.seq_num for r in records] == list(range(N))


@pytest.mark.parametrize(("kind", "cut"), [("read", 5), ("read", 200), ("tail", 5), ("tail", 0)])
async def test_persistently_cut_unary_answer_is_unavailable(h: SidecarHarness, s: str, kind: str, cut: int) -> None:
    await h.inject_fault(kind=kind, stream=s, cut_after_bytes=cut, times=100)
    err, elapsed = await timed(read(h, s) if kind == "read" else tail(h, s))
    assert_unavailable(err, elapsed, s)
    assert error_info(err).reason in ("upstream_unreachable", "upstream_protocol")
    assert await upstream_requests(h, s, kind) == ATTEMPTS


@pytest.mark.parametrize("kind", ["read", "tail"])
async def test_one_cut_unary_answer_is_retried(h: SidecarHarness, s: str, kind: str) -> None:
    await h.inject_fault(kind=kind, stream=s, cut_after_bytes=5, times=1)
    if kind == "read":
        assert [r.seq_num for r in (await read(h, s)).records] == list(range(N))
    else:
        assert (await tail(h, s)).tail.seq_num == N


@pytest.mark.parametrize("kind", ["read", "tail"])
async def test_persistent_500s_are_unavailable_after_the_retry_budget(h: SidecarHarness, s: str, kind: str) -> None:
    await h.inject_fault(kind=kind, stream=s, fail=100, status=500, code="storage", message="disk on fire")
    err, elapsed = await timed(read(h, s) if kind == "read" else tail(h, s))
    assert_unavailable(err, elapsed, "S2 answered 500 storage: disk on fire")
    assert error_info(err).reason == "storage"
    assert await upstream_requests(h, s, kind) == ATTEMPTS


@pytest.mark.parametrize("kind", ["read", "tail"])
async def test_an_odd_status_is_not_retried_and_is_reported(h: SidecarHarness, s: str, kind: str) -> None:
    await h.inject_fault(kind=kind, stream=s, fail=100, status=418, code="teapot", message="short and stout")
    err, elapsed = await timed(read(h, s) if kind == "read" else tail(h, s))
    assert err.code() == Code.UNAVAILABLE
    assert "S2 answered 418 teapot: short and stout" in (err.details() or "")
    assert error_info(err).metadata["http_status"] == "418"
    assert await upstream_requests(h, s, kind) == 1  # not in S2's retry table
    assert elapsed < PROMPT


async def test_a_stalled_read_ends_by_the_callers_deadline(h: SidecarHarness, s: str) -> None:
    await h.inject_fault(kind="read", stream=s, stall_seconds=30, times=1)
    err, elapsed = await timed(h.stub.Read(pb.ReadRequest(stream=s, seq_num=0), timeout=1.0))
    assert err.code() in (Code.DEADLINE_EXCEEDED, Code.UNAVAILABLE), err.details()
    assert elapsed < 3


# -- upstreams that are not S2: tiny aiohttp servers ------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def fake_upstream(handler: Handler, **config: Any) -> AsyncIterator[SidecarHarness]:
    """A sidecar whose upstream is `handler` (real HTTP on loopback; the harness's emulator idles).

    Always HTTP/1.1 (aiohttp serves nothing else): these test S2 wire-format handling above the
    transport; HTTP/2 transport-level misbehaviour is covered in tests/upstream/test_http2.py."""
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        config = {"upstream_protocol": UpstreamProtocol.HTTP1, **RETRIES, **config}
        async with SidecarHarness(basin_endpoint=f"http://127.0.0.1:{port}/v1", **config) as x:
            yield x
    finally:
        await runner.cleanup()


def answer(body: bytes, content_type: str, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers={"content-type": content_type})

    return handler


def s2s_stream(payload: bytes) -> Handler:
    """Answer every request with `payload` as an s2s/proto body, then end it."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "s2s/proto"})
        await resp.prepare(request)
        await resp.write(payload)
        await resp.write_eof()
        return resp

    return handler


async def test_html_upstream_is_unavailable_for_every_method() -> None:
    async with fake_upstream(answer(b"<html><body>login</body></html>", "text/html")) as x:
        err, elapsed = await timed(read(x, "s"))
        assert_unavailable(err, elapsed, "content-type 'text/html'")
        err, elapsed = await timed(tail(x, "s"))
        assert_unavailable(err, elapsed, "malformed JSON from upstream")
        err, elapsed = await timed(session(x, "s"))
        assert_unavailable(err, elapsed, "content-type 'text/html'")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xff\xff\xff\x00", "truncated"),  # claims 16 MiB, then the body ends
        (b"\xff\xff\xff\x00" + b"\x0a" * (2**24 - 2), "malformed protobuf"),  # 16 MiB of garbage
        (b"\x00\x00\x00", "zero length"),
        (b"\x00\x00\x02\x20\x00", "compression"),  # zstd, which the sidecar did not ask for
        (b"\x00\x00\x02\xc0\x00", "gzip"),  # terminal frame, gzip flag, body that is not gzip
        (b"\x00\x00\x02\x80\x01", "2-byte status"),  # terminal frame too short for its status
        (b"\x00\x00", "frame header"),  # cut inside a frame header
    ],
)
async def test_bad_s2s_framing_is_unavailable(payload: bytes, words: str) -> None:
    async with fake_upstream(s2s_stream(payload)) as x:
        err, elapsed = await timed(session(x, "s"))
        assert_unavailable(err, elapsed, words)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"tail": 5}',
        b'{"tail": {"seq_num": "x", "timestamp": 0}}',
        b'{"tail": {"seq_num": 1}}',
        b'{"tail": {"seq_num": -1, "timestamp": 0}}',
        b'{"tail": {"seq_num": 18446744073709551616, "timestamp": 0}}',
        b'{"tail": {"seq_num": 1e400, "timestamp": 0}}',
    ],
)
async def test_malformed_tail_json_is_unavailable(body: bytes) -> None:
    async with fake_upstream(answer(body, "application/json")) as x:
        err, elapsed = await timed(tail(x, "s"))
        assert_unavailable(err, elapsed, "upstream")
        assert error_info(err).reason == "upstream_protocol"


def _records(*seq_nums: Any) -> bytes:
    return json.dumps({"records": [{"seq_num": n, "timestamp": 1, "body": ""} for n in seq_nums]}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": 5}',
        b'{"records": [{"seq_num": "x", "timestamp": 1}]}',
        b'{"records": [{"seq_num": 0, "timestamp": 1, "body": "***"}]}',  # not base64
        b'{"records": [], "tail": {"seq_num": null}}',
        _records(-5),
        _records(0, 2, 2, 1),
    ],
)
async def test_malformed_json_batch_is_unavailable(body: bytes) -> None:
    async with fake_upstream(answer(body, "application/json"), upstream_format=UpstreamFormat.JSON) as x:
        err, elapsed = await timed(read(x, "s"))
        assert_unavailable(err, elapsed, "malformed")


async def test_sse_batch_with_a_gap_is_never_delivered() -> None:
    async def sse_gap(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        body = json.dumps({"records": [{"seq_num": n, "timestamp": 1} for n in (0, 2, 2, 3)]})
        await resp.write(f"event: batch\ndata: {body}\n\ndata: [DONE]\n\n".encode())
        await resp.write_eof()
        return resp

    async with fake_upstream(sse_gap, upstream_format=UpstreamFormat.JSON) as x:
        call = x.stub.ReadSession(pb.ReadSessionRequest(stream="s", seq_num=0, count=4), timeout=10)
        seen: list[int] = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for msg in call:
                seen += [r.seq_num for r in msg.records]
        assert seen == [] and info.value.code() == Code.UNAVAILABLE


async def test_sidecar_still_serves_after_the_faults(h: SidecarHarness, s: str) -> None:
    assert [r.seq_num for r in (await read(h, s)).records] == list(range(N))
    for _ in range(100):  # every failed session has closed its upstream session
        if (await h.emulator_stats())["open_sessions_total"] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await h.emulator_stats())["open_sessions_total"] == 0
