"""Conformance: the emulator's defaults are S2's. One test per behaviour, each naming the S2 source
(repository s2-streamstore/s2) or document it follows. Tests talk to a real emulator over loopback.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import grpc
import pytest
import zstandard

from sidecar._proto.s2sidecar.v1 import stream_pb2 as api_pb
from sidecar._proto.s2sidecar.v1 import stream_pb2_grpc
from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig
from sidecar.emulator.sessions import Heartbeats, Live, run_session
from sidecar.emulator.store import Store
from sidecar.errors import S2Error
from sidecar.testing import SidecarHarness, SidecarProcess, free_port
from sidecar.types import AppendRecord, ReadQuery, SeqNum, StreamPosition
from sidecar.wire.protobuf import encode_append_input

from .helpers import FIVE, FIVE_JSON, S2, S2S, SSE, Events, Frames

EMPTY_TAIL = {"tail": {"seq_num": 0, "timestamp": 0}}
FIVE_RECORDS = [{"seq_num": i, "timestamp": ts, "body": f"r{i}"} for i, ts in enumerate((10, 20, 20, 30, 40))]


def trim(seq_num: int) -> dict[str, Any]:
    """A trim command record in raw JSON: one header ("", "trim"), body = 8 bytes big-endian."""
    return {"headers": [["", "trim"]], "body": struct.pack(">Q", seq_num).decode("latin-1")}


async def status_of(s2: S2, method: str, suffix: str, **kwargs: Any) -> tuple[int, Any]:
    async with s2.http.request(method, s2.path(kwargs.pop("stream"), suffix), headers=s2.headers(), **kwargs) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None


async def append_status(s2: S2, stream: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await status_of(s2, "POST", "/records", stream=stream, json=body)


async def seqs(s2: S2, stream: str, params: str) -> list[int]:
    status, body = await s2.read(stream, params)
    assert status == 200, body
    return [r["seq_num"] for r in body["records"]]


# -- 1. Basins and streams exist only once created ------------------------------------------------


async def test_unknown_basin_is_404_basin_not_found(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/core.rs (basin lookup) -> 404 `basin_not_found`, for every basin operation."""
    nowhere = s2.in_basin("no-such-basin-here")
    for method, suffix in (("GET", "/records?seq_num=0"), ("GET", "/records/tail"), ("PUT", ""), ("GET", "")):
        # A JSON body on the ensure: S2 refuses a body that is not JSON before it looks for the basin.
        body_kwargs = {"json": {}} if method == "PUT" else {}
        status, body = await status_of(nowhere, method, suffix, stream=stream, **body_kwargs)
        assert (status, body["code"]) == (404, "basin_not_found"), (method, suffix)
    status, body = await append_status(nowhere, stream, {"records": [{"body": "x"}]})
    assert (status, body["code"]) == (404, "basin_not_found")
    async with s2.http.get(f"{s2.url}/v1/streams", headers=nowhere.headers()) as r:
        assert (r.status, (await r.json())["code"]) == (404, "basin_not_found")


async def test_streams_exist_only_once_created_by_default(s2: S2, stream: str) -> None:
    """openapi.json BasinConfig: `create_stream_on_append` / `create_stream_on_read` default false;
    S2: lite/src/backend/core.rs `stream_handle_with_auto_create` -> 404 `stream_not_found`."""
    plain = await s2.create_basin()
    status, body = await append_status(plain, stream, {"records": [{"body": "x"}]})
    assert (status, body["code"]) == (404, "stream_not_found")
    for suffix in ("/records?seq_num=0", "/records/tail", ""):
        status, body = await status_of(plain, "GET", suffix, stream=stream)
        assert (status, body["code"]) == (404, "stream_not_found"), suffix
    for headers in (SSE, S2S):  # sessions too, as plain HTTP errors before any event
        async with plain.http.get(plain.path(stream, "/records?seq_num=0"), headers=plain.headers(headers)) as r:
            assert (r.status, (await r.json())["code"]) == (404, "stream_not_found")
    async with plain.http.post(f"{plain.url}/v1/streams", json={"stream": stream}, headers=plain.headers()) as r:
        assert r.status == 201
    await plain.append(stream, FIVE)
    assert await seqs(plain, stream, "seq_num=0") == [0, 1, 2, 3, 4]


