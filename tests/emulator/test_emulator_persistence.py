"""With `data_dir`, everything acknowledged survives a restart (SQLite file in that directory)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig

from .helpers import BASIN, FIVE

HEADERS = {"s2-basin": BASIN}


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    """Records, fencing tokens and streams survive; a stream whose deletion was still pending at
    the restart comes back gone, never alive (S2 resumes a pending deletion: it never undoes it)."""
    config = EmulatorConfig(port=0, data_dir=tmp_path, basins={BASIN: AUTO_CREATE}, deletion_delay=60)
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            base = f"{emu.url}/v1/streams"
            async with http.post(f"{base}/kept/records", json={"records": FIVE}, headers=HEADERS) as r:
                assert r.status == 200
            fence = {"records": [{"timestamp": 45, "headers": [["", "fence"]], "body": "tok"}]}
            async with http.post(f"{base}/kept/records", json=fence, headers=HEADERS) as r:
                assert r.status == 200
            async with http.put(f"{base}/empty", json={}, headers=HEADERS) as r:
                assert r.status == 201
            async with http.post(f"{base}/gone/records", json={"records": FIVE}, headers=HEADERS) as r:
                assert r.status == 200
            async with http.delete(f"{base}/gone", headers=HEADERS) as r:
                assert r.status == 202
            async with http.get(f"{base}/kept/records?seq_num=0", headers=HEADERS) as r:
                before = await r.json()
            async with http.get(f"{base}?prefix=", headers=HEADERS) as r:
                listed = await r.json()
            assert [(s["name"], s["deleted_at"] is not None) for s in listed["streams"]] == [
                ("empty", False),
                ("gone", True),  # being deleted when the emulator stops
                ("kept", False),
            ]
        assert (tmp_path / "emulator.sqlite3").exists()

        async with Emulator(config) as emu:
            base = f"{emu.url}/v1/streams"
            async with http.get(f"{base}/kept/records?seq_num=0", headers=HEADERS) as r:
                assert await r.json() == before
            assert len(before["records"]) == 6
            async with http.get(f"{base}/kept/records/tail", headers=HEADERS) as r:
                assert await r.json() == {"tail": {"seq_num": 6, "timestamp": 45}}
            async with http.get(f"{base}?prefix=", headers=HEADERS) as r:
                assert await r.json() == {**listed, "streams": [s for s in listed["streams"] if s["name"] != "gone"]}
            async with http.get(f"{base}/gone", headers=HEADERS) as r:  # its config: no auto-create here
                assert r.status == 404
            wrong = {"records": [{"body": "x"}], "fencing_token": "other"}
            async with http.post(f"{base}/kept/records", json=wrong, headers=HEADERS) as r:
                assert r.status == 412
                assert await r.json() == {"fencing_token_mismatch": "tok"}
            right = {"records": [{"body": "x"}], "fencing_token": "tok", "match_seq_num": 6}
            async with http.post(f"{base}/kept/records", json=right, headers=HEADERS) as r:
                assert r.status == 200
                assert (await r.json())["start"]["seq_num"] == 6
            async with http.get(f"{base}/kept/records/tail", headers=HEADERS) as r:
                assert (await r.json())["tail"]["seq_num"] == 7
            async with http.get(
                f"{base}/kept/records?seq_num=4&count=1", headers={**HEADERS, "Accept": "application/protobuf"}
            ) as r:
                # The stored record field of {4, 40, "r4"}; a catch-up batch carries no tail.
                assert await r.read() == b"\x0a\x08\x08\x04\x10\x28\x22\x02r4"


async def test_data_dir_from_before_basins_were_stored(tmp_path: Path) -> None:
    """A data dir written before basins, trims and retention were stored still loads: its streams
    keep their records, and their basin takes the config the emulator is started with."""
    import sqlite3

    conn = sqlite3.connect(tmp_path / "emulator.sqlite3")
    conn.executescript(
        """
        CREATE TABLE streams (id INTEGER PRIMARY KEY, basin TEXT NOT NULL, name TEXT NOT NULL,
            created_at TEXT NOT NULL, config TEXT, fencing_token TEXT, UNIQUE (basin, name));
        CREATE TABLE records (stream_id INTEGER NOT NULL, seq_num INTEGER NOT NULL, timestamp INTEGER NOT NULL,
            metered INTEGER NOT NULL, field BLOB NOT NULL, PRIMARY KEY (stream_id, seq_num)) WITHOUT ROWID;
        INSERT INTO streams VALUES (1, 'testbasin1', 'old', '2026-01-01T00:00:00Z', NULL, NULL);
        INSERT INTO records VALUES (1, 0, 7, 10, x'0a06100722027230');  -- ReadBatch.records {7, "r0"}
        """
    )
    conn.commit()
    conn.close()
    config = EmulatorConfig(port=0, data_dir=tmp_path, basins={BASIN: AUTO_CREATE})
    async with aiohttp.ClientSession() as http, Emulator(config) as emu:
        async with http.get(f"{emu.url}/v1/streams/old/records?seq_num=0", headers=HEADERS) as r:
            assert await r.json() == {"records": [{"seq_num": 0, "timestamp": 7, "body": "r0"}]}
        async with http.post(f"{emu.url}/v1/streams/new/records", json={"records": FIVE}, headers=HEADERS) as r:
            assert r.status == 200  # the basin took create_stream_on_append from the config


async def test_u64_timestamps_survive_a_restart(tmp_path: Path) -> None:
    """SQLite integers are signed 64-bit: timestamps from 2^63 to 2^64-1 (S2 keeps them, on an uncapped
    stream) are stored as their two's complement and come back whole, in order."""
    config = EmulatorConfig(port=0, data_dir=tmp_path, basins={BASIN: AUTO_CREATE})
    stamps = [5, 2**63 - 1, 2**63, 2**64 - 1]
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            url = f"{emu.url}/v1/streams/u"
            async with http.put(url, json={"timestamping": {"uncapped": True}}, headers=HEADERS) as r:
                assert r.status == 201
            records = [{"timestamp": t, "body": "x"} for t in stamps]
            async with http.post(f"{url}/records", json={"records": records}, headers=HEADERS) as r:
                assert r.status == 200
        async with Emulator(config) as emu:
            url = f"{emu.url}/v1/streams/u"
            async with http.get(f"{url}/records?seq_num=0", headers=HEADERS) as r:
                assert [rec["timestamp"] for rec in (await r.json())["records"]] == stamps
            async with http.get(f"{url}/records?timestamp={2**63}", headers=HEADERS) as r:
                assert [rec["seq_num"] for rec in (await r.json())["records"]] == [2, 3]
