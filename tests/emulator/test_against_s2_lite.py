"""Differential test: the same requests to the emulator and to S2's own open-source server
(s2-lite, `s2 lite --port P`), and the answers compared; and the sidecar reading s2-lite over
HTTP/1.1 and HTTP/2.

s2-lite is the reference where the emulator's behaviour is in doubt. `scripts/install-s2-lite` builds
it (crate s2-lite 0.43.4, ~20 minutes on 2 cores, then cached); `scripts/test-s2-lite` runs this module
inside a loopback-only network namespace, as s2-lite listens on 0.0.0.0. Without s2-lite, or outside
such a namespace, every test here fails with one line saying what to do: deselect the module
(`--ignore`) to run without it, never a silent skip.

What is compared: status codes, record fields, tails, and the S2 error `code` (messages differ in
wording). Server-assigned values (arrival timestamps, created_at) are left out.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import json
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import pytest
import zstandard

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.config import Config
from sidecar.emulator import Emulator, EmulatorConfig
from sidecar.server import Sidecar
from sidecar.upstream import UpstreamProtocol
from tests.s2_lite import S2Lite

from .helpers import S2


@pytest.fixture(scope="module")
def s2_lite_url() -> Iterator[str]:
    try:
        lite = S2Lite().__enter__()
    except RuntimeError as e:
        why = str(e)  # failed outside the except block: one line, not a chained traceback
    else:
        with lite:
            yield lite.url
        return
    pytest.fail(why, pytrace=False)


async def _new_basin(http: aiohttp.ClientSession, url: str, name: str) -> S2:
    async with http.post(f"{url}/v1/basins", json={"basin": name}) as r:
        assert r.status == 201, await r.text()
    return S2(http, url, name)


async def _call(s2: S2, method: str, stream: str, suffix: str, body: Any = None) -> tuple[int, Any]:
    headers = s2.headers({"s2-format": "base64"})
    async with s2.http.request(method, s2.path(stream, suffix), json=body, headers=headers) as r:
        text = await r.text()
        return r.status, _normalise(json.loads(text) if text else None)


def _normalise(body: Any) -> Any:
    """Drop what the server makes up (arrival times, creation times) and error wording."""
    if isinstance(body, dict):
        if "code" in body and "message" in body:
            return {"code": body["code"]}
        # null fields (e.g. a plain stream's `cipher`) say nothing
        return {k: _normalise(v) for k, v in body.items() if k not in ("created_at", "message") and v is not None}
    if isinstance(body, list):
        return [_normalise(v) for v in body]
    return body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _record(body: str, timestamp: int) -> dict[str, Any]:
    return {"body": _b64(body.encode()), "timestamp": timestamp}


def _trim(seq_num: int, width: int = 8) -> dict[str, Any]:
    # A client timestamp, so that both servers keep the same one (arrival times differ).
    return {"headers": [["", _b64(b"trim")]], "body": _b64(struct.pack(">Q", seq_num)[8 - width :]), "timestamp": 45}


# Each step: (method, suffix, JSON body). The same steps run against both servers, in order.
STREAM_STEPS: list[tuple[str, str, Any]] = [
    ("GET", "/records?seq_num=0", None),  # not created yet: 404 stream_not_found
    ("GET", "/records/tail", None),
    ("PUT", "", {}),  # ensure (S2 wants a JSON body or none; aiohttp sends an empty one S2 refuses)
    ("GET", "/records/tail", None),  # never written: 0, 0
    ("GET", "/records?timestamp=0", None),  # empty stream, timestamp start, no wait
    ("GET", "/records?timestamp=0&wait=1", None),
    ("GET", "/records?seq_num=0", None),  # at the tail, cannot wait: 416
    ("POST", "/records", {"records": [_record(f"r{i}", ts) for i, ts in enumerate((10, 20, 20, 30, 40))]}),
    ("GET", "/records?seq_num=0", None),  # catch-up: no tail
    ("GET", "/records?seq_num=2&count=2", None),
    ("GET", "/records?tail_offset=2", None),
    ("GET", "/records?tail_offset=18446744073709551615", None),
    ("GET", "/records?timestamp=20", None),
    ("GET", "/records?timestamp=25", None),
    ("GET", "/records?timestamp=40", None),
    ("GET", "/records?timestamp=41", None),  # past the last timestamp: 416
    ("GET", "/records?seq_num=0&until=30", None),
    ("GET", "/records?seq_num=0&bytes=25", None),
    ("GET", "/records?seq_num=0&bytes=5", None),  # the first record does not fit
    ("GET", "/records?seq_num=0&count=0", None),
    ("GET", "/records?seq_num=5", None),  # exactly the tail: 416
    ("GET", "/records?seq_num=9", None),
    ("GET", "/records?seq_num=9&clamp=true", None),  # clamped to the tail, still cannot wait: 416
    ("GET", "/records?seq_num=9&clamp=true&wait=1", None),
    ("GET", "/records?seq_num=1&timestamp=1", None),  # two starts: 422
    ("GET", "/records?timestamp=30&until=30", None),
    ("GET", "/records?seq_num=0&seq_num=1", None),  # a repeated field: 400 bad_query
    ("GET", "/records?seq_num=1&x=1&x=2", None),  # a parameter S2 does not know may repeat
    ("POST", "/records", {"records": [_trim(2, width=4)]}),  # a trim body must be 8 bytes: 422
    ("POST", "/records", {"records": [_trim(2)]}),
    # Starts at the first remaining record. S2 trims eventually (records may stay visible briefly,
    # its trim runs as a background task); the emulator at once: `EVENTUALLY` waits for s2-lite to agree.
    ("EVENTUALLY GET", "/records?seq_num=0", None),
    ("GET", "/records/tail", None),
    ("POST", "/records", {"records": [_record("x", 50)], "fencing_token": "f" * 37}),  # over 36 bytes
    ("POST", "/records", {"records": [_record("x", 50)], "match_seq_num": 3}),  # 412 with the tail
    ("POST", "/records", {"records": [_record("x", 2**64)]}),  # past a u64: 400 bad_json
    ("POST", "/records", {"records": [_record("x", 50)], "match_seq_num": 2**64}),
    ("GET", f"/records?timestamp={2**64}", None),  # 400 bad_query
    # An exhausted limit is 200 empty wherever the read starts, clamp or not.
    ("GET", "/records?seq_num=6&count=0", None),
    ("GET", "/records?seq_num=99&count=0", None),
    ("GET", "/records?seq_num=99&bytes=0", None),
    ("GET", "/records?timestamp=999&count=0", None),
    ("POST", "/records", {"records": [_trim(99)]}),  # trims through itself: nothing remains
    # A timestamp finds no record left: the tail, 416 for a read that cannot wait.
    ("EVENTUALLY GET", "/records?timestamp=0", None),
    ("GET", "/records?seq_num=0", None),  # 200 empty
]


async def test_the_emulator_answers_as_s2_lite_does(s2_lite_url: str, emulator: Emulator) -> None:
    """Every step above answers the same on both servers (statuses, records, tails, error codes)."""
    basin = f"diff-{uuid.uuid4().hex[:10]}"
    stream = "diff-stream"
    async with aiohttp.ClientSession() as http:
        reference = await _new_basin(http, s2_lite_url, basin)
        ours = await _new_basin(http, emulator.url, basin)
        for step, suffix, body in STREAM_STEPS:
            eventually, _, method = step.rpartition(" ")
            got = await _call(ours, method, stream, suffix, body)
            expected = await _call(reference, method, stream, suffix, body)
            for _ in range(50 if eventually else 0):
                if got == expected:
                    break
                await asyncio.sleep(0.1)
                expected = await _call(reference, method, stream, suffix, body)
            assert got == expected, f"{method} {suffix} {body!r:.80}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


async def test_u64_timestamps_answer_as_s2_lite_does(s2_lite_url: str, emulator: Emulator) -> None:
    """An uncapped stream keeps client timestamps up to 2^64-1, in JSON and protobuf; a protobuf
    varint past 2^64-1 is 400 bad_proto; reads start by such timestamps."""
    basin = f"u64-{uuid.uuid4().hex[:10]}"
    stream = "u64-stream"

    async def steps(s2: S2) -> list[Any]:
        out: list[Any] = [await _call(s2, "PUT", stream, "", {"timestamping": {"uncapped": True}})]
        out.append(
            await _call(s2, "POST", stream, "/records", {"records": [_record("a", 2**63 - 1), _record("b", 2**63)]})
        )
        for ts in (2**64 - 1, 2**64, 2**70):
            record = b"\x08" + _varint(ts) + b"\x1a\x01x"
            headers = s2.headers({"content-type": "application/protobuf"})
            data = b"\x0a" + _varint(len(record)) + record
            async with s2.http.post(s2.path(stream, "/records"), data=data, headers=headers) as r:
                out.append((r.status, _normalise(await r.json())))
        for query in ("seq_num=0", f"timestamp={2**63}", f"timestamp={2**64 - 1}", f"timestamp={2**64}"):
            out.append(await _call(s2, "GET", stream, f"/records?{query}"))
        return out

    async with aiohttp.ClientSession() as http:
        expected = await steps(await _new_basin(http, s2_lite_url, basin))
        assert await steps(await _new_basin(http, emulator.url, basin)) == expected


async def test_request_body_limit_as_s2_lite(s2_lite_url: str, emulator: Emulator) -> None:
    """Bodies up to 2 MiB are taken, larger ones refused with the body kind's code."""
    basin = f"big-{uuid.uuid4().hex[:10]}"
    limit, frame = 2 * 1024 * 1024, b'{"records":[{"body":""}]}'

    async def steps(s2: S2) -> list[Any]:
        out = []
        for size, content_type in ((limit, "json"), (limit + 1, "json"), (limit + 1, "protobuf")):
            data = frame[:-4] + b"a" * (size - len(frame)) + frame[-4:] if content_type == "json" else b"\0" * size
            headers = s2.headers({"content-type": f"application/{content_type}"})
            async with s2.http.post(s2.path("s", "/records"), data=data, headers=headers) as r:
                out.append((r.status, _normalise(await r.json())))
        return out

    async with aiohttp.ClientSession() as http:
        expected = await steps(await _new_basin(http, s2_lite_url, basin))
        assert await steps(await _new_basin(http, emulator.url, basin)) == expected


