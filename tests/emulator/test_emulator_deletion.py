"""Deletion in the background, as S2 deletes: after the `202` a stream (or basin) stays listed with
`deleted_at` until the deletion ends, and what cannot go on meanwhile is answered
`409 stream_deletion_pending` (`basin_deletion_pending`); then the name is free again.

S2: lite/src/backend/streams.rs (`delete_stream` / `mark_stream_deleted`, `get_stream_config`,
`provision_stream`), lite/src/backend/core.rs (`start_streamer`: a stream whose terminal trim is
pending is `StreamDeletionPending` for reads, appends and tail checks),
lite/src/backend/basins.rs (`delete_basin`, `provision_basin`), bgtasks/basin_deletion.rs,
api/src/v1/basin.rs (`BasinInfo.state` from `deleted_at`). The window's length is
`EmulatorConfig.deletion_delay` (s2-lite 0.43.4 takes ~20 ms for a small stream).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.emulator import Emulator, EmulatorConfig
from sidecar.emulator.clock import parse_rfc3339
from sidecar.emulator.store import Store

from .helpers import FIVE, S2

DELAY = 0.4  # long enough for a test's requests to land inside the window, short enough to wait out


@pytest.fixture(scope="module")
async def slow_deletions() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(port=0, deletion_delay=DELAY)) as emu:
        yield emu


@pytest.fixture
async def s2d(slow_deletions: Emulator) -> AsyncIterator[S2]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        yield await S2(http, slow_deletions.url).create_basin({"create_stream_on_append": True})


async def _answer(s2: S2, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with s2.http.request(method, url, json=body, headers=s2.headers()) as r:
        text = await r.text()
        return r.status, (await r.json() if text else None)


def _code(answer: tuple[int, Any]) -> tuple[int, str | None]:
    status, body = answer
    return status, body.get("code") if isinstance(body, dict) else None


async def _listed(s2: S2, prefix: str) -> list[dict[str, Any]]:
    status, body = await _answer(s2, "GET", f"{s2.url}/v1/streams?prefix={prefix}")
    assert status == 200
    streams: list[dict[str, Any]] = body["streams"]
    return streams


async def _wait_until(check: Any, what: str) -> None:
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within 5 s")


async def test_a_deleted_stream_is_pending_then_gone(s2d: S2) -> None:
    stream = f"s-{uuid.uuid4().hex[:8]}"
    await s2d.append(stream, FIVE)
    created_at = (await _listed(s2d, stream))[0]["created_at"]
    assert await _answer(s2d, "DELETE", s2d.path(stream)) == (202, None)

    listed = await _listed(s2d, stream)
    assert [s["name"] for s in listed] == [stream]
    assert listed[0]["created_at"] == created_at
    assert parse_rfc3339(listed[0]["deleted_at"]) >= parse_rfc3339(created_at)
    pending = (409, "stream_deletion_pending")
    assert _code(await _answer(s2d, "GET", s2d.path(stream))) == pending  # its config
    assert _code(await _answer(s2d, "GET", s2d.path(stream, "/records?seq_num=0"))) == pending
    assert _code(await _answer(s2d, "GET", s2d.path(stream, "/records/tail"))) == pending
    # Not re-created by an append, even in a basin with create_stream_on_append.
    assert _code(await _answer(s2d, "POST", s2d.path(stream, "/records"), {"records": FIVE})) == pending
    assert _code(await _answer(s2d, "PUT", s2d.path(stream), {})) == pending
    assert _code(await _answer(s2d, "POST", f"{s2d.url}/v1/streams", {"stream": stream})) == pending
    assert await _answer(s2d, "DELETE", s2d.path(stream)) == (202, None)  # again: still just pending

    async def gone() -> bool:
        return not await _listed(s2d, stream)

    await _wait_until(gone, "the deletion ends")
    not_found = (404, "stream_not_found")
    assert _code(await _answer(s2d, "GET", s2d.path(stream))) == not_found
    assert _code(await _answer(s2d, "GET", s2d.path(stream, "/records?seq_num=0"))) == not_found
    assert _code(await _answer(s2d, "DELETE", s2d.path(stream))) == not_found
    status, info = await _answer(s2d, "POST", f"{s2d.url}/v1/streams", {"stream": stream})
    assert status == 201 and info["deleted_at"] is None
    assert parse_rfc3339(info["created_at"]) > parse_rfc3339(created_at)  # a new incarnation
    assert await _answer(s2d, "GET", s2d.path(stream, "/records/tail")) == (
        200,
        {"tail": {"seq_num": 0, "timestamp": 0}},
    )


async def test_a_deleted_basin_is_listed_deleting_then_gone(s2d: S2) -> None:
    stream = "kept-until-the-basin-goes"
    await s2d.append(stream, FIVE)
    basin_url = f"{s2d.url}/v1/basins/{s2d.basin}"
    assert await _answer(s2d, "DELETE", basin_url) == (202, None)

    assert (await _answer(s2d, "GET", f"{s2d.url}/v1/basins?prefix={s2d.basin}"))[0] == 200
    _, body = await _answer(s2d, "GET", f"{s2d.url}/v1/basins?prefix={s2d.basin}")
    [info] = body["basins"]
    assert (info["state"], info["location"]) == ("deleting", None) and info["deleted_at"] is not None
    assert (await _answer(s2d, "GET", basin_url))[0] == 200  # its config is still there
    [listed] = await _listed(s2d, "")
    assert listed["name"] == stream and listed["deleted_at"] is not None  # its streams go with it
    assert _code(await _answer(s2d, "POST", s2d.path(stream, "/records"), {"records": FIVE})) == (
        409,
        "stream_deletion_pending",
    )
    basin_pending = (409, "basin_deletion_pending")
    assert _code(await _answer(s2d, "PUT", s2d.path("another"), {})) == basin_pending
    assert _code(await _answer(s2d, "POST", s2d.path("another", "/records"), {"records": FIVE})) == basin_pending
    assert _code(await _answer(s2d, "PUT", basin_url, {})) == basin_pending
    assert _code(await _answer(s2d, "POST", f"{s2d.url}/v1/basins", {"basin": s2d.basin})) == basin_pending
    assert await _answer(s2d, "DELETE", basin_url) == (202, None)

    async def gone() -> bool:
        return (await _answer(s2d, "GET", basin_url))[0] == 404

    await _wait_until(gone, "the basin's deletion ends")
    assert _code(await _answer(s2d, "GET", s2d.path(stream, "/records/tail"))) == (404, "basin_not_found")
    assert (await _answer(s2d, "POST", f"{s2d.url}/v1/basins", {"basin": s2d.basin}))[0] == 201


async def test_a_follower_ends_when_its_stream_is_deleted(s2d: S2) -> None:
    """Reads stop at the DELETE, not when the deletion ends (a long poll here): S2's way, the long
    poll answers the deletion's trim command record (S2: lite/src/backend/streams.rs
    `delete_stream` appends it; the unary read returns what its session got)."""
    stream = f"f-{uuid.uuid4().hex[:8]}"
    await s2d.append(stream, FIVE)
    poll = asyncio.create_task(_answer(s2d, "GET", s2d.path(stream, "/records?seq_num=5&wait=10")))
    await asyncio.sleep(0.2)
    assert await _answer(s2d, "DELETE", s2d.path(stream)) == (202, None)
    status, body = await asyncio.wait_for(poll, DELAY)
    assert status == 200
    (trim,) = body["records"]
    assert (trim["seq_num"], trim["headers"]) == (5, [["", "trim"]])


async def test_without_s2s_way_a_follower_ends_with_404() -> None:
    """`deletion_ends_reads_as_s2_lite=False`: the emulator's older answer, 404 at the DELETE."""
    config = EmulatorConfig(port=0, deletion_delay=DELAY, deletion_ends_reads_as_s2_lite=False)
    async with Emulator(config) as emu, aiohttp.ClientSession() as http:
        s2 = await S2(http, emu.url).create_basin({"create_stream_on_append": True})
        await s2.append("f", FIVE)
        poll = asyncio.create_task(_answer(s2, "GET", s2.path("f", "/records?seq_num=5&wait=10")))
        await asyncio.sleep(0.2)
        assert await _answer(s2, "DELETE", s2.path("f")) == (202, None)
        assert _code(await asyncio.wait_for(poll, DELAY)) == (404, "stream_not_found")


