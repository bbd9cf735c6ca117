"""Stream management, basins (header and Host prefix), names, auth and the plain error bodies."""

from __future__ import annotations

import re

import aiohttp
from yarl import URL

from sidecar.emulator import AUTO_CREATE, Emulator, EmulatorConfig

from .helpers import BASIN, FIVE, S2, until_gone


async def test_create_then_conflict_then_ensure_and_config(s2: S2, stream: str) -> None:
    url = f"{s2.url}/v1/streams"
    async with s2.http.post(
        url, json={"stream": stream, "config": {"storage_class": "standard"}}, headers=s2.headers()
    ) as r:
        assert r.status == 201
        info = await r.json()
    assert info["name"] == stream
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", info["created_at"])
    async with s2.http.post(url, json={"stream": stream}, headers=s2.headers()) as r:
        assert r.status == 409
        assert (await r.json())["code"] == "resource_already_exists"
    async with s2.http.put(s2.path(stream), json={"storage_class": "standard"}, headers=s2.headers()) as r:
        assert r.status == 200  # ensure: existing, same config
        assert await r.json() == info
    async with s2.http.put(s2.path(stream + "-new"), json={}, headers=s2.headers()) as r:
        assert r.status == 201  # ensure: created now
        assert (await r.json())["name"] == stream + "-new"
    async with s2.http.get(s2.path(stream), headers=s2.headers()) as r:
        assert r.status == 200
        assert (await r.json())["storage_class"] == "standard"


async def test_list_with_prefix_start_after_limit(s2: S2, stream: str) -> None:
    for suffix in ("c", "a", "b", "d"):
        async with s2.http.put(s2.path(f"{stream}/{suffix}"), json={}, headers=s2.headers()) as r:
            assert r.status == 201

    async def names(query: str) -> tuple[list[str], bool]:
        async with s2.http.get(f"{s2.url}/v1/streams?{query}", headers=s2.headers()) as r:
            assert r.status == 200
            body = await r.json()
        assert all(set(s) == {"name", "created_at", "deleted_at", "cipher"} for s in body["streams"])
        return [s["name"] for s in body["streams"]], body["has_more"]

    assert await names(f"prefix={stream}/") == ([f"{stream}/a", f"{stream}/b", f"{stream}/c", f"{stream}/d"], False)
    assert await names(f"prefix={stream}/&limit=2") == ([f"{stream}/a", f"{stream}/b"], True)
    assert await names(f"prefix={stream}/&start_after={stream}/b") == ([f"{stream}/c", f"{stream}/d"], False)
    async with s2.http.get(f"{s2.url}/v1/streams?limit=x", headers=s2.headers()) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_query"
    # A list parameter given twice is serde's "duplicate field" (s2-lite 0.43.4: 400 bad_query); one
    # S2 does not know may repeat.
    async with s2.http.get(f"{s2.url}/v1/streams?limit=1&limit=2", headers=s2.headers()) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_query"
    assert await names(f"prefix={stream}/&limit=1&x=1&x=2") == ([f"{stream}/a"], True)


async def test_delete_then_not_found(s2: S2, stream: str) -> None:
    s2 = await s2.create_basin()  # S2's defaults: no stream is created by a read or a tail check
    async with s2.http.put(s2.path(stream), json={}, headers=s2.headers()) as r:
        assert r.status == 201
    five = stream
    await s2.append(five, FIVE)
    async with s2.http.delete(s2.path(five), headers=s2.headers()) as r:
        assert r.status == 202
    # S2 finishes a deletion in the background (test_emulator_deletion.py): wait it out.
    assert (await until_gone(s2.http, s2.path(five), s2.headers()))[0] == 404
    for suffix in ("", "/records/tail", "/records?seq_num=0"):
        async with s2.http.get(s2.path(five, suffix), headers=s2.headers()) as r:
            assert r.status == 404, suffix
            body = await r.json()
        assert body["code"] == "stream_not_found"
        assert five in body["message"]
    async with s2.http.delete(s2.path(five), headers=s2.headers()) as r:
        assert r.status == 404