async def test_unknown_basin_answers_as_s2_lite_does(s2_lite_url: str, emulator: Emulator) -> None:
    async with aiohttp.ClientSession() as http:
        for url in (s2_lite_url, emulator.url):
            nowhere = S2(http, url, f"nowhere-{uuid.uuid4().hex[:8]}")
            assert await _call(nowhere, "GET", "s", "/records?seq_num=0") == (404, {"code": "basin_not_found"})


async def _sse_events(s2: S2, stream: str, params: str, last_event_id: str | None = None) -> list[tuple[str, str, Any]]:
    """A bounded SSE session, as (event, id, normalised data) triples (pings keep only the tail)."""
    headers = s2.headers({"accept": "text/event-stream", "s2-format": "base64"})
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    async with s2.http.get(s2.path(stream, f"/records?{params}"), headers=headers) as r:
        assert r.status == 200, await r.text()
        text = (await r.read()).decode()
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if not fields:
            continue
        data = fields.get("data", "")
        parsed = data if data == "[DONE]" else json.loads(data)
        if fields.get("event") == "ping":
            parsed = {"tail": parsed["tail"]}
            if events and events[-1][0] == "ping":
                continue  # heartbeat gaps differ (the test emulator's are short): one stands for many
        events.append((fields.get("event", ""), fields.get("id", ""), _normalise(parsed)))
    return events