def test_no_delay_deletes_before_the_answer(tmp_path: Path) -> None:
    """`deletion_delay=0`: gone at once (the store needs no event loop for it), basins too."""
    store = Store(tmp_path, deletion_delay=0)
    store.create_basin("basin-one")
    store.create("basin-one", "s")
    store.delete("basin-one", "s")
    assert store.get("basin-one", "s") is None
    store.create("basin-one", "s")
    store.delete_basin("basin-one")
    assert not store.has_basin("basin-one")
    store.close()


async def test_a_deletion_pending_at_a_restart_comes_back_gone(tmp_path: Path) -> None:
    config = EmulatorConfig(port=0, data_dir=tmp_path, deletion_delay=60)
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            s2 = await S2(http, emu.url).create_basin({"create_stream_on_append": True})
            doomed = await S2(http, emu.url).create_basin()
            await s2.append("gone", FIVE)
            await s2.append("kept", FIVE)
            assert await _answer(s2, "DELETE", s2.path("gone")) == (202, None)
            assert await _answer(doomed, "DELETE", f"{emu.url}/v1/basins/{doomed.basin}") == (202, None)
            assert [s["name"] for s in await _listed(s2, "")] == ["gone", "kept"]
        async with Emulator(config) as emu:
            s2, doomed = S2(http, emu.url, s2.basin), S2(http, emu.url, doomed.basin)
            assert [s["name"] for s in await _listed(s2, "")] == ["kept"]
            assert _code(await _answer(s2, "GET", s2.path("gone", "/records?seq_num=0"))) == (404, "stream_not_found")
            assert _code(await _answer(doomed, "GET", f"{emu.url}/v1/basins/{doomed.basin}")) == (
                404,
                "basin_not_found",
            )
            assert (await _answer(s2, "PUT", s2.path("gone"), {}))[0] == 201  # the name is free again


