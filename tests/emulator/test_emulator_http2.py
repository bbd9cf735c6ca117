"""The emulator over HTTP/2 (h2c with prior knowledge, and TLS with ALPN) on the same port as
HTTP/1.1: reads, sessions, appends, hooks, per-stream flow control, GOAWAY and RST_STREAM."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sidecar.emulator import Emulator, EmulatorConfig

from .h2client import H2Client
from .helpers import BASIN, FIVE, FIVE_FRAME, FIVE_JSON, S2, S2S, SSE, make_tls

H = {"s2-basin": BASIN}


@pytest.fixture
async def h2(emulator: Emulator) -> AsyncIterator[H2Client]:
    client = await H2Client().connect("127.0.0.1", emulator.port)
    yield client
    await client.close()


def records_path(stream: str, query: str = "") -> str:
    return f"/v1/streams/{stream}/records" + (f"?{query}" if query else "")


async def test_h2c_and_http1_share_the_port(s2: S2, h2: H2Client, stream: str) -> None:
    body = json.dumps({"records": FIVE}).encode()
    ack = await h2.fetch("POST", records_path(stream), {**H, "content-type": "application/json"}, body)
    assert ack.status == 200 and json.loads(ack.data)["end"]["seq_num"] == 5
    read = await h2.fetch("GET", records_path(stream, "seq_num=0"), H)
    assert (read.status, bytes(read.data).decode()) == (200, FIVE_JSON)
    tail = await h2.fetch("GET", records_path(stream) + "/tail", H)
    assert json.loads(tail.data)["tail"]["seq_num"] == 5
    status, got = await s2.read(stream, "seq_num=0")  # the same port over HTTP/1.1
    assert status == 200 and len(got["records"]) == 5
    missing = await h2.fetch("GET", records_path("no-such-stream/x"), H)
    assert missing.status == 404
    stats = await h2.fetch("GET", "/_emulator/stats")
    assert json.loads(stats.data)["requests"][f"{BASIN}/{stream}"]["append"] == 1


async def test_protobuf_sse_and_s2s_over_h2(h2: H2Client, five: str) -> None:
    proto = await h2.fetch("GET", records_path(five, "seq_num=0"), {**H, "accept": "application/protobuf"})
    assert proto.status == 200 and proto.headers["content-type"] == "application/protobuf"
    s2s = await h2.fetch("GET", records_path(five, "seq_num=0&count=5"), {**H, **S2S})
    assert bytes(s2s.data) == FIVE_FRAME
    sse = await h2.fetch("GET", records_path(five, "seq_num=0&count=5"), {**H, **SSE})
    assert b"event: batch" in sse.data and sse.data.endswith(b"data: [DONE]\n\n")


async def test_live_s2s_session_gets_heartbeats_and_appends_over_h2(h2: H2Client, five: str) -> None:
    s = h2.request("GET", records_path(five, "seq_num=5"), {**H, **S2S})
    await h2.wait(s, lambda s: len(s.data) >= 4)  # the heartbeat on switching to live
    h2.request(
        "POST",
        records_path(five),
        {**H, "content-type": "application/json"},
        json.dumps({"records": [{"body": "live"}]}).encode(),
    )
    await h2.wait(s, lambda s: b"live" in s.data)
    assert b"live" in s.data and not s.ended


async def test_append_session_over_h2(h2: H2Client, stream: str) -> None:
    # s2s frames of AppendInput{records: [AppendRecord{body}]}: field 1 (records), AppendRecord field 3 (body).
    def frame(body: bytes) -> bytes:
        record = b"\x1a" + bytes([len(body)]) + body
        msg = b"\x0a" + bytes([len(record)]) + record
        return (len(msg) + 1).to_bytes(3, "big") + b"\x00" + msg

    s = h2.request("POST", records_path(stream), {**H, "content-type": "s2s/proto"}, end=False)
    h2.send(s, frame(b"a"))
    await h2.wait(s, lambda s: len(s.data) > 4)
    h2.send(s, frame(b"b"), end=True)
    await h2.finish(s)
    assert s.status == 200 and s.reset_code is None
    read = await h2.fetch("GET", records_path(stream, "seq_num=0"), H)
    assert [r["body"] for r in json.loads(read.data)["records"]] == ["a", "b"]


async def test_sessions_multiplex_with_their_own_flow_control(s2: S2, emulator: Emulator, stream: str) -> None:
    """One client stops reading its session; 20 others on the same connection still get everything."""
    for _ in range(8):  # 8 x 100 x 1 KiB = 800 KiB, far beyond one stream window (64 KiB)
        await s2.append(stream, [{"body": "x" * 1024}] * 100)
    h2 = await H2Client(window=65535).connect("127.0.0.1", emulator.port)
    try:
        stalled = h2.request("GET", records_path(stream, "seq_num=0&count=800"), {**H, **S2S})
        stalled.paused = True
        await h2.wait(stalled, lambda s: len(s.data) >= 65535 - 2048)
        others = [h2.request("GET", records_path(stream, "seq_num=0&count=800"), {**H, **S2S}) for _ in range(20)]
        for other in others:
            await h2.finish(other, timeout=30)
            assert other.ended and other.reset_code is None and len(other.data) > 800 * 1024
        assert not stalled.ended and len(stalled.data) <= 65535
        conns = (await s2.hook("GET", "http2/connections"))["connections"]
        assert [c["open_streams"] for c in conns] == [1]  # the stalled one, waiting for its window
        h2.resume(stalled)
        await h2.finish(stalled, timeout=30)
        assert stalled.ended and len(stalled.data) == len(others[0].data)
    finally:
        await h2.close()


async def test_goaway_graceful_lets_in_flight_streams_finish(s2: S2, emulator: Emulator, five: str) -> None:
    h2 = await H2Client().connect("127.0.0.1", emulator.port)
    try:
        session = h2.request("GET", records_path(five, "seq_num=5&count=1&wait=10"), {**H, **S2S})
        await h2.wait(session, lambda s: len(s.data) >= 4)  # following live
        assert (await s2.hook("POST", "http2/goaway")) == {"connections": 1}
        await asyncio.wait_for(h2.goaway_seen.wait(), 5)
        assert h2.goaway is not None and (h2.goaway.last_stream_id, h2.goaway.error_code) == (session.id, 0)
        await s2.append(five, [{"body": "after-goaway"}])
        await h2.finish(session)
        assert session.ended and b"after-goaway" in session.data
        await asyncio.wait_for(h2.closed.wait(), 5)  # closed once its last stream ended
    finally:
        await h2.close()


async def test_goaway_refuses_streams_above_its_last_stream_id(s2: S2, emulator: Emulator, five: str) -> None:
    h2 = await H2Client().connect("127.0.0.1", emulator.port)
    try:
        kept = h2.request("GET", records_path(five, "seq_num=5&count=1&wait=10"), {**H, **S2S})
        refused = h2.request("GET", records_path(five, "seq_num=5&count=1&wait=10"), {**H, **S2S})
        await h2.wait(refused, lambda s: len(s.data) >= 4)
        await s2.hook("POST", f"http2/goaway?last_stream_id={kept.id}")
        await h2.finish(refused)
        assert refused.reset_code == 7  # REFUSED_STREAM: never processed, safe to retry elsewhere
        await s2.append(five, [{"body": "after-goaway"}])
        await h2.finish(kept)
        assert kept.ended and b"after-goaway" in kept.data
    finally:
        await h2.close()


async def test_goaway_with_an_error_ends_every_stream(s2: S2, emulator: Emulator, five: str) -> None:
    h2 = await H2Client().connect("127.0.0.1", emulator.port)
    try:
        session = h2.request("GET", records_path(five, "seq_num=5"), {**H, **S2S})
        await h2.wait(session, lambda s: len(s.data) >= 4)
        assert (await s2.hook("POST", "http2/goaway?error_code=ENHANCE_YOUR_CALM"))["connections"] == 1
        await asyncio.wait_for(h2.closed.wait(), 5)
        assert h2.goaway is not None and h2.goaway.error_code == 0xB
        assert not session.ended
        async with asyncio.timeout(5):
            while (await s2.hook("GET", "stats"))["open_sessions_total"]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await h2.close()
    async with s2.http.post(s2.url + "/_emulator/http2/goaway?error_code=BOGUS") as r:
        assert r.status == 400


async def test_rst_stream_fault_resets_one_stream_only(s2: S2, h2: H2Client, five: str) -> None:
    other = h2.request("GET", records_path(five, "seq_num=5"), {**H, **S2S})
    await h2.wait(other, lambda s: len(s.data) >= 4)
    await s2.hook(
        "POST", "faults", {"kind": "session", "stream": five, "rst_stream": True, "error_code": "REFUSED_STREAM"}
    )
    refused = await h2.fetch("GET", records_path(five, "seq_num=0"), {**H, **S2S})
    assert refused.reset_code == 7 and refused.status is None
    await s2.hook("POST", "faults", {"kind": "session", "stream": five, "cut_after_bytes": 10})
    cut = await h2.fetch("GET", records_path(five, "seq_num=0&count=5"), {**H, **S2S})
    assert cut.status == 200 and cut.reset_code == 2 and bytes(cut.data) == FIVE_FRAME[:10]  # INTERNAL_ERROR
    await s2.hook(
        "POST", "faults", {"kind": "read", "stream": five, "rst_stream": True, "after_bytes": 3, "error_code": 8}
    )
    cancel = await h2.fetch("GET", records_path(five, "seq_num=0"), H)
    assert cancel.reset_code == 8 and len(cancel.data) == 3
    await s2.append(five, [{"body": "still-here"}])  # the connection and its other stream go on
    await h2.wait(other, lambda s: b"still-here" in s.data)
    assert b"still-here" in other.data and other.reset_code is None
    async with s2.http.post(s2.url + "/_emulator/faults", json={"rst_stream": True, "error_code": "NOPE"}) as r:
        assert r.status == 400


async def test_rst_stream_fault_over_http1_aborts_the_connection(s2: S2, five: str) -> None:
    await s2.hook("POST", "faults", {"kind": "append", "stream": five, "rst_stream": True})
    # A POST: aiohttp silently retries a GET whose connection was closed before any answer.
    with pytest.raises(aiohttp.ClientError):
        await s2.append(five, [{"body": "lost"}])
    status, got = await s2.read(five, "seq_num=0")
    assert status == 200 and len(got["records"]) == 5  # refused before the append ran


async def test_tls_offers_h2_and_http1_by_alpn(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    config = EmulatorConfig(port=0, basins={BASIN: None}, tls_cert=tls.cert, tls_key=tls.key)
    async with Emulator(config) as emu:
        assert emu.url.startswith("https://")
        h2 = await H2Client().connect("127.0.0.1", emu.port, tls.client_context(["h2", "http/1.1"]))
        try:
            assert h2.alpn == "h2"
            made = await h2.fetch("PUT", "/v1/streams/tls-stream", H)
            assert made.status == 201
        finally:
            await h2.close()
        async with (
            aiohttp.ClientSession() as http,  # aiohttp offers http/1.1 only
            http.get(f"{emu.url}/v1/streams/tls-stream/records/tail", headers=H, ssl=tls.client_context()) as r,
        ):
            assert r.status == 200 and r.version == aiohttp.HttpVersion11


async def test_a_client_reset_ends_its_session_only(s2: S2, h2: H2Client, five: str) -> None:
    gone = h2.request("GET", records_path(five, "seq_num=5"), {**H, **S2S})
    kept = h2.request("GET", records_path(five, "seq_num=5"), {**H, **S2S})
    await h2.wait(kept, lambda s: len(s.data) >= 4)
    await h2.wait(gone, lambda s: len(s.data) >= 4)
    assert (await s2.hook("GET", "stats"))["open_sessions"][f"{BASIN}/{five}"] == 2
    h2.cancel(gone)  # RST_STREAM CANCEL
    async with asyncio.timeout(5):
        while (await s2.hook("GET", "stats"))["open_sessions"].get(f"{BASIN}/{five}") != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    await s2.append(five, [{"body": "for-kept"}])
    await h2.wait(kept, lambda s: b"for-kept" in s.data)
    assert b"for-kept" in kept.data


async def test_a_broken_http2_client_gets_goaway_and_the_emulator_goes_on(s2: S2, emulator: Emulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    # The preface, then a DATA frame on stream 0 (a connection error: PROTOCOL_ERROR).
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    writer.write(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    got = await asyncio.wait_for(reader.read(), 5)  # the server's SETTINGS ... GOAWAY, then EOF
    writer.close()
    goaway = got.find(b"\x07\x00\x00\x00\x00\x00")  # type GOAWAY, flags 0, stream 0
    assert goaway > 0 and int.from_bytes(got[goaway + 10 : goaway + 14], "big") == 1  # PROTOCOL_ERROR
    assert (await s2.hook("GET", "stats"))["requests_total"] >= 0  # still serving


async def test_max_concurrent_streams_is_advertised() -> None:
    async with Emulator(EmulatorConfig(port=0, basins={BASIN: None}, h2_max_concurrent_streams=2)) as emu:
        h2 = await H2Client().connect("127.0.0.1", emu.port)
        try:
            assert (await h2.fetch("GET", "/_emulator/stats")).status == 200
            assert h2.conn.remote_settings.max_concurrent_streams == 2
        finally:
            await h2.close()