@pytest.mark.parametrize(
    ("params", "last_event_id"),
    [
        ("seq_num=0&count=3", None),
        ("seq_num=1&bytes=25", None),
        ("seq_num=0&count=5", "1,2,20"),  # resumed: S2 does the arithmetic
        ("tail_offset=1&wait=1", None),  # catches up, heartbeat, waits 1 s, ends
    ],
)
async def test_sse_sessions_answer_as_s2_lite_does(
    s2_lite_url: str, emulator: Emulator, params: str, last_event_id: str | None
) -> None:
    basin = f"sse-{uuid.uuid4().hex[:10]}"
    async with aiohttp.ClientSession() as http:
        answers = []
        for url in (s2_lite_url, emulator.url):
            s2 = await _new_basin(http, url, basin)
            await _call(s2, "PUT", "s", "", {})
            await _call(s2, "POST", "s", "/records", {"records": [_record(f"r{i}", 10 * (i + 1)) for i in range(5)]})
            answers.append(await _sse_events(s2, "s", params, last_event_id))
        assert answers[1] == answers[0]


@pytest.mark.parametrize("protocol", ["http1", "http2"])
async def test_the_sidecar_reads_s2_lite(s2_lite_url: str, protocol: str) -> None:
    """The sidecar against S2's own server, over HTTP/1.1 and over HTTP/2 (h2c): one-shot reads,
    bounded and live sessions (a heartbeat on following, then records appended live), the tail,
    and S2's errors as gRPC statuses."""
    basin = f"side-{uuid.uuid4().hex[:10]}"
    async with aiohttp.ClientSession() as http:
        s2 = await _new_basin(http, s2_lite_url, basin)
        await _call(s2, "PUT", "s", "", {})
        await _call(s2, "POST", "s", "/records", {"records": [_record(f"r{i}", 10 * (i + 1)) for i in range(5)]})
        config = Config(
            listen=("127.0.0.1:0",), basin_endpoint=s2_lite_url + "/v1", admin_listen=None, default_basin=basin
        )
        sidecar = Sidecar(dataclasses.replace(config, upstream_protocol=UpstreamProtocol(protocol)))
        await sidecar.start()
        channel = grpc.aio.insecure_channel(sidecar.addresses[0])
        stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            batch = await stub.Read(pb.ReadRequest(stream="s", seq_num=1, count=3), timeout=10)
            assert [(r.seq_num, r.timestamp, r.body) for r in batch.records] == [
                (1, 20, b"r1"),
                (2, 30, b"r2"),
                (3, 40, b"r3"),
            ]
            assert not batch.HasField("tail")  # a catch-up batch: S2 sends no tail
            tail = await stub.CheckTail(pb.CheckTailRequest(stream="s", max_staleness_ms=0), timeout=10)
            assert (tail.tail.seq_num, tail.tail.timestamp) == (5, 50)
            bounded = [
                r.seq_num
                async for m in stub.ReadSession(pb.ReadSessionRequest(stream="s", tail_offset=4, count=4), timeout=10)
                for r in m.records
            ]
            assert bounded == [1, 2, 3, 4]
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.Read(pb.ReadRequest(stream="nope", seq_num=0), timeout=10)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as past:
                await stub.Read(pb.ReadRequest(stream="s", seq_num=9), timeout=10)
            assert past.value.code() == grpc.StatusCode.OUT_OF_RANGE
            live = stub.ReadSession(pb.ReadSessionRequest(stream="s"), timeout=30)  # follows from the tail
            first = await asyncio.wait_for(anext(aiter(live)), 10)
            assert not first.records and first.tail.seq_num == 5  # a heartbeat as soon as it follows
            await _call(s2, "POST", "s", "/records", {"records": [_record("live", 60)]})
            msg = await asyncio.wait_for(anext(aiter(live)), 10)
            while not msg.records:
                msg = await asyncio.wait_for(anext(aiter(live)), 10)
            assert [(r.seq_num, r.body) for r in msg.records] == [(5, b"live")]
            live.cancel()
        finally:
            await channel.close(None)
            await sidecar.stop(grace=0.2)


