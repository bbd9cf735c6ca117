"""`created_at` of streams and basins: RFC 3339 with nanoseconds as s2-lite writes it, strictly
increasing, so that a name deleted and re-created is a new incarnation with its own `created_at`
(what the sidecar's history cache tells incarnations apart by), across restarts too.

s2-lite: `created_at: OffsetDateTime::now_utc()` (lite/src/backend/streams.rs), serialized with
`time::serde::rfc3339` (api/src/v1/stream/mod.rs `StreamInfo`), i.e. the `time` crate's `Rfc3339`:
seconds, then `.` and the nanoseconds without trailing zeros (none when zero), then `Z`
(time-rs/time time/src/formatting/formattable.rs, `impl Sealed for Rfc3339`).
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig
from sidecar.emulator.clock import CreationClock, format_rfc3339, parse_rfc3339
from sidecar.emulator.store import DB_FILE, Store

from .helpers import BASIN, S2, ensure_when_deleted

# The time crate's Rfc3339 in UTC: 1 to 9 fraction digits, the last one never 0.
S2_LITE_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")
HEADERS = {"s2-basin": BASIN}


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        # The time crate's own example for Rfc3339: "1985-04-12T23:20:50.52Z".
        (482196050_520000000, "1985-04-12T23:20:50.52Z"),
        (1_800_000_000_123_456_780, "2027-01-15T08:00:00.12345678Z"),
    ],
)
def test_format_as_s2_lite_and_parse_back(ns: int, text: str) -> None:
    assert format_rfc3339(ns) == text
    assert parse_rfc3339(text) == ns


def test_parse_other_rfc3339_forms() -> None:
    assert parse_rfc3339("1985-04-12T23:20:50Z") == 482196050 * 10**9  # what data dirs held before
    assert parse_rfc3339("1985-04-13T01:20:50.52+02:00") == 482196050_520000000
    assert parse_rfc3339("1985-04-12t23:20:50.5200000009z") == 482196050_520000000  # past ns: dropped
    for bad in ("", "1985-04-12 23:20:50Z", "1985-04-12T23:20:50", "1985-13-12T23:20:50Z"):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)


def test_creation_clock_is_strictly_increasing_when_the_wall_clock_stands_or_goes_back() -> None:
    now = [5_000]
    clock = CreationClock(lambda: now[0])
    assert [clock.next() for _ in range(3)] == [5_000, 5_001, 5_002]  # one clock tick, three times
    now[0] = 4_000
    assert clock.next() == 5_003
    clock.observe(9_000)
    assert clock.next() == 9_001
    now[0] = 20_000
    assert clock.next() == 20_000


async def test_created_at_has_s2_lite_shape(s2: S2, stream: str) -> None:
    async with s2.http.put(s2.path(stream), json={}, headers=s2.headers()) as r:
        info = await r.json()
    assert S2_LITE_SHAPE.fullmatch(info["created_at"]), info
    assert datetime.fromisoformat(info["created_at"]).utcoffset() is not None  # RFC 3339 to a stock parser too
    async with s2.http.get(f"{s2.url}/v1/basins?prefix={BASIN}&limit=1") as r:
        assert S2_LITE_SHAPE.fullmatch((await r.json())["basins"][0]["created_at"])


async def _listed(http: aiohttp.ClientSession, url: str, name: str) -> dict[str, object]:
    """The sidecar's question: `GET /v1/streams?prefix=<name>&limit=1`."""
    async with http.get(f"{url}/v1/streams", params={"prefix": name, "limit": "1"}, headers=HEADERS) as r:
        assert r.status == 200
        streams = (await r.json())["streams"]
    assert len(streams) == 1 and streams[0]["name"] == name
    info: dict[str, object] = streams[0]
    return info


async def test_delete_and_recreate_in_a_tight_loop_gives_increasing_created_at(tmp_path: Path) -> None:
    config = EmulatorConfig(port=0, data_dir=tmp_path, basins={BASIN: AUTO_CREATE})
    seen: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            stream_url = f"{emu.url}/v1/streams/again"
            for i in range(10):
                # Re-created as soon as S2 lets it be: once its background deletion ended.
                assert await ensure_when_deleted(http, stream_url, HEADERS) == 201
                listed = await _listed(http, emu.url, "again")
                # s2-lite lists `deleted_at` (null unless the stream is being deleted) and `cipher`.
                assert listed["deleted_at"] is None and listed["cipher"] is None
                assert isinstance(listed["created_at"], str)
                seen.append(listed["created_at"])
                if i < 9:
                    async with http.delete(stream_url, headers=HEADERS) as r:
                        assert r.status == 202
        times = [parse_rfc3339(t) for t in seen]
        assert all(S2_LITE_SHAPE.fullmatch(t) for t in seen), seen
        assert times == sorted(set(times)), seen  # distinct and increasing

        async with Emulator(config) as emu:
            assert (await _listed(http, emu.url, "again"))["created_at"] == seen[-1]  # persisted as it was
            async with http.delete(f"{emu.url}/v1/streams/again", headers=HEADERS) as r:
                assert r.status == 202
            assert await ensure_when_deleted(http, f"{emu.url}/v1/streams/again", HEADERS) == 201
            after = await _listed(http, emu.url, "again")
        assert isinstance(after["created_at"], str)
        assert parse_rfc3339(after["created_at"]) > times[-1]


def test_recreated_after_a_restart_is_later_even_when_the_wall_clock_went_back(tmp_path: Path) -> None:
    t0 = 1_800_000_000 * 10**9
    store = Store(tmp_path, now_ns=lambda: t0)  # a clock that stands still
    store.create_basin("b1")
    created = [store.create("b1", "s").created_at]
    for _ in range(3):
        store.delete("b1", "s")
        created.append(store.create("b1", "s").created_at)
    store.delete("b1", "s")  # the stream is gone: its last created_at is no longer stored with it
    store.close()
    assert [parse_rfc3339(t) for t in created] == [t0 + 1, t0 + 2, t0 + 3, t0 + 4]  # the basin took t0

    store = Store(tmp_path, now_ns=lambda: t0 - 10**9)  # the next run's wall clock is a second behind
    try:
        assert parse_rfc3339(store.create("b1", "s").created_at) == t0 + 5
        assert parse_rfc3339(store.create_basin("b2").created_at) == t0 + 6
    finally:
        store.close()


def test_data_dir_with_whole_second_created_at(tmp_path: Path) -> None:
    """A data dir written before: its streams' created_at (whole seconds) are kept, and new ones come after."""
    Store(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("INSERT INTO basins (name, created_at) VALUES ('b1', '2099-01-01T00:00:00Z')")
        conn.execute("INSERT INTO streams (basin, name, created_at) VALUES ('b1', 's', '2099-01-01T00:00:01Z')")
        conn.execute("DELETE FROM creation_clock")
    conn.close()
    store = Store(tmp_path)
    try:
        assert store.require("b1", "s").created_at == "2099-01-01T00:00:01Z"
        assert store.create("b1", "t").created_at == "2099-01-01T00:00:01.000000001Z"
    finally:
        store.close()