async def test_create_stream_on_append_and_on_read(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/core.rs `AutoCreateOn::Append` / `AutoCreateOn::Read` (a tail check counts
    as a read: lite/src/backend/read.rs `open_for_check_tail`); each flag only does its own half."""
    on_append = await s2.create_basin({"create_stream_on_append": True})
    assert (await status_of(on_append, "GET", "/records/tail", stream=stream))[0] == 404
    await on_append.append(stream, FIVE)
    assert await seqs(on_append, stream, "seq_num=0") == [0, 1, 2, 3, 4]

    on_read = await s2.create_basin({"create_stream_on_read": True})
    status, body = await append_status(on_read, stream, {"records": [{"body": "x"}]})
    assert (status, body["code"]) == (404, "stream_not_found")
    assert await status_of(on_read, "GET", "/records/tail", stream=stream) == (200, EMPTY_TAIL)
    await on_read.append(stream, FIVE)  # the tail check created it
    assert await seqs(on_read, stream, "seq_num=0&count=2") == [0, 1]


async def test_account_api_create_list_config_delete_basins(s2: S2, stream: str) -> None:
    """S2: lite/src/handlers/v1/basins.rs (POST 201 / 409, PUT 201 then 200, GET config, DELETE 202)."""
    name = "acct-" + stream[2:]
    async with s2.http.post(f"{s2.url}/v1/basins", json={"basin": name, "config": AUTO_CREATE}) as r:
        assert r.status == 201
        info = await r.json()
    assert info["name"] == name and info["created_at"].endswith("Z")
    async with s2.http.post(f"{s2.url}/v1/basins", json={"basin": name}) as r:
        assert (r.status, (await r.json())["code"]) == (409, "resource_already_exists")
    async with s2.http.post(f"{s2.url}/v1/basins", json={"basin": "Bad_Name"}) as r:
        # S2 checks the name while deserializing the body (common/src/basin.rs `BasinName`).
        assert (r.status, (await r.json())["code"]) == (400, "bad_json")
    async with s2.http.get(f"{s2.url}/v1/basins/{name}") as r:
        # `stream_cipher` is listed, null, on a basin without encryption (as s2-lite 0.43.4 shows it).
        assert await r.json() == {
            "create_stream_on_append": True,
            "create_stream_on_read": True,
            "default_stream_config": None,
            "stream_cipher": None,
        }
    async with s2.http.get(f"{s2.url}/v1/basins?prefix=acct-&limit=1000") as r:
        listed = await r.json()
    assert name in [b["name"] for b in listed["basins"]] and listed["has_more"] is False
    async with s2.http.put(f"{s2.url}/v1/basins/{name}", json={"config": {"create_stream_on_read": True}}) as r:
        assert r.status == 200  # exists: reconfigured
    async with s2.http.get(f"{s2.url}/v1/basins/{name}") as r:
        assert (await r.json())["create_stream_on_append"] is False
    basin = s2.in_basin(name)
    assert await status_of(basin, "GET", "/records/tail", stream=stream) == (200, EMPTY_TAIL)
    async with s2.http.delete(f"{s2.url}/v1/basins/{name}") as r:
        assert r.status == 202
    for _ in range(200):  # S2 deletes a basin in the background (test_emulator_deletion.py): wait it out
        async with s2.http.get(f"{s2.url}/v1/basins/{name}") as r:
            if r.status == 404:
                break
        await asyncio.sleep(0.01)
    status, body = await status_of(basin, "GET", "/records/tail", stream=stream)
    assert (status, body["code"]) == (404, "basin_not_found")
    async with s2.http.delete(f"{s2.url}/v1/basins/{name}") as r:
        assert (r.status, (await r.json())["code"]) == (404, "basin_not_found")
    async with s2.http.put(f"{s2.url}/v1/basins/{name}", json={}) as r:
        assert r.status == 201  # create-or-reconfigure creates, with S2's defaults
    async with s2.http.get(f"{s2.url}/v1/basins/{name}") as r:
        assert (await r.json())["create_stream_on_append"] is False


async def test_basin_default_stream_config_is_inherited(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/read.rs `open_for_read` ("Unset fields inherit the basin's default stream
    configuration"); openapi.json BasinConfig.default_stream_config."""
    basin = await s2.create_basin(
        {"create_stream_on_append": True, "default_stream_config": {"timestamping": {"mode": "arrival"}}}
    )
    await basin.append(stream, [{"timestamp": 5, "body": "a"}])  # created on append with the default
    status, config = await status_of(basin, "GET", "", stream=stream)
    assert status == 200
    assert config["timestamping"] == {"mode": "arrival", "uncapped": False}
    assert config["retention_policy"] == {"age": 604800}  # S2's own default where the basin has none
    _, body = await basin.read(stream, "seq_num=0")
    assert body["records"][0]["timestamp"] > 5  # arrival time, not the client's
    async with basin.http.post(
        f"{basin.url}/v1/streams",
        json={"stream": stream + "-x", "config": {"timestamping": {"uncapped": True}}},
        headers=basin.headers(),
    ) as r:
        assert r.status == 201
    _, config = await status_of(basin, "GET", "", stream=stream + "-x")
    assert config["timestamping"] == {"mode": "arrival", "uncapped": True}  # field by field


async def test_basins_persist_with_data_dir(tmp_path: Path) -> None:
    """S2 keeps basins like streams (lite/src/backend/kv/basin_meta.rs); the emulator's SQLite too."""
    config = EmulatorConfig(port=0, data_dir=tmp_path)
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            async with http.post(f"{emu.url}/v1/basins", json={"basin": "kept-basin", "config": AUTO_CREATE}) as r:
                assert r.status == 201
            async with http.post(
                f"{emu.url}/v1/streams/s/records", json={"records": FIVE}, headers={"s2-basin": "kept-basin"}
            ) as r:
                assert r.status == 200
        async with Emulator(config) as emu:
            async with http.get(f"{emu.url}/v1/basins/kept-basin") as r:
                assert (await r.json())["create_stream_on_append"] is True
            async with http.get(f"{emu.url}/v1/streams/s/records/tail", headers={"s2-basin": "kept-basin"}) as r:
                assert await r.json() == {"tail": {"seq_num": 5, "timestamp": 40}}


async def test_emulator_cli_basin_flag_creates_auto_create_basins() -> None:
    """`s2-sidecar emulator --basin NAME`: a basin whose streams are created on first append / read
    (S2 basin config `create_stream_on_append` / `create_stream_on_read`); no flag, no basin."""
    help_text = await _run_output(sys.executable, "-m", "sidecar", "emulator", "--help")
    assert "--basin NAME" in help_text and "create_stream_on_append" in help_text
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "emulator", "--listen", f"127.0.0.1:{port}", "--basin", "cli-basin1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/v1/streams/new/records"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.post(
                        url, json={"records": [{"body": "x"}]}, headers={"s2-basin": "cli-basin1"}
                    ) as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("emulator did not start")
            async with http.get(url, headers={"s2-basin": "other-basin"}) as r:
                assert (r.status, (await r.json())["code"]) == (404, "basin_not_found")
    finally:
        proc.terminate()
        await proc.wait()


async def _run_output(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


async def test_embedded_emulator_creates_its_default_basin() -> None:
    """`s2-sidecar` with no S2_BASIN_ENDPOINT: its emulator creates `local-basin` with
    `create_stream_on_append` on and says so, so the README's first append to a new stream works;
    a read of a stream nobody wrote is still NOT_FOUND."""
    async with SidecarProcess() as sc, aiohttp.ClientSession() as http:
        async with http.post(
            f"{sc.emulator_url}/v1/streams/first/records",
            json={"records": [{"body": "hello"}]},
            headers={"s2-basin": "local-basin"},
        ) as r:
            assert r.status == 200
        async with http.get(f"{sc.emulator_url}/v1/basins/local-basin") as r:
            config = await r.json()
        assert config["create_stream_on_append"] is True and config["create_stream_on_read"] is False
        assert "local-basin" in sc.output and "create_stream_on_append" in sc.output
        async with grpc.aio.insecure_channel(sc.address) as channel:
            stub = stream_pb2_grpc.StreamServiceStub(channel)  # type: ignore[no-untyped-call]
            got = await stub.Read(api_pb.ReadRequest(stream="first", seq_num=0))
            assert [r.body for r in got.records] == [b"hello"]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Read(api_pb.ReadRequest(stream="never-written", seq_num=0))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND


# -- 2. The tail rides only on batches served live ------------------------------------------------


async def test_tail_only_on_batches_served_live(s2: S2, five: str) -> None:
    """S2: lite/src/backend/read.rs `read_session`: catch-up batches `tail: None`, batches from
    `follow` `tail: Some(..)`, heartbeats always with it; handlers/v1/records.rs `merge_read_session`."""
    assert await s2.read(five, "seq_num=3") == (200, {"records": [FIVE_RECORDS[3], FIVE_RECORDS[4]]})
    assert await s2.read(five, "seq_num=0&count=0") == (200, {"records": []})
    assert await s2.read(five, "seq_num=0&bytes=5") == (200, {"records": []})  # first record too big

    async def append_later() -> None:
        await asyncio.sleep(0.3)
        await s2.append(five, [{"timestamp": 50, "body": "live"}])

    task = asyncio.create_task(append_later())
    status, body = await s2.read(five, "seq_num=5&wait=5")  # long poll: served live
    await task
    assert (status, body) == (
        200,
        {"records": [{"seq_num": 5, "timestamp": 50, "body": "live"}], "tail": {"seq_num": 6, "timestamp": 50}},
    )
    async with s2.http.get(s2.path(five, "/records?seq_num=4"), headers=s2.headers(SSE)) as r:
        events = Events(r)
        first = await events.next()
        assert '"tail"' not in first and '"seq_num":4' in first  # catch-up
        ping = await events.next()
        assert ping.startswith("event: ping\n") and '"tail":{"seq_num":6,"timestamp":50}' in ping
        await s2.append(five, [{"timestamp": 60, "body": "more"}])
        event = await events.next()
        while event.startswith("event: ping"):
            event = await events.next()
        assert event.endswith(
            '"records":[{"seq_num":6,"timestamp":60,"body":"more"}],"tail":{"seq_num":7,"timestamp":60}}\n\n'
        )


# -- 3. Trims ---------------------------------------------------------------------------------------


async def test_trim_body_must_be_8_bytes(s2: S2, stream: str) -> None:
    """A trim command's body is 8 bytes, a big-endian seq_num; anything else is 422 `invalid`
    (S2: lite/src/backend/streamer.rs, trim commands)."""
    for body in ("", "1234567", "123456789"):
        status, err = await append_status(s2, stream, {"records": [{"headers": [["", "trim"]], "body": body}]})
        assert (status, err["code"]) == (422, "invalid"), body
    await s2.append(stream, [trim(0)])


async def test_trim_point_and_reads_start_at_first_remaining(s2: S2, five: str) -> None:
    """Trimming: point = max(existing, min(requested, command seq_num + 1)); reads
    below it start at the first remaining record; the tail is unaffected; the command keeps its
    seq_num. S2: lite/src/backend/streamer.rs (trim commands), lite/src/backend/read.rs (scan from start)."""
    ack = await s2.append(five, [trim(3)])  # the command is seq 5; trims 0-2
    assert ack["end"]["seq_num"] == 6
    assert await seqs(s2, five, "seq_num=0") == [3, 4, 5]
    assert await seqs(s2, five, "timestamp=0") == [3, 4, 5]
    assert await seqs(s2, five, "tail_offset=100") == [3, 4, 5]
    assert await seqs(s2, five, "seq_num=4") == [4, 5]
    _, body = await s2.read(five, "seq_num=5")
    assert body["records"][0]["headers"] == [["", "trim"]]  # the command itself is a record
    assert await status_of(s2, "GET", "/records/tail", stream=five) == (
        200,
        {"tail": {"seq_num": 6, "timestamp": ack["end"]["timestamp"]}},
    )
    await s2.append(five, [trim(1)])  # never backwards
    assert await seqs(s2, five, "seq_num=0") == [3, 4, 5, 6]
    await s2.append(five, [trim(100)])  # never past itself: seq 7 trims through 7
    assert await s2.read(five, "seq_num=0") == (200, {"records": []})  # nothing left, not 416
    await s2.append(five, [{"timestamp": 99, "body": "after"}])
    assert await seqs(s2, five, "seq_num=0") == [8]
    async with s2.http.get(s2.path(five, "/records?seq_num=0&count=5"), headers=s2.headers(SSE)) as r:
        assert '"seq_num":8' in await Events(r).next()
    async with s2.http.get(s2.path(five, "/records?seq_num=0&count=5"), headers=s2.headers(S2S)) as r:
        frame = await Frames(r).next()
    assert b"\x08\x08" in frame and b"after" in frame and b"r0" not in frame  # SequencedRecord{seq_num: 8}


async def test_retention_age_trims_by_arrival_age(s2: S2, stream: str) -> None:
    """openapi.json RetentionPolicy.age ("automatic trimming of records older than this"); S2 expires
    records by their write time (lite/src/backend/streamer.rs passes `retention` to each write)."""
    async with s2.http.post(
        f"{s2.url}/v1/streams",
        json={"stream": stream, "config": {"retention_policy": {"age": 1}}},
        headers=s2.headers(),
    ) as r:
        assert r.status == 201
    await s2.append(stream, [{"timestamp": 1, "body": "old"}])
    await asyncio.sleep(1.2)
    await s2.append(stream, [{"body": "new"}])
    _, body = await s2.read(stream, "seq_num=0")
    assert [(r["seq_num"], r["body"]) for r in body["records"]] == [(1, "new")]
    assert (await status_of(s2, "GET", "/records/tail", stream=stream))[1]["tail"]["seq_num"] == 2
    basin = await s2.create_basin(
        {"create_stream_on_append": True, "default_stream_config": {"retention_policy": {"age": 1}}}
    )
    await basin.append(stream, [{"body": "old"}])
    await asyncio.sleep(1.2)
    assert await basin.read(stream, "seq_num=0") == (200, {"records": []})  # the basin's default applies


async def test_trim_point_persists_with_data_dir(tmp_path: Path) -> None:
    """The trim point is stream state S2 keeps (lite/src/backend/kv/stream_trim_point.rs)."""
    config = EmulatorConfig(port=0, data_dir=tmp_path, basins={"trim-basin": AUTO_CREATE})
    async with aiohttp.ClientSession() as http:
        for first_run in (True, False):
            async with Emulator(config) as emu:
                s2 = S2(http, emu.url, "trim-basin")
                if first_run:
                    await s2.append("s", [*FIVE, trim(2)])
                assert await seqs(s2, "s", "seq_num=0") == [2, 3, 4, 5]


async def test_live_session_trimmed_under_it_goes_on_from_first_remaining() -> None:
    """S2: lite/src/backend/read.rs scans from the session's start key, so records trimmed meanwhile
    are skipped: a session whose next position was trimmed goes on from the first remaining record."""
    store = Store()
    store.create_basin("unit-basin", AUTO_CREATE)
    for n in (1000, 500):
        store.append("unit-basin", "s", [AppendRecord(body=b"x", timestamp=1)] * n)
    writer = RecordingWriter()

    async def trim_during_first_batch(start: int, end: int) -> None:
        if start == 0:  # while batch 0-999 is being written, trim up to 1200
            store.append("unit-basin", "s", [AppendRecord(body=struct.pack(">Q", 1200), headers=((b"", b"trim"),))])

    writer.on_batch = trim_during_first_batch
    stream = store.require("unit-basin", "s")
    live = Live("unit-basin", "s", session=True)
    await run_session(stream, None, ReadQuery(start=SeqNum(0), wait=0), 0, writer, live, Heartbeats(1, 1))
    assert writer.batches[0][:2] == (0, 1000)
    assert writer.batches[1][0] == 1200
    assert writer.batches[-1][1] == 1501 and writer.ended


# -- 4. Timestamping -------------------------------------------------------------------------------


async def _stream_with(s2: S2, stream: str, timestamping: dict[str, Any]) -> None:
    async with s2.http.post(
        f"{s2.url}/v1/streams", json={"stream": stream, "config": {"timestamping": timestamping}}, headers=s2.headers()
    ) as r:
        assert r.status == 201, await r.text()


async def test_timestamping_client_require_rejects_records_without(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/streamer.rs (`ClientRequire => timestamp.ok_or(AppendTimestampRequiredError)`)."""
    await _stream_with(s2, stream, {"mode": "client-require"})
    status, body = await append_status(s2, stream, {"records": [{"timestamp": 5, "body": "a"}, {"body": "b"}]})
    assert (status, body["code"]) == (422, "invalid")
    assert (await status_of(s2, "GET", "/records/tail", stream=stream))[1] == EMPTY_TAIL  # nothing appended
    await s2.append(stream, [{"timestamp": 5, "body": "a"}])
    assert (await s2.read(stream, "seq_num=0"))[1]["records"][0]["timestamp"] == 5


async def test_timestamping_arrival_ignores_client_timestamps(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/streamer.rs (`Arrival => now`)."""
    await _stream_with(s2, stream, {"mode": "arrival"})
    before = int(time.time() * 1000)
    await s2.append(stream, [{"timestamp": 5, "body": "a"}])
    ts = (await s2.read(stream, "seq_num=0"))[1]["records"][0]["timestamp"]
    assert before - 1000 < ts < before + 5000


async def test_timestamping_client_prefer_caps_unless_uncapped(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/streamer.rs (`if !config.uncapped && timestamp > now { timestamp = now }`),
    client-prefer being the default mode (common/src/types/config.rs `#[default] ClientPrefer`)."""
    future = int(time.time() * 1000) + 3_600_000
    await s2.append(stream, [{"timestamp": future, "body": "a"}, {"body": "b"}])
    capped = [r["timestamp"] for r in (await s2.read(stream, "seq_num=0"))[1]["records"]]
    assert capped[0] < future and capped[1] >= capped[0]
    await _stream_with(s2, stream + "-u", {"uncapped": True})
    await s2.append(stream + "-u", [{"timestamp": future, "body": "a"}, {"timestamp": 7, "body": "b"}])
    kept = [r["timestamp"] for r in (await s2.read(stream + "-u", "seq_num=0"))[1]["records"]]
    assert kept == [future, future]  # never backwards within a stream


async def test_invalid_timestamping_mode_rejected_at_create_and_ensure(s2: S2, stream: str) -> None:
    """openapi.json TimestampingMode enum; S2 deserializes configs with serde, and a JSON extraction
    failure is `400 bad_json` (lite/src/handlers/v1/error.rs `JsonRejection => ErrorCode::BadJson`);
    a value that parses but fails validation (retention age 0) is `422 invalid`."""
    bad = {"timestamping": {"mode": "client-later"}}
    async with s2.http.post(f"{s2.url}/v1/streams", json={"stream": stream, "config": bad}, headers=s2.headers()) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_json")
    async with s2.http.put(s2.path(stream), json=bad, headers=s2.headers()) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_json")
    async with s2.http.post(
        f"{s2.url}/v1/basins", json={"basin": "bad-ts-basin", "config": {"default_stream_config": bad}}
    ) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_json")
    async with s2.http.put(s2.path(stream), json={"timestamping": {"uncapped": "yes"}}, headers=s2.headers()) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_json")
    async with s2.http.put(s2.path(stream), json={"retention_policy": {"age": 0}}, headers=s2.headers()) as r:
        assert (r.status, (await r.json())["code"]) == (422, "invalid")
    assert (await status_of(s2, "GET", "", stream=stream))[0] == 404  # nothing was created


# -- 5. Timestamp starts on an empty stream --------------------------------------------------------


async def test_timestamp_start_on_a_never_written_stream(s2: S2, stream: str) -> None:
    """S2: lite/src/backend/read.rs `read_start_seq_num`: 416 when strictly past the tail's timestamp;
    else resolved to a seq_num first, and a start at the tail is 416 only when the read cannot follow
    (`ReadEnd::may_follow`, common/src/types/stream.rs). A never-written stream's tail timestamp is 0."""
    async with s2.http.put(s2.path(stream), json={}, headers=s2.headers()) as r:
        assert r.status == 201
    assert await s2.read(stream, "timestamp=5") == (416, EMPTY_TAIL)  # strictly past
    assert await s2.read(stream, "timestamp=0") == (416, EMPTY_TAIL)  # at the tail, one-shot cannot follow
    assert await s2.read(stream, "timestamp=0&wait=1") == (200, {"records": []})  # may follow: long poll
    async with s2.http.get(s2.path(stream, "/records?timestamp=0"), headers=s2.headers(SSE)) as r:
        assert r.status == 200
        assert (await Events(r).next()).startswith("event: ping\n")
    async with s2.http.get(s2.path(stream, "/records?timestamp=5"), headers=s2.headers(SSE)) as r:
        assert r.status == 416


# -- 6. Wire details -------------------------------------------------------------------------------


async def test_sse_ids_after_last_event_id_count_from_the_resume(s2: S2, five: str) -> None:
    """S2: lite/src/handlers/v1/records.rs `apply_last_event_id` (start = seq_num + 1, count/bytes
    reduced), and the ids go on from the resumed totals: s2-lite (s2-cli 0.43.4) answers
    `Last-Event-ID: 1,2,20` on `seq_num=0&count=3` with `id: 2,3,30` (see test_against_s2_lite.py)."""
    headers = {**SSE, "Last-Event-ID": "1,2,20"}
    async with s2.http.get(s2.path(five, "/records?seq_num=0&count=3"), headers=s2.headers(headers)) as r:
        event = await Events(r).next()
    assert event.startswith("event: batch\nid: 2,3,30\n")  # count 3 - 2 = 1 record left: seq 2


async def test_s2s_prefers_zstd_and_leaves_small_frames_alone(s2: S2, stream: str) -> None:
    """S2: api/src/v1/stream/s2s.rs `from_accept_encoding` (zstd wins when offered, else gzip);
    S2's s2s framing: messages smaller than 1 KiB are not compressed."""
    await s2.append(stream, [{"timestamp": 1, "body": "z" * 3000}])
    headers = {"Content-Type": "s2s/proto", "Accept-Encoding": "gzip, zstd"}
    async with s2.http.get(s2.path(stream, "/records?seq_num=0&wait=5"), headers=s2.headers(headers)) as r:
        frames = Frames(r)
        frame = await frames.next()
        assert frame[3] == 0x20  # compression bits 01: zstd
        payload = zstandard.ZstdDecompressor().decompressobj().decompress(frame[4:])
        assert payload == b"\x0a\xbd\x17\x10\x01\x22\xb8\x17" + b"z" * 3000
        assert (await frames.next())[3] == 0x00  # heartbeat: small, uncompressed
    headers = {"Content-Type": "s2s/proto", "Accept-Encoding": "gzip"}
    async with s2.http.get(s2.path(stream, "/records?seq_num=0&count=1"), headers=s2.headers(headers)) as r:
        frame = await Frames(r).next()
    assert frame[3] == 0x40 and gzip.decompress(frame[4:]).endswith(b"z" * 3000)


async def test_unary_read_format_from_the_first_accept_type_only(s2: S2, five: str) -> None:
    """The first media type of Accept decides what comes back; S2: api/src/mime.rs."""
    for accept, content_type in (
        ("application/json, application/protobuf", "application/json"),
        ("text/html, application/protobuf", "application/json"),
        ("application/x-protobuf, application/json", "application/protobuf"),
    ):
        async with s2.http.get(s2.path(five, "/records?seq_num=0"), headers=s2.headers({"Accept": accept})) as r:
            assert (r.status, r.content_type) == (200, content_type), accept
            data = await r.read()
        if content_type == "application/json":
            assert data.decode() == FIVE_JSON


async def test_session_responses_are_not_cached_or_buffered(s2: S2, five: str) -> None:
    """S2's SSE responses (axum `Sse`): `cache-control: no-cache`, `x-accel-buffering: no`; with
    `no-transform` so no proxy re-encodes the event stream. s2s sessions get the same."""
    for headers in (SSE, S2S):
        async with s2.http.get(s2.path(five, "/records?seq_num=0&count=1"), headers=s2.headers(headers)) as r:
            assert r.headers["cache-control"] == "no-cache, no-transform"
            assert r.headers["x-accel-buffering"] == "no"


async def test_tail_offset_takes_the_full_u64_range(s2: S2, five: str) -> None:
    """openapi.json `tail_offset` (u64); S2: lite/src/backend/read.rs `saturating_sub`."""
    assert await seqs(s2, five, f"tail_offset={2**64 - 1}") == [0, 1, 2, 3, 4]
    status, body = await s2.read(five, f"tail_offset={2**64}")
    assert (status, body["code"]) == (400, "bad_query")


async def test_fencing_token_over_36_bytes_rejected_when_parsed(s2: S2, stream: str) -> None:
    """S2: common/src/record.rs `FencingToken` (at most 36 bytes) is parsed with the append body, so
    it fails before the basin or stream is even looked at: in JSON as a body that does not
    deserialize (400 bad_json), in protobuf as an invalid value (422), as s2-lite answers."""
    plain = await s2.create_basin()  # the stream does not exist: parsing still comes first
    status, body = await append_status(plain, stream, {"records": [{"body": "x"}], "fencing_token": "t" * 37})
    assert (status, body["code"]) == (400, "bad_json")
    data = encode_append_input([AppendRecord(body=b"x")], fencing_token="t" * 37)
    async with s2.http.post(
        plain.path(stream, "/records"),
        data=data,
        headers=plain.headers({"content-type": "application/protobuf"}),
    ) as r:
        assert (r.status, (await r.json())["code"]) == (422, "invalid")
    status, body = await append_status(plain, stream, {"records": [{"body": "x"}], "fencing_token": "t" * 36})
    assert (status, body["code"]) == (404, "stream_not_found")  # 36 bytes parse fine


# -- 7. Heartbeats never run ahead of the records a session delivered ---------------------------------


class RecordingWriter:
    """A `SessionWriter` that records what a session sends, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.batches: list[tuple[int, int, StreamPosition | None]] = []
        self.ended = False
        self.on_batch: Any = None

    async def batch(
        self, fields: list[bytes], last_seq: int, tail: StreamPosition | None, count_so_far: int, bytes_so_far: int
    ) -> None:
        start, end = last_seq + 1 - len(fields), last_seq + 1
        self.batches.append((start, end, tail))
        self.events.append(("batch", end))
        if self.on_batch is not None:
            await self.on_batch(start, end)

    async def heartbeat(self, tail: StreamPosition) -> None:
        self.events.append(("heartbeat", tail.seq_num))

    async def error(self, err: Exception) -> None:
        self.events.append(("error", err))

    async def done(self) -> None:
        self.ended = True


class LateWake(Live):
    """A Live whose first wait times out just as records arrive (the wake-up loses the race)."""

    def __init__(self, store: Store) -> None:
        super().__init__("unit-basin", "s", session=True)
        self.store = store
        self.waits = 0

    async def wait(self, seconds: float | None) -> bool:
        self.waits += 1
        if self.waits == 1:
            self.store.append("unit-basin", "s", [AppendRecord(body=b"late", timestamp=9)])
            return False  # timed out, though the append happened
        self.close_error = S2Error(503, "server_draining", "test over")
        return True


async def test_heartbeat_never_carries_a_tail_ahead_of_delivered_records() -> None:
    """S2: lite/src/backend/read.rs: a heartbeat carries `state.tail`, the tail as of the records the
    session has delivered; records that arrived are sent before any later heartbeat."""
    store = Store()
    store.create_basin("unit-basin", AUTO_CREATE)
    store.append("unit-basin", "s", [AppendRecord(body=b"a", timestamp=1)])
    stream = store.require("unit-basin", "s")
    writer = RecordingWriter()
    live = LateWake(store)
    await run_session(stream, None, ReadQuery(start=SeqNum(0)), 0, writer, live, Heartbeats(0.0, 0.0))
    delivered = 0
    for kind, value in writer.events:
        if kind == "batch":
            delivered = value
        elif kind == "heartbeat":
            assert value <= delivered, writer.events  # never ahead of what was sent
    assert writer.events[:3] == [("batch", 1), ("heartbeat", 1), ("batch", 2)]
    assert writer.batches[0][2] is None and writer.batches[1][2] == StreamPosition(2, 9)  # catch-up, then live


# -- 8. Stream names ------------------------------------------------------------------------------


NAMES = ["line\nbreak", "with space", "a/b/c", "ünïcødé-流", "tab\tand\r\n", "%2F-literal"]


async def test_any_valid_stream_name_routes_directly(s2: S2) -> None:
    """S2: common/src/types/stream.rs `StreamNameStr::validate_str` (1-512 bytes, not "." or "..");
    the name is percent-encoded in the path."""
    for name in NAMES:
        await s2.append(name, [{"timestamp": 1, "body": name}])
        async with s2.http.get(
            f"{s2.url}/v1/streams/{quote(name, safe='')}/records?seq_num=0", headers=s2.headers()
        ) as r:
            assert r.status == 200, name
            assert (await r.json())["records"][0]["body"] == name
    async with s2.http.get(f"{s2.url}/v1/streams?prefix=line", headers=s2.headers()) as r:
        assert "line\nbreak" in [s["name"] for s in (await r.json())["streams"]]


async def test_any_valid_stream_name_routes_through_the_sidecar() -> None:
    """The sidecar accepts what S2 accepts (sidecar/wire/names.py) and the emulator routes it."""
    async with SidecarHarness() as h:
        for name in NAMES:
            await h.append(name, [name.encode()])
            got = await h.stub.Read(api_pb.ReadRequest(stream=name, seq_num=0))
            assert [r.body for r in got.records] == [name.encode()], name
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await h.stub.Read(api_pb.ReadRequest(stream="..", seq_num=0))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