# Creation bodies (S2: api/src/data.rs `Json` / `JsonOpt`, api/src/mime.rs `is_json`): each
# (method, path, content type or None, raw body), sent to both servers as they are.
CREATION_BODIES: list[tuple[str, str, str | None, bytes]] = [
    ("PUT", "/v1/streams/{s}-a", None, b""),  # no body at all: S2's defaults
    ("PUT", "/v1/streams/{s}-b", "application/octet-stream", b""),  # aiohttp's empty body: 400 bad_json
    ("PUT", "/v1/streams/{s}-c", "application/json", b""),
    ("PUT", "/v1/streams/{s}-d", "application/json", b"{}"),
    ("PUT", "/v1/streams/{s}-e", None, b"not json"),  # no content type: the body is not looked at
    ("PUT", "/v1/streams/{s}-f", "text/plain", b"{}"),
    ("PUT", "/v1/streams/{s}-g", "application/json", b"nope"),
    ("PUT", "/v1/streams/{s}-h", "application/json", b"[]"),
    ("PUT", "/v1/streams/{s}-i", "application/json", b"null"),
    ("PUT", "/v1/streams/{s}-j", "application/vnd.example+json", b'{"unknown_field": 1}'),
    ("PUT", "/v1/streams/{s}-d", "application/json", b'{"retention_policy": {"age": 7}}'),  # reconfigures: 200
    ("POST", "/v1/streams", None, b'{"stream": "{s}-k"}'),
    ("POST", "/v1/streams", "application/json", b""),
    ("POST", "/v1/streams", "application/json", b"{}"),
    ("POST", "/v1/streams", "application/json", b'{"stream": ""}'),
    ("POST", "/v1/streams", "application/json", b'{"stream": "{s}-k"}'),
    ("POST", "/v1/streams", "application/json", b'{"stream": "{s}-k"}'),  # 409 resource_already_exists
    ("POST", "/v1/basins", None, b'{"basin": "{s}-basin"}'),
    ("POST", "/v1/basins", "application/json", b"{}"),
    ("POST", "/v1/basins", "application/json", b'{"basin": "short"}'),
    ("PUT", "/v1/basins/{s}-basin-a", None, b""),
    ("PUT", "/v1/basins/{s}-basin-b", "application/octet-stream", b""),
    ("PUT", "/v1/basins/{s}-basin-c", "application/json", b"[]"),
    ("PUT", "/v1/basins/{s}-basin-a", "application/json", b'{"config": {"create_stream_on_append": true}}'),
]


