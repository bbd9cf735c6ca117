"""With `data_dir`, everything acknowledged survives a restart (SQLite file in that directory)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig

from .helpers import BASIN, FIVE

HEADERS = {"s2-basin": BASIN}


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(port=0, data_dir=tmp_path, basins={BASIN: AUTO_CREATE})
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            base = f"{emu.url}/v1/streams"
            async with http.post(f"{base}/kept/records", json={"records": FIVE}, headers=HEADERS) as r:
                assert r.status == 200
            fence = {"records": [{"timestamp": 45, "headers": [["", "fence"]], "body": "tok"}]}
            async with http.post(f"{base}/kept/records", json=fence, headers=HEADERS) as r:
                assert r.status == 200
            async with http.put(f"{base}/empty", headers=HEADERS) as r:
                assert r.status == 201
            async with http.post(f"{base}/gone/records", json={"records": FIVE}, headers=HEADERS) as r:
                assert r.status == 200
            async with http.delete(f"{base}/gone", headers=HEADERS) as r:
                assert r.status == 202
            async with http.get(f"{base}/kept/records?seq_num=0", headers=HEADERS) as r:
                before = await r.json()
            async with http.get(f"{base}?prefix=", headers=HEADERS) as r:
                listed = await r.json()
        assert (tmp_path / "emulator.sqlite3").exists()

        async with Emulator(config) as emu:
            base = f"{emu.url}/v1/streams"
            async with http.get(f"{base}/kept/records?seq_num=0", headers=HEADERS) as r:
                assert await r.json() == before
            assert len(before["records"]) == 6
            async with http.get(f"{base}/kept/records/tail", headers=HEADERS) as r:
                assert await r.json() == {"tail": {"seq_num": 6, "timestamp": 45}}
            async with http.get(f"{base}?prefix=", headers=HEADERS) as r:
                assert await r.json() == listed
            assert [s["name"] for s in listed["streams"]] == ["empty", "kept"]
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