TRIM_B64 = "dHJpbQ=="  # "trim"
TERMINAL_B64 = "//////////8="  # eight 0xff bytes


async def test_with_the_switch_open_reads_of_a_deleted_stream_end_as_s2_lite_ends_them() -> None:
    """`deletion_ends_reads_as_s2_lite`: a following session gets the deletion's trim command (seq
    the tail, header ("", "trim"), body eight 0xff bytes) as a live batch, then `503 unavailable`
    "streamer missing in action" (SSE error event, no [DONE]; s2s terminal frame); a long poll
    answers that record, 200 (S2: lite/src/backend/streams.rs `delete_stream` appends a terminal
    trim; read.rs ends followers with `StreamerMissingInActionError`; s2-lite 0.43.4 answered so).
    Off (the default), the same reads end with 404 stream_not_found, as the sidecar's tests expect."""
    config = EmulatorConfig(port=0, heartbeat_min=5, heartbeat_max=6, deletion_ends_reads_as_s2_lite=True)
    async with Emulator(config) as emu, aiohttp.ClientSession() as http:
        s2 = await S2(http, emu.url).create_basin({"create_stream_on_append": True})
        await s2.append("s", FIVE[:1])
        fmt = {"s2-format": "base64"}
        out: dict[str, Any] = {}

        async def sse() -> None:
            headers = s2.headers({"Accept": "text/event-stream", **fmt})
            async with http.get(s2.path("s", "/records?seq_num=0"), headers=headers) as r:
                out["sse"] = (await r.read()).decode()

        async def s2s() -> None:
            headers = s2.headers({"Content-Type": "s2s/proto", "Accept-Encoding": "identity"})
            async with http.get(s2.path("s", "/records?seq_num=0"), headers=headers) as r:
                out["s2s"] = await r.read()

        async def poll() -> None:
            async with http.get(s2.path("s", "/records?seq_num=1&wait=5"), headers=s2.headers(fmt)) as r:
                out["poll"] = (r.status, await r.json())

        tasks = [asyncio.create_task(f()) for f in (sse, s2s, poll)]
        await asyncio.sleep(0.5)
        assert (await _answer(s2, "DELETE", s2.path("s")))[0] == 202
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    events = out["sse"].split("\n\n")
    assert events[2].startswith("event: batch\nid: 1,2,32\ndata: ")  # 10 + 22 metered bytes
    trim_batch = json.loads(events[2].split("data: ", 1)[1])
    [record] = trim_batch["records"]
    assert (record["seq_num"], record["headers"], record["body"]) == (1, [["", TRIM_B64]], TERMINAL_B64)
    assert trim_batch["tail"] == {"seq_num": 2, "timestamp": record["timestamp"]}
    assert events[3] == 'event: error\ndata: {"code":"unavailable","message":"streamer missing in action"}'
    assert "[DONE]" not in out["sse"]
    terminal = b'\x00\x00\x40\x80\x01\xf7{"code":"unavailable","message":"streamer missing in action"}'
    assert out["s2s"].endswith(terminal) and b"\x12\x04trim\x22\x08" + b"\xff" * 8 in out["s2s"]
    status, body = out["poll"]
    assert status == 200 and [(r["seq_num"], r["body"]) for r in body["records"]] == [(1, TERMINAL_B64)]