async def _raw(s2: S2, method: str, path: str, content_type: str | None, body: bytes) -> tuple[int, Any]:
    headers = s2.headers({"content-type": content_type} if content_type else None)
    async with s2.http.request(
        method, s2.url + path, data=body, headers=headers, skip_auto_headers=("Content-Type",)
    ) as r:
        text = await r.text()
        return r.status, _normalise(json.loads(text) if text else None)


async def test_creation_bodies_are_taken_as_s2_lite_takes_them(s2_lite_url: str, emulator: Emulator) -> None:
    tag = f"cb{uuid.uuid4().hex[:8]}"
    async with aiohttp.ClientSession() as http:
        answers = []
        for url in (s2_lite_url, emulator.url):
            s2 = await _new_basin(http, url, f"{tag}-basin")
            steps = []
            for method, path, content_type, body in CREATION_BODIES:
                path, body = path.replace("{s}", tag), body.replace(b"{s}", tag.encode())
                steps.append((method, path, content_type, await _raw(s2, method, path, content_type, body)))
            async with http.get(f"{url}/v1/streams/{tag}-d", headers=s2.headers()) as r:
                steps.append(("GET", "config", None, (r.status, await r.json())))  # the PUT reconfigured it
            answers.append(steps)
        for ours, reference in zip(answers[1], answers[0], strict=True):
            assert ours == reference


async def test_a_deleted_stream_answers_as_s2_lite_does(s2_lite_url: str) -> None:
    """DELETE, then during the deletion (s2-lite: ~20 ms; here an emulator whose window is 1 s, so
    every request lands in it) and after. s2-lite ends a deletion so fast that a request may land
    before or after its end: its answer must be one of the two S2's source allows
    (lite/src/backend/streams.rs, core.rs `start_streamer`), the emulator's the one inside."""
    basin = f"del-{uuid.uuid4().hex[:10]}"
    pending, not_found = (409, "stream_deletion_pending"), (404, "stream_not_found")
    # (method, suffix, body, the answer inside the window, the answer once the deletion ended)
    window: list[tuple[str, str, Any, tuple[int, str | None], tuple[int, str | None]]] = [
        ("GET", "", None, pending, not_found),  # config
        ("GET", "/records?seq_num=0", None, pending, not_found),
        ("GET", "/records/tail", None, pending, not_found),
        ("POST", "/records", {"records": [_record("x", 1)]}, pending, not_found),
        ("DELETE", "", None, (202, None), not_found),  # again
        ("PUT", "", {}, pending, (201, None)),  # re-created only once the deletion ended
    ]
    async with aiohttp.ClientSession() as http, Emulator(EmulatorConfig(port=0, deletion_delay=1.0)) as emu:
        for url in (s2_lite_url, emu.url):
            s2 = await _new_basin(http, url, basin)
            ours = url == emu.url
            assert (await _call(s2, "PUT", "s", "", {}))[0] == 201
            assert (await _call(s2, "POST", "s", "/records", {"records": [_record("r", 10)]}))[0] == 200
            assert await _call(s2, "DELETE", "s", "") == (202, None)
            async with http.get(f"{url}/v1/streams?prefix=s", headers=s2.headers()) as r:
                listed = [x["deleted_at"] is not None for x in (await r.json())["streams"]]
            # Listed with `deleted_at` while the deletion runs, then not at all.
            assert listed == [True] if ours else listed in ([True], []), (url, listed)
            got: tuple[int, str | None] = (0, None)
            for method, suffix, body, inside, after in window:
                status, answer = await _call(s2, method, "s", suffix, body)
                got = (status, answer.get("code") if isinstance(answer, dict) else None)
                assert got == inside if ours else got in (inside, after), (url, method, suffix, got)
            recreated = got[0] == 201
            for _ in range(100):  # after: wait for the deletion to end, as S2's clients must
                status, answer = await _call(s2, "PUT", "s", "", {})
                if status != 409:
                    break
                await asyncio.sleep(0.05)
            assert status == (200 if recreated else 201), (url, status, answer)
            assert await _call(s2, "GET", "s", "/records/tail") == (200, {"tail": {"seq_num": 0, "timestamp": 0}})


