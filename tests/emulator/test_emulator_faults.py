"""Test hooks: injected faults (fail, cut, stall, corrupt), statistics, reset."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google.protobuf.message import DecodeError

from sidecar._proto.s2.v1 import records_pb2
from sidecar.testing import SidecarHarness

from .helpers import BASIN, FIVE_FRAME, FIVE_JSON, S2, S2S, SSE, Frames


@pytest.fixture(autouse=True)
async def no_faults_left(s2: S2) -> AsyncIterator[None]:
    yield
    await s2.hook("DELETE", "faults")


async def body_until_cut(response: aiohttp.ClientResponse) -> bytes:
    """Everything received before the connection broke; fails if the body ended cleanly."""
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async for chunk in response.content.iter_any():
            received += chunk
    return received


async def test_fail_with_retry_after(s2: S2, five: str) -> None:
    fault = {"kind": "read", "stream": five, "fail": 2, "status": 503, "code": "unavailable", "message": "try later",
             "retry_after_ms": 250}  # fmt: skip
    await s2.hook("POST", "faults", fault)
    # Other streams are not matched: this one is created on read (BASIN's config) and answers S2's 416.
    assert await s2.read(five + "-elsewhere", "seq_num=0") == (416, {"tail": {"seq_num": 0, "timestamp": 0}})
    async with s2.http.get(s2.path(five, "/records/tail"), headers=s2.headers()) as r:
        assert r.status == 200  # other kinds are not matched
    for _ in range(2):
        async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers()) as r:
            assert r.status == 503
            assert r.headers["retry-after-ms"] == "250"
            assert await r.json() == {"code": "unavailable", "message": "try later"}
    status, body = await s2.read(five, "seq_num=0")
    assert status == 200 and len(body["records"]) == 5
    stats = await s2.hook("GET", "stats")
    assert stats["requests"][f"{BASIN}/{five}"]["read"] == 3  # failed requests count too


async def test_fail_append_and_any(s2: S2, stream: str) -> None:
    await s2.hook(
        "POST", "faults", {"kind": "append", "stream": stream, "fail": 1, "status": 429, "code": "rate_limited"}
    )
    async with s2.http.post(s2.path(stream, "/records"), json={"records": [{}]}, headers=s2.headers()) as r:
        assert r.status == 429
        assert "retry-after-ms" not in r.headers
        assert (await r.json())["code"] == "rate_limited"
    await s2.append(stream, [{"body": "ok"}])  # the fault was used up; nothing was appended by the failed one
    await s2.hook("POST", "faults", {"kind": "any", "basin": BASIN, "stream": stream, "fail": 1, "status": 500,
                                     "code": "other"})  # fmt: skip
    async with s2.http.get(s2.path(stream, "/records/tail"), headers=s2.headers()) as r:
        assert r.status == 500
    async with s2.http.get(s2.path(stream, "/records/tail"), headers=s2.headers()) as r:
        assert r.status == 200
        assert (await r.json())["tail"]["seq_num"] == 1


async def test_cut_sse_session_mid_event(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "session", "stream": five, "cut_after_bytes": 40, "times": 1})
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers(SSE)) as r:
        assert r.status == 200
        received = await body_until_cut(r)
    assert received == f"event: batch\nid: 4,5,50\ndata: {FIVE_JSON}".encode()[:40]
    async with s2.http.get(s2.path(five, "/records?seq_num=0&count=1"), headers=s2.headers(SSE)) as r:
        assert (await r.read()).endswith(b"data: [DONE]\n\n")  # used up: the next session is whole


async def test_cut_s2s_session_mid_frame(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "session", "stream": five, "cut_after_bytes": 10})
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers(S2S)) as r:
        assert await body_until_cut(r) == FIVE_FRAME[:10]


async def test_cut_one_shot_read(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "read", "stream": five, "cut_after_bytes": 5})
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers()) as r:
        assert r.status == 200
        assert await body_until_cut(r) == FIVE_JSON.encode()[:5]


async def test_stall_s2s_session(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "session", "stream": five, "stall_seconds": 1, "times": 1})
    started = time.monotonic()
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers(S2S)) as r:
        assert r.status == 200
        assert time.monotonic() - started < 0.5  # headers at once
        frames = Frames(r)
        with pytest.raises(TimeoutError):
            await frames.next(timeout=0.6)  # nothing: no batch, no heartbeat
        assert await frames.next() == FIVE_FRAME
        assert 0.9 < time.monotonic() - started < 1.6


async def test_stall_sse_session_has_no_heartbeats(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "session", "stream": five, "stall_seconds": 0.8})
    started = time.monotonic()
    async with s2.http.get(s2.path(five, "/records"), headers=s2.headers(SSE)) as r:  # at the tail
        first = await r.content.readuntil(b"\n\n")
    assert first.startswith(b"event: ping\n")
    assert time.monotonic() - started > 0.75


async def test_stall_one_shot(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "read", "stream": five, "stall_seconds": 0.5})
    started = time.monotonic()
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers()) as r:
        assert r.status == 200
        assert time.monotonic() - started < 0.4
        assert await r.read() == FIVE_JSON.encode()
    assert time.monotonic() - started > 0.45


async def test_corrupt(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "read", "stream": five, "corrupt": True, "times": 2})
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers()) as r:
        assert r.status == 200
        with pytest.raises(ValueError):
            json.loads(await r.read())
    proto = s2.headers({"Accept": "application/protobuf"})
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=proto) as r:
        with pytest.raises(DecodeError):
            records_pb2.ReadBatch.FromString(await r.read())
    async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=proto) as r:
        assert len(records_pb2.ReadBatch.FromString(await r.read()).records) == 5  # used up

    await s2.hook("POST", "faults", {"kind": "session", "stream": five, "corrupt": True, "times": 2})
    async with s2.http.get(s2.path(five, "/records?seq_num=0&count=5"), headers=s2.headers(S2S)) as r:
        frame = await Frames(r).next()
        assert frame[3] == 0  # a regular frame...
        with pytest.raises(DecodeError):  # ...whose payload is not a ReadBatch
            records_pb2.ReadBatch.FromString(frame[4:])
    async with s2.http.get(s2.path(five, "/records?seq_num=0&count=5"), headers=s2.headers(SSE)) as r:
        event = (await r.content.readuntil(b"\n\n")).decode()
        assert event.startswith("event: batch\nid: 4,5,50\ndata: ")
        with pytest.raises(ValueError):
            json.loads(event.split("data: ", 1)[1])
        assert await r.content.read() == b"data: [DONE]\n\n"  # the session goes on after the garbage


async def test_bad_fault_descriptions(s2: S2) -> None:
    for bad in (
        {"kind": "nope", "fail": 1},
        {"kind": "lists", "fail": 1},
        {"fail": 1, "stall_seconds": 1},
        {"kind": "read"},
        {"fail": 0},
        [],
    ):
        async with s2.http.post(f"{s2.url}/_emulator/faults", json=bad) as r:
            assert r.status == 400, bad


async def test_stats_count_each_kind(s2: S2, five: str) -> None:
    async def get(params: str, headers: dict[str, str] | None = None) -> None:
        async with s2.http.get(s2.path(five, params), headers=s2.headers(headers)) as r:
            await r.read()

    await get("/records?seq_num=0")
    await get("/records?seq_num=0", {"Accept": "application/protobuf"})
    await get("/records?seq_num=0&count=1", SSE)
    await get("/records?seq_num=0&count=1", S2S)
    await get("/records?seq_num=99")  # a 416 counts too
    await get("/records/tail")
    await get("")
    stats = await s2.hook("GET", "stats")
    assert stats["requests"][f"{BASIN}/{five}"] == {
        "append": 1,  # the fixture's
        "read": 3,
        "read_json": 2,
        "read_protobuf": 1,
        "session": 2,
        "session_sse": 1,
        "session_s2s": 1,
        "tail": 1,
        "streams": 1,
        "config": 1,
    }
    assert stats["requests_total"] >= 9
    assert stats["open_sessions_total"] >= 0


async def test_reset_clears_stats_and_faults_not_data(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "tail", "stream": five, "fail": 5})
    await s2.hook("POST", "reset")
    stats = await s2.hook("GET", "stats")
    assert stats["requests"] == {} and stats["requests_total"] == 0
    async with s2.http.get(s2.path(five, "/records/tail"), headers=s2.headers()) as r:
        assert r.status == 200
        assert (await r.json())["tail"]["seq_num"] == 5


async def test_list_fault_refuses_stream_listing_and_stats_count_listings(s2: S2) -> None:
    """Kind `list`: `GET /v1/streams` of a basin fails as S2 answers a token that may not list
    streams (403 `permission_denied`; S2: api/src/v1/error.rs `PermissionDenied` => FORBIDDEN)."""
    b = await s2.create_basin({"create_stream_on_append": True})
    other = await s2.create_basin()
    await b.append("a1", [{"body": "x"}])

    async def listing(s: S2, prefix: str | None) -> tuple[int, Any]:
        params = {"limit": "1"} if prefix is None else {"prefix": prefix, "limit": "1"}
        async with s.http.get(f"{s.url}/v1/streams", params=params, headers=s.headers()) as r:
            return r.status, await r.json()

    refused = {"code": "permission_denied", "message": "this token may not list streams"}
    await s2.hook("POST", "faults", {"kind": "list", "basin": b.basin, "fail": 2, "status": 403, **refused})
    assert await listing(other, "a1") == (200, {"streams": [], "has_more": False})  # another basin
    async with b.http.get(b.path("a1", "/records/tail"), headers=b.headers()) as r:
        assert r.status == 200  # not a listing
    assert await listing(b, "a1") == (403, refused)
    assert await listing(b, None) == (403, refused)  # any prefix, or none
    status, body = await listing(b, "a1")
    assert status == 200 and [s["name"] for s in body["streams"]] == ["a1"]  # used up

    # `stream` in a `list` fault is the listing's prefix, matched exactly.
    await s2.hook("POST", "faults", {"kind": "list", "basin": b.basin, "stream": "a1", "fail": 1, "status": 403})
    assert (await listing(b, "a"))[0] == 200
    assert (await listing(b, "a1"))[0] == 403
    # An `any` fault naming a stream is not taken by a listing whose prefix is that name...
    await s2.hook("POST", "faults", {"kind": "any", "basin": b.basin, "stream": "a1", "fail": 1, "status": 500})
    assert (await listing(b, "a1"))[0] == 200
    async with b.http.get(b.path("a1", "/records/tail"), headers=b.headers()) as r:
        assert r.status == 500  # ...but by the stream's own requests
    # ...while one naming no stream is.
    await s2.hook("POST", "faults", {"kind": "any", "basin": b.basin, "fail": 1, "status": 500})
    assert (await listing(b, "a1"))[0] == 500

    stats = await s2.hook("GET", "stats")
    # Listings count per basin under `basin/`, refused ones too; "streams" as before.
    assert stats["requests"][f"{b.basin}/"] == {"streams": 7, "list": 7}
    assert stats["requests"][f"{other.basin}/"] == {"streams": 1, "list": 1}


async def test_list_fault_through_the_harness() -> None:
    async with SidecarHarness() as h:
        await h.inject_fault(kind="list", basin=h.basin, fail=1000, status=403, code="permission_denied",
                             message="no listing")  # fmt: skip
        assert h.http is not None
        url = f"{h.emulator.url}/v1/streams?prefix=x&limit=1"
        async with h.http.get(url, headers={"s2-basin": h.basin}) as r:
            assert (r.status, await r.json()) == (403, {"code": "permission_denied", "message": "no listing"})
        assert (await h.emulator_stats())["requests"][f"{h.basin}/"]["list"] == 1
