"""SSE and s2s read sessions: catch-up, live following, heartbeats, bounds, wait, resumption, ends."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig

from .helpers import BASIN, FIVE, FIVE_FRAME, FIVE_JSON, HB_MAX, HB_MIN, S2, S2S, SSE, Events, Frames

HEARTBEAT_FRAME_5_40 = b"\x00\x00\x07\x00\x12\x04\x08\x05\x10\x28"  # ReadBatch{tail: {5, 40}}
PING = re.compile(r'event: ping\ndata: \{"timestamp":(\d+),"tail":\{"seq_num":(\d+),"timestamp":(\d+)\}\}\n\n')
DONE = "data: [DONE]\n\n"


@asynccontextmanager
async def session(s2: S2, stream: str, params: str, headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
    async with s2.http.get(s2.path(stream, f"/records?{params}"), headers=s2.headers(headers)) as r:
        yield r


async def next_batch(events: Events, timeout: float = 5.0) -> str:
    """The next event that is not a ping."""
    while PING.fullmatch(event := await events.next(timeout)):
        pass
    return event


async def test_sse_catch_up_then_follow_live(s2: S2, five: str) -> None:
    async with session(s2, five, "seq_num=0", SSE) as r:
        assert r.status == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache, no-transform"
        assert r.headers["x-accel-buffering"] == "no"
        events = Events(r)
        assert await events.next() == f"event: batch\nid: 4,5,50\ndata: {FIVE_JSON}\n\n"
        ping = PING.fullmatch(await events.next())
        assert ping is not None
        assert ping.group(2, 3) == ("5", "40")
        assert abs(int(ping.group(1)) - time.time() * 1000) < 2000
        appended = time.monotonic()
        await s2.append(five, [{"timestamp": 50, "body": "live"}])
        assert await next_batch(events) == (
            "event: batch\nid: 5,6,62\n"
            'data: {"records":[{"seq_num":5,"timestamp":50,"body":"live"}],"tail":{"seq_num":6,"timestamp":50}}\n\n'
        )
        assert time.monotonic() - appended < 0.1


async def test_sse_heartbeats_on_switch_and_then_at_random_gaps(s2: S2, five: str) -> None:
    async with session(s2, five, "", SSE) as r:  # default start: the tail
        events = Events(r)
        started = time.monotonic()
        assert PING.fullmatch(await events.next())
        times = [time.monotonic() - started]
        for _ in range(3):
            assert PING.fullmatch(await events.next())
            times.append(time.monotonic() - started)
    assert times[0] < 0.15  # at once when switching to following
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(HB_MIN - 0.05 < g < HB_MAX + 0.15 for g in gaps), gaps


async def test_sse_session_bounds(s2: S2, five: str) -> None:
    cases = {
        "seq_num=0&count=3": ("2,3,30", [0, 1, 2]),
        "seq_num=3&count=100": ("4,2,20", [3, 4]),  # bounded, wait 0: ends at the tail
        "seq_num=0&bytes=25": ("1,2,20", [0, 1]),
        "seq_num=0&until=30": ("2,3,30", [0, 1, 2]),
    }
    for params, (event_id, seqs) in cases.items():
        async with session(s2, five, params, SSE) as r:
            events = Events(r)
            event = await events.next()
            assert event.startswith(f"event: batch\nid: {event_id}\ndata: "), params
            assert [rec["seq_num"] for rec in json.loads(event.split("data: ", 1)[1])["records"]] == seqs
            assert await events.next() == DONE
            assert await events.rest() == b""
    async with session(s2, five, "seq_num=0&count=0", SSE) as r:
        assert await Events(r).rest() == DONE.encode()


async def test_sse_count_across_live_batches(s2: S2, five: str) -> None:
    async with session(s2, five, "seq_num=5&count=3&wait=5", SSE) as r:
        events = Events(r)
        assert PING.fullmatch(await events.next())
        await s2.append(five, [{"timestamp": 50, "body": "a"}, {"timestamp": 50, "body": "b"}])
        assert (await next_batch(events)).startswith("event: batch\nid: 6,2,18\n")
        await s2.append(five, [{"timestamp": 60, "body": "c"}, {"timestamp": 60, "body": "d"}])
        event = await next_batch(events)
        assert event.startswith("event: batch\nid: 7,3,27\n")
        assert '"records":[{"seq_num":7,"timestamp":60,"body":"c"}]' in event
        assert await next_batch(events) == DONE
        assert await events.rest() == b""


async def test_sse_finite_wait_is_reset_by_batches(s2: S2, five: str) -> None:
    async with session(s2, five, "wait=1", SSE) as r:
        events = Events(r)
        started = time.monotonic()
        assert PING.fullmatch(await events.next())
        await asyncio.sleep(0.6)
        await s2.append(five, [{"timestamp": 50, "body": "x"}])
        assert (await next_batch(events)).startswith("event: batch\nid: 5,1,")
        assert await next_batch(events) == DONE
        ended = time.monotonic() - started
    assert 1.5 < ended < 2.2  # 1 s after the batch, not 1 s after the first heartbeat


async def test_sse_last_event_id_resumes(s2: S2, five: str) -> None:
    # count=4 less the 2 delivered leaves 2; the ids go on from the resumed totals, as s2-lite's do
    # (s2-cli 0.43.4; tests/emulator/test_against_s2_lite.py compares them).
    headers = {**SSE, "Last-Event-ID": "1,2,20"}
    async with session(s2, five, "seq_num=0&count=4", headers) as r:
        events = Events(r)
        event = await events.next()
        assert event.startswith("event: batch\nid: 3,4,40\n")
        assert '"seq_num":2' in event and '"seq_num":1' not in event
        assert await events.next() == DONE
    headers = {**SSE, "Last-Event-ID": "2,3,30"}
    async with session(s2, five, "seq_num=0", headers) as r:
        assert (await Events(r).next()).startswith("event: batch\nid: 4,5,50\n")
    async with session(s2, five, "seq_num=0", {**SSE, "Last-Event-ID": "nope"}) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_header"


async def test_sse_base64_format(s2: S2, stream: str) -> None:
    await s2.append(stream, [{"timestamp": 1, "body": "\u00ff"}])
    async with session(s2, stream, "seq_num=0&count=1", {**SSE, "s2-format": "base64"}) as r:
        assert await Events(r).next() == (
            'event: batch\nid: 0,1,10\ndata: {"records":[{"seq_num":0,"timestamp":1,"body":"w78="}]}\n\n'
        )


async def test_errors_before_a_session_are_plain_http(s2: S2, five: str) -> None:
    for headers in (SSE, S2S):
        async with session(s2, five, "seq_num=0", {**headers, "s2-basin": "no-such-basin"}) as r:
            assert r.status == 404
            assert r.content_type == "application/json"
            assert (await r.json())["code"] == "basin_not_found"
        async with session(s2, five, "seq_num=9", headers) as r:
            assert r.status == 416
            assert await r.json() == {"tail": {"seq_num": 5, "timestamp": 40}}
        async with session(s2, five, "seq_num=5&count=1", headers) as r:  # at the tail, cannot follow
            assert r.status == 416
        async with session(s2, five, "seq_num=1&until=1&timestamp=1", headers) as r:
            assert r.status == 422


async def test_sse_closed_by_hook_sends_error_event(s2: S2, five: str) -> None:
    await s2.append(five + "-other", [{"body": "other"}])
    async with session(s2, five, "", SSE) as r, session(s2, five + "-other", "", SSE) as other:
        events, other_events = Events(r), Events(other)
        assert PING.fullmatch(await events.next())
        assert PING.fullmatch(await other_events.next())
        closed = await s2.hook("POST", f"sessions/close?basin={BASIN}&stream={five}&status=503&code=server_draining")
        assert closed == {"closed": 1}
        event = await next_batch(events)
        assert event.startswith('event: error\ndata: {"code":"server_draining","message":')
        assert await events.rest() == b""
        assert PING.fullmatch(await other_events.next())  # the other stream's session goes on


async def test_s2s_session_frames(s2: S2, five: str) -> None:
    async with session(s2, five, "seq_num=0", S2S) as r:
        assert r.status == 200
        assert r.headers["content-type"] == "s2s/proto"
        frames = Frames(r)
        assert await frames.next() == FIVE_FRAME
        assert await frames.next() == HEARTBEAT_FRAME_5_40
        appended = time.monotonic()
        await s2.append(five, [{"timestamp": 50, "body": "live"}])
        frame = await frames.next()
        while frame == HEARTBEAT_FRAME_5_40:
            frame = await frames.next()
        assert time.monotonic() - appended < 0.1
        # ReadBatch{records: [{5, 50, "live"}], tail: {6, 50}}
        assert frame == b"\x00\x00\x13\x00\x0a\x0a\x08\x05\x10\x32\x22\x04live\x12\x04\x08\x06\x10\x32"
        await s2.hook("POST", f"sessions/close?stream={five}&status=503&code=server_draining&message=bye")
        frame = await frames.next()
        while frame.startswith(b"\x00\x00\x07\x00"):  # heartbeats with the new tail
            frame = await frames.next()
        body = b'{"code":"server_draining","message":"bye"}'
        assert frame == (3 + len(body)).to_bytes(3, "big") + b"\x80\x01\xf7" + body
        assert await frames.at_end()


async def test_s2s_bounded_session_ends_cleanly(s2: S2, five: str) -> None:
    async with session(s2, five, "seq_num=4&count=1", S2S) as r:
        frames = Frames(r)
        # ReadBatch{records: [{4, 40, "r4"}]} (catch-up: no tail)
        assert await frames.next() == b"\x00\x00\x0b\x00\x0a\x08\x08\x04\x10\x28\x22\x02r4"
        assert await frames.at_end()  # no terminal frame


async def test_s2s_gzip_when_accepted_and_large(s2: S2, stream: str) -> None:
    body = "x" * 2000
    await s2.append(stream, [{"timestamp": 1, "body": body}])
    # SequencedRecord{timestamp: 1, body}: 2 + 3 + 2000 = 2005 bytes (varint d5 0f); catch-up: no tail.
    payload = b"\x0a\xd5\x0f\x10\x01\x22\xd0\x0f" + body.encode()
    gz = {"Content-Type": "s2s/proto", "Accept-Encoding": "gzip, deflate"}
    async with session(s2, stream, "seq_num=0&wait=5", gz) as r:
        frames = Frames(r)
        frame = await frames.next()
        assert frame[3] == 0x40  # compression bits 10: gzip
        assert int.from_bytes(frame[:3], "big") == len(frame) - 3
        assert gzip.decompress(frame[4:]) == payload
        assert await frames.next() == b"\x00\x00\x07\x00\x12\x04\x08\x01\x10\x01"  # small: not compressed
    async with session(s2, stream, "seq_num=0&count=1", S2S) as r:
        assert await Frames(r).next() == (len(payload) + 1).to_bytes(3, "big") + b"\x00" + payload


async def test_disconnect_ends_the_session(s2: S2, five: str) -> None:
    key = f"{BASIN}/{five}"
    async with session(s2, five, "", SSE) as r:
        assert PING.fullmatch(await Events(r).next())
        stats = await s2.hook("GET", "stats")
        assert stats["open_sessions"][key] == 1
    for _ in range(50):
        if key not in (await s2.hook("GET", "stats"))["open_sessions"]:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("session still open after the client left")


async def test_stop_is_prompt_with_open_session_and_long_poll() -> None:
    emu = Emulator(EmulatorConfig(port=0, basins={BASIN: AUTO_CREATE}))
    await emu.start()
    headers = {"s2-basin": BASIN}
    async with aiohttp.ClientSession() as http:
        url = f"{emu.url}/v1/streams/s/records"
        async with http.post(url, json={"records": FIVE}, headers=headers) as r:
            assert r.status == 200
        async with http.get(f"{url}?seq_num=5", headers={**headers, **SSE}) as sse:
            events = Events(sse)
            assert PING.fullmatch(await events.next())
            poll = asyncio.create_task(http.get(f"{url}?seq_num=5&wait=30", headers=headers))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await emu.stop()
            assert time.monotonic() - started < 1.5
            event = await events.next()
            assert event.startswith('event: error\ndata: {"code":"server_draining"')
            response = await poll
            assert response.status == 503
            assert (await response.json())["code"] == "server_draining"