# Encryption (S2: docs/adr/csek.md, common/src/encryption.rs). Each step: (method, stream, suffix,
# JSON body, s2-encryption-key, extra headers); the same steps in a basin whose stream_cipher is
# aegis-256, on both servers, in order. Error messages are compared too for the key's errors: the
# emulator says S2's words.
KEY = _b64(bytes(range(1, 33)))
OTHER_KEY = _b64(bytes([9] * 32))
ZERO_KEY = _b64(bytes(32))
SECRET = {"headers": [[_b64(b"h"), _b64(b"hv")]], "body": _b64(b"top-secret-body"), "timestamp": 10}
FENCE = {"headers": [["", _b64(b"fence")]], "body": _b64(b"tok"), "timestamp": 20}
PROTOBUF = {"Accept": "application/protobuf"}
ENCRYPTION_STEPS: list[tuple[str, str, str, Any, str | None, dict[str, str]]] = [
    ("POST", "", "", {"stream": "s"}, None, {}),  # created with the basin's cipher
    ("POST", "", "", {"stream": "t", "config": {"cipher": "aes-256-gcm"}}, None, {}),  # ignored
    ("GET", "t", "", None, None, {}),  # its config: no cipher in it
    ("GET", "", "?prefix=", None, None, {}),  # listed with their cipher
    ("POST", "s", "/records", {"records": [SECRET]}, None, {}),  # no key
    ("POST", "s", "/records", {"records": [SECRET]}, KEY, {}),
    ("POST", "s", "/records", {"records": [SECRET]}, OTHER_KEY, {}),  # another key appends too
    ("POST", "s", "/records", {"records": [SECRET]}, "!!!!", {}),
    ("POST", "s", "/records", {"records": [SECRET]}, KEY.rstrip("="), {}),
    ("POST", "s", "/records", {"records": [SECRET]}, _b64(b"abcd"), {}),
    ("POST", "s", "/records", {"records": [SECRET]}, _b64(b"a" * 33), {}),
    ("POST", "s", "/records", {"records": [SECRET]}, "A" * 45, {}),
    ("POST", "s", "/records", {"records": [SECRET]}, " ", {}),
    ("POST", "s", "/records", {"records": []}, None, {}),  # the batch before the key: 422
    ("POST", "s", "/records", {"records": [SECRET], "match_seq_num": 9}, None, {}),  # the key before 412
    ("GET", "s", "/records?seq_num=0", None, None, {}),
    ("GET", "s", "/records?seq_num=0&count=1", None, KEY, {}),
    ("GET", "s", "/records?seq_num=0", None, KEY, {}),  # record 1 was sealed with another key
    ("GET", "s", "/records?seq_num=0", None, OTHER_KEY, PROTOBUF),
    ("GET", "s", "/records?seq_num=1", None, OTHER_KEY, {}),
    ("GET", "s", "/records?seq_num=0", None, "!!!!", {}),
    ("GET", "s", "/records?seq_num=0", None, "A" * 45, {}),
    ("GET", "s", "/records?seq_num=99", None, None, {}),  # the key before the 416
    ("GET", "s", "/records?seq_num=0&bytes=28", None, KEY, {}),  # 28: the plaintext's metered size
    ("GET", "s", "/records?seq_num=0&bytes=27", None, KEY, {}),
    ("GET", "s", "/records/tail", None, None, {}),
    ("GET", "s", "/records/tail", None, "A" * 45, {}),
    ("POST", "s", "/records", {"records": [FENCE]}, OTHER_KEY, {}),
    ("GET", "s", "/records?seq_num=2", None, ZERO_KEY, {}),  # a command alone: any key opens it
    ("GET", "s", "/records?seq_num=2", None, None, {}),  # but not none
    ("GET", "s", "/records?seq_num=0&count=1", None, None, {"Accept": "text/event-stream"}),
    ("GET", "s", "/records?seq_num=0&count=1", None, None, {"Content-Type": "s2s/proto"}),
]


async def _encryption_step(
    s2: S2, method: str, stream: str, suffix: str, body: Any, key: str | None, extra: dict[str, str]
) -> tuple[int, Any]:
    headers = s2.headers({"s2-format": "base64", **extra})
    if key is not None:
        headers["s2-encryption-key"] = key
    url = f"{s2.url}/v1/streams{suffix}" if not stream else s2.path(stream, suffix)
    async with s2.http.request(method, url, json=body, headers=headers) as r:
        raw = await r.read()
    if r.headers.get("Content-Type", "").startswith("application/json"):
        answer = json.loads(raw)
        if isinstance(answer, dict) and answer.get("code") in ("bad_header", "decryption_failed"):
            return r.status, answer  # the message too
        return r.status, _normalise(answer)
    return r.status, raw