async def test_tail_of_new_and_written_streams(s2: S2, stream: str) -> None:
    async with s2.http.put(s2.path(stream), json={}, headers=s2.headers()) as r:
        assert r.status == 201
    async with s2.http.get(s2.path(stream, "/records/tail"), headers=s2.headers()) as r:
        assert await r.json() == {"tail": {"seq_num": 0, "timestamp": 0}}
    await s2.append(stream, [{"timestamp": 7, "body": "a"}, {"timestamp": 9, "body": "b"}])
    async with s2.http.get(s2.path(stream, "/records/tail"), headers=s2.headers()) as r:
        assert await r.json() == {"tail": {"seq_num": 2, "timestamp": 9}}


async def test_stream_names_are_percent_decoded(s2: S2) -> None:
    name = "dir/sub dir/ü?#%"
    await s2.append(name, [{"timestamp": 1, "body": "x"}])
    raw = f"{s2.url}/v1/streams/dir%2Fsub%20dir%2F%C3%BC%3F%23%25/records/tail"
    async with s2.http.get(raw, headers=s2.headers()) as r:
        assert await r.json() == {"tail": {"seq_num": 1, "timestamp": 1}}


async def test_bad_stream_names(s2: S2) -> None:
    for raw in ("%2E", "%2E%2E", "x" * 513, "%FF"):
        url = URL(f"{s2.url}/v1/streams/{raw}/records/tail", encoded=True)  # sent as written
        async with s2.http.get(url, headers=s2.headers()) as r:
            assert r.status == 400, raw
            assert (await r.json())["code"] == "bad_path"


async def test_basin_from_header_or_host_prefix(s2: S2, emulator: Emulator, stream: str) -> None:
    async with s2.http.get(f"{s2.url}/v1/streams") as r:  # Host is 127.0.0.1:port: no basin
        assert r.status == 400
        body = await r.json()
    assert body["code"] == "bad_header"
    assert "s2-basin" in body["message"]
    async with s2.http.put(f"{s2.url}/v1/basins/hostbasin1", json={"config": AUTO_CREATE}) as r:
        assert r.status in (200, 201)
    host = {"Host": f"hostbasin1.localhost:{emulator.port}"}
    async with s2.http.post(s2.path(stream, "/records"), json={"records": [{"body": "h"}]}, headers=host) as r:
        assert r.status == 200
    # The record went to basin "hostbasin1", not to BASIN.
    async with s2.http.get(s2.path(stream, "/records/tail"), headers={"s2-basin": "hostbasin1"}) as r:
        assert (await r.json())["tail"]["seq_num"] == 1
    async with s2.http.get(s2.path(stream, "/records/tail"), headers=s2.headers()) as r:
        assert await r.json() == {"tail": {"seq_num": 0, "timestamp": 0}}  # created empty by this check
    for bad in ("short", "UPPERCASE-basin", "-leading-dash"):
        async with s2.http.get(f"{s2.url}/v1/streams", headers={"s2-basin": bad}) as r:
            assert r.status == 400, bad
            assert (await r.json())["code"] == "bad_header"


async def test_require_token() -> None:
    secret = "s3cret-token"
    async with (
        Emulator(EmulatorConfig(port=0, require_token=secret, basins={BASIN: AUTO_CREATE})) as emu,
        aiohttp.ClientSession() as http,
    ):
        url = f"{emu.url}/v1/streams"
        for auth in (None, "Bearer wrong-token", "Basic s3cret-token", "Bearer "):
            headers = {"s2-basin": BASIN} | ({"Authorization": auth} if auth else {})
            async with http.get(url, headers=headers) as r:
                assert r.status == 401, auth
                text = await r.text()
            assert '"code":"authn"' in text
            assert "wrong-token" not in text and secret not in text
        async with http.get(url, headers={"s2-basin": BASIN, "Authorization": f"Bearer {secret}"}) as r:
            assert r.status == 200
        async with http.get(f"{emu.url}/_emulator/stats") as r:  # hooks need no token
            assert r.status == 200
            assert (await r.json())["requests_total"] == 5