async def test_encrypted_streams_answer_as_s2_lite_does(s2_lite_url: str, emulator: Emulator) -> None:
    basin = f"enc-{uuid.uuid4().hex[:10]}"
    async with aiohttp.ClientSession() as http:
        answers = []
        for url in (s2_lite_url, emulator.url):
            async with http.post(
                f"{url}/v1/basins", json={"basin": basin, "config": {"stream_cipher": "aegis-256"}}
            ) as r:
                assert r.status == 201, await r.text()
            s2 = S2(http, url, basin)
            steps: list[Any] = []
            async with http.get(f"{url}/v1/basins/{basin}") as r:
                steps.append(("basin config", r.status, await r.json()))
            for method, stream, suffix, body, key, extra in ENCRYPTION_STEPS:
                steps.append(
                    (method, stream, suffix, await _encryption_step(s2, method, stream, suffix, body, key, extra))
                )
            # Sessions with a key that did not seal the records: an SSE error event, an s2s terminal frame.
            for extra in ({"Accept": "text/event-stream"}, {"Content-Type": "s2s/proto"}):
                steps.append(await _encryption_step(s2, "GET", "s", "/records?seq_num=1&count=1", None, KEY, extra))
            # The basin's cipher changes: later streams take the new one, earlier ones keep theirs.
            async with http.put(f"{url}/v1/basins/{basin}", json={"config": {"stream_cipher": "aes-256-gcm"}}) as r:
                steps.append(("PUT basin", r.status))
            steps.append(await _encryption_step(s2, "POST", "", "", {"stream": "u"}, None, {}))
            steps.append(await _encryption_step(s2, "GET", "", "?prefix=", None, None, {}))
            steps.append(await _encryption_step(s2, "GET", "u", "/records?seq_num=0", None, None, {}))
            # An unknown cipher.
            bad = {"basin": f"{basin}-x", "config": {"stream_cipher": "chacha20"}}
            async with http.post(f"{url}/v1/basins", json=bad) as r:
                steps.append(("unknown cipher", r.status, (await r.json())["code"]))
            # A plain basin: a well-formed key is ignored, an over-long one refused.
            plain = await _new_basin(http, url, f"{basin}-p")
            for key in (KEY, "!!!!", "A" * 45):
                steps.append(await _encryption_step(plain, "PUT", "p", "", {}, None, {}))
                steps.append(await _encryption_step(plain, "POST", "p", "/records", {"records": [SECRET]}, key, {}))
                steps.append(await _encryption_step(plain, "GET", "p", "/records?seq_num=0&count=1", None, key, {}))
            answers.append(steps)
        for ours, reference in zip(answers[1], answers[0], strict=True):
            assert ours == reference


# Control plane steps: (method, "basin" for /v1/basins/{basin} or a stream name, extra headers, body).
# What is compared: status, `s2-provision-result`, and the body without created_at or message.
CONTROL_STEPS: list[tuple[str, str, dict[str, str], Any]] = [
    ("PUT", "b", {}, {}),
    ("PUT", "b", {}, {}),
    ("PUT", "b", {}, {"storage_class": "express"}),
    ("PUT", "b", {}, {"retention_policy": {"age": 86400}}),
    ("PUT", "b", {}, {"retention_policy": {"age": 86400}}),
    ("GET", "b", {}, None),
    ("POST", "", {"s2-request-token": "tok-1"}, {"stream": "c", "config": {"retention_policy": {"age": 60}}}),
    ("POST", "", {"s2-request-token": "tok-1"}, {"stream": "c", "config": {"retention_policy": {"age": 60}}}),
    ("POST", "", {"s2-request-token": "tok-2"}, {"stream": "c", "config": {"retention_policy": {"age": 60}}}),
    ("POST", "", {"s2-request-token": "tok-1"}, {"stream": "c"}),
    ("POST", "", {}, {"stream": "c"}),
    ("POST", "", {"s2-request-token": "t" * 37}, {"stream": "d"}),
    ("PATCH", "b", {}, {"timestamping": {"mode": "arrival", "uncapped": True}}),
    ("PATCH", "b", {}, {"timestamping": {"mode": None}, "storage_class": "standard"}),
    ("PATCH", "b", {}, {"storage_class": None, "retention_policy": None}),
    ("PATCH", "b", {}, {"delete_on_empty": {"min_age_secs": 30}}),
    ("PATCH", "b", {}, {"retention_policy": {"age": 0}}),
    ("PATCH", "b", {}, {"storage_class": "glacier"}),  # s2-lite keeps any string
    ("PATCH", "b", {}, {"storage_class": 3}),
    ("PATCH", "nope", {}, {}),
    ("GET", "b", {}, None),
    ("PATCH", "basin", {}, {"stream_cipher": "aegis-256", "create_stream_on_append": True}),
    ("POST", "", {}, {"stream": "sealed"}),
    ("PATCH", "basin", {}, {"stream_cipher": None, "default_stream_config": {"retention_policy": {"age": 60}}}),
    ("PATCH", "basin", {}, {"default_stream_config": {"storage_class": "standard"}}),
    ("PATCH", "basin", {}, {"stream_cipher": "rot13"}),
    ("PATCH", "basin", {}, {"create_stream_on_read": None}),
    ("PATCH", "basin", {}, {"default_stream_config": None, "create_stream_on_read": True}),
    ("GET", "basin", {}, None),
    ("PUT", "basin", {}, {"config": {"create_stream_on_read": True, "create_stream_on_append": True}}),
    ("PUT", "basin", {}, {"config": {"create_stream_on_read": True, "create_stream_on_append": True}}),
    ("PUT", "basin", {}, {}),
    ("PATCH", "basin", {}, {"create_stream_on_read": True, "create_stream_on_append": True}),
    # s2-stream-config: applied to a stream an append or read creates, ignored otherwise, checked always.
    (
        "POST /records",
        "auto-w",
        {"s2-stream-config": '{"retention_policy":{"age":120}}'},
        {"records": [{"body": "", "timestamp": 5}]},
    ),
    ("GET", "auto-w", {}, None),
    ("GET /records?seq_num=0", "auto-r", {"s2-stream-config": '{"storage_class":"standard"}'}, None),
    ("GET", "auto-r", {}, None),
    ("GET /records?seq_num=0", "auto-r", {"s2-stream-config": '{"storage_class":"express"}'}, None),
    ("GET", "auto-r", {}, None),
    ("GET /records?seq_num=0", "auto-r", {"s2-stream-config": "{"}, None),
    ("GET /records?seq_num=0", "auto-r", {"s2-stream-config": '{"retention_policy":{"age":0}}'}, None),
    ("GET /records?seq_num=0", "auto-r", {"s2-stream-config": '{"storage_class":3}'}, None),
]


async def _control(s2: S2, step: tuple[str, str, dict[str, str], Any], created_basin: str) -> tuple[Any, ...]:
    method, target, headers, body = step
    method, _, suffix = method.partition(" ")
    if target == "basin":
        url = f"{s2.url}/v1/basins/{created_basin}"
    elif target:
        url = s2.path(target, suffix)
    else:
        url = f"{s2.url}/v1/streams"
    async with s2.http.request(method, url, json=body, headers=s2.headers(headers)) as r:
        text = await r.text()
        return r.status, r.headers.get("s2-provision-result"), _normalise(json.loads(text) if text else None)


async def test_the_control_plane_answers_as_s2_lite_does(s2_lite_url: str, emulator: Emulator) -> None:
    basin = f"ctl-{uuid.uuid4().hex[:10]}"
    async with aiohttp.ClientSession() as http:
        reference = await _new_basin(http, s2_lite_url, basin)
        ours = await _new_basin(http, emulator.url, basin)
        for step in CONTROL_STEPS:
            got = await _control(ours, step, basin)
            expected = await _control(reference, step, basin)
            assert got == expected, step


def _decoded(body: bytes, coding: str | None) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)  # S2 streams it: no size
    return body


@pytest.mark.parametrize("accept_encoding", ["gzip", "zstd", "gzip, zstd", "zstd;q=0.5, gzip", "*", "br", "identity"])
async def test_unary_reads_are_compressed_as_s2_lite_compresses_them(
    s2_lite_url: str, emulator: Emulator, accept_encoding: str
) -> None:
    """Content-Encoding, and whether Vary names accept-encoding (s2-lite's also names its CORS
    headers), of a 2 KiB read and of a small one; the decoded bodies equal."""
    basin = f"gz-{uuid.uuid4().hex[:10]}"
    records = [_record("x" * 200, 10) for _ in range(10)]
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        answers = []
        for url in (s2_lite_url, emulator.url):
            s2 = await _new_basin(http, url, basin)
            await _call(s2, "PUT", "s", "", {})
            await _call(s2, "POST", "s", "/records", {"records": records})
            seen = []
            for params in ("seq_num=0", "seq_num=0&count=1"):
                headers = s2.headers({"Accept-Encoding": accept_encoding, "s2-format": "base64"})
                async with http.get(s2.path("s", f"/records?{params}"), headers=headers) as r:
                    coding = r.headers.get("Content-Encoding")
                    body = _normalise(json.loads(_decoded(await r.read(), coding)))
                    vary = "accept-encoding" in r.headers.get("Vary", "")
                    seen.append((r.status, coding, vary, body))
            answers.append(seen)
        assert answers[1] == answers[0]
