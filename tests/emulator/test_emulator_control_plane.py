"""The control plane as S2's SDKs use it: reconfiguration (PATCH), `s2-provision-result`,
`s2-request-token` retries, and `s2-stream-config` on auto-create; each as s2-lite 0.43.4 answered
it (the differential test compares them step by step)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sidecar.emulator.store import Store

from .helpers import S2

RETAIN_DAY = {"retention_policy": {"age": 86400}}


async def call(
    s2: S2, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, str | None]:
    """(status, JSON body, s2-provision-result) of one request."""
    async with s2.http.request(method, url, json=body, headers=s2.headers(headers)) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None, r.headers.get("s2-provision-result")


async def test_create_and_ensure_say_what_they_did(s2: S2) -> None:
    """S2: lite/src/handlers/v1/streams.rs `create_stream` (201, `created`), `ensure_stream` (201
    `created`, 200 `updated` when the resolved config changed, 200 `noop` when not); basins alike
    (lite/src/handlers/v1/basins.rs)."""
    basin = await s2.create_basin()
    url = f"{s2.url}/v1/streams"
    status, info, result = await call(basin, "POST", url, {"stream": "a"})
    assert (status, info["name"], result) == (201, "a", "created")
    assert (await call(basin, "PUT", basin.path("b"), {}))[::2] == (201, "created")
    assert (await call(basin, "PUT", basin.path("b"), {}))[::2] == (200, "noop")
    assert (await call(basin, "PUT", basin.path("b"), {"storage_class": "express"}))[::2] == (
        200,
        "noop",
    )  # S2's default
    assert (await call(basin, "PUT", basin.path("b"), RETAIN_DAY))[::2] == (200, "updated")
    assert (await call(basin, "PUT", basin.path("b"), RETAIN_DAY))[::2] == (200, "noop")
    name = f"basin-{uuid.uuid4().hex[:12]}"
    basin_url = f"{s2.url}/v1/basins/{name}"
    assert (await call(s2, "PUT", basin_url, {}))[::2] == (201, "created")
    assert (await call(s2, "PUT", basin_url, {}))[::2] == (200, "noop")
    assert (await call(s2, "PUT", basin_url, {"config": {"create_stream_on_read": True}}))[::2] == (200, "updated")
    assert (await call(s2, "PUT", basin_url, {"config": {"create_stream_on_read": True}}))[::2] == (200, "noop")
    assert (await call(s2, "POST", f"{s2.url}/v1/basins", {"basin": name + "x"}))[::2] == (201, "created")


async def test_a_retried_create_with_its_request_token_is_a_noop(s2: S2) -> None:
    """Same token and same config: the stream as it is, 201 `noop`; another token, none, or another
    config: 409 (S2: lite/src/backend/streams.rs `provision_stream`, `creation_idempotency_key`)."""
    basin = await s2.create_basin()
    url = f"{s2.url}/v1/streams"
    token = {"s2-request-token": "retry-1"}
    first = await call(basin, "POST", url, {"stream": "a", "config": RETAIN_DAY}, token)
    again = await call(basin, "POST", url, {"stream": "a", "config": RETAIN_DAY}, token)
    assert first[::2] == (201, "created") and again[::2] == (201, "noop")
    assert again[1] == first[1]  # same created_at: the stream was not made again
    for headers, config in (({"s2-request-token": "retry-2"}, RETAIN_DAY), (None, RETAIN_DAY), (token, None)):
        status, err, _ = await call(basin, "POST", url, {"stream": "a", "config": config}, headers)
        assert (status, err["code"]) == (409, "resource_already_exists")
    status, err, _ = await call(basin, "POST", url, {"stream": "b"}, {"s2-request-token": "t" * 37})
    assert (status, err["code"]) == (400, "bad_header")
    name = f"basin-{uuid.uuid4().hex[:12]}"
    assert (await call(s2, "POST", f"{s2.url}/v1/basins", {"basin": name}, token))[::2] == (201, "created")
    assert (await call(s2, "POST", f"{s2.url}/v1/basins", {"basin": name}, token))[::2] == (201, "noop")
    assert (await call(s2, "POST", f"{s2.url}/v1/basins", {"basin": name}))[0] == 409


async def test_patch_reconfigures_a_stream(s2: S2) -> None:
    """A field left out is kept, null resets it to the basin's default (then S2's), nested objects
    are patched field by field; the answer is the whole config (S2: lite/src/backend/streams.rs
    `reconfigure_stream`, common/src/config.rs `OptionalStreamConfig::reconfigure`)."""
    basin = await s2.create_basin({"default_stream_config": {"storage_class": "standard"}})
    await call(basin, "PUT", basin.path("s"), {"timestamping": {"mode": "arrival", "uncapped": True}})
    status, config, _ = await call(basin, "PATCH", basin.path("s"), RETAIN_DAY)
    assert status == 200
    assert config == {
        "storage_class": "standard",
        "retention_policy": {"age": 86400},
        "timestamping": {"mode": "arrival", "uncapped": True},
        "delete_on_empty": {"min_age_secs": 0},
    }
    status, config, _ = await call(
        basin, "PATCH", basin.path("s"), {"timestamping": {"mode": None}, "storage_class": "express"}
    )
    assert config["timestamping"] == {"mode": "client-prefer", "uncapped": True}
    assert config["storage_class"] == "express"
    status, config, _ = await call(basin, "PATCH", basin.path("s"), {"storage_class": None, "retention_policy": None})
    assert (config["storage_class"], config["retention_policy"]) == ("standard", {"age": 604800})
    async with s2.http.get(basin.path("s"), headers=basin.headers()) as r:
        assert await r.json() == config  # kept
    status, err, _ = await call(basin, "PATCH", basin.path("nope"), {})
    assert (status, err["code"]) == (404, "stream_not_found")
    status, err, _ = await call(basin, "PATCH", basin.path("s"), {"retention_policy": {"age": 0}})
    assert (status, err["code"]) == (422, "invalid")
    status, err, _ = await call(basin, "PATCH", basin.path("s"), {"storage_class": 3})
    assert (status, err["code"]) == (400, "bad_json")
    status, config, _ = await call(basin, "PATCH", basin.path("s"), {"storage_class": "glacier"})
    assert (status, config["storage_class"]) == (200, "glacier")  # s2-lite keeps any string


async def test_patch_reconfigures_a_basin(s2: S2) -> None:
    """S2: common/src/config.rs `BasinConfig::reconfigure`: `stream_cipher` set or cleared (streams
    created afterwards take it), the flags set, `default_stream_config` patched (null clears it)."""
    basin = await s2.create_basin()
    url = f"{s2.url}/v1/basins/{basin.basin}"
    status, config, _ = await call(s2, "PATCH", url, {"stream_cipher": "aegis-256", "create_stream_on_append": True})
    assert status == 200
    assert config == {
        "default_stream_config": None,
        "stream_cipher": "aegis-256",
        "create_stream_on_append": True,
        "create_stream_on_read": False,
    }
    status, info, _ = await call(basin, "POST", f"{s2.url}/v1/streams", {"stream": "sealed"})
    assert info["cipher"] == "aegis-256"
    _, config, _ = await call(s2, "PATCH", url, {"stream_cipher": None, "default_stream_config": RETAIN_DAY})
    assert config["stream_cipher"] is None and config["default_stream_config"]["retention_policy"] == {"age": 86400}
    assert config["create_stream_on_append"] is True  # left out: kept
    _, config, _ = await call(s2, "PATCH", url, {"default_stream_config": {"storage_class": "standard"}})
    assert config["default_stream_config"] == {"storage_class": "standard", "retention_policy": {"age": 86400}}
    _, config, _ = await call(s2, "PATCH", url, {"default_stream_config": None})
    assert config["default_stream_config"] is None
    for bad in ({"stream_cipher": "rot13"}, {"create_stream_on_read": None}):
        status, err, _ = await call(s2, "PATCH", url, bad)
        assert (status, err["code"]) == (400, "bad_json"), bad
    status, err, _ = await call(s2, "PATCH", f"{s2.url}/v1/basins/no-such-basin-here", {})
    assert (status, err["code"]) == (404, "basin_not_found")


async def test_s2_stream_config_applies_to_a_stream_created_by_an_append_or_read(s2: S2) -> None:
    """The header's StreamConfig goes over the basin's defaults for a stream the request creates,
    is ignored for one that exists, and is refused when it does not parse or validate, even then
    (S2: api/src/v1/config.rs `StreamConfigHeader`; lite/src/backend/read.rs `open_for_read`)."""
    basin = await s2.create_basin({"create_stream_on_append": True, "create_stream_on_read": True})
    header = {"s2-stream-config": json.dumps(RETAIN_DAY)}
    async with s2.http.post(
        basin.path("w", "/records"), json={"records": [{"body": "x"}]}, headers=basin.headers(header)
    ) as r:
        assert r.status == 200
    async with s2.http.get(basin.path("r", "/records?seq_num=0&wait=0"), headers=basin.headers(header)) as r:
        assert r.status == 416  # created empty
    other = {"s2-stream-config": json.dumps({"retention_policy": {"age": 5}})}
    async with s2.http.get(basin.path("r", "/records?seq_num=0"), headers=basin.headers(other)) as r:
        assert r.status == 416  # exists: ignored
    for name in ("w", "r"):
        async with s2.http.get(basin.path(name), headers=basin.headers()) as r:
            assert (await r.json())["retention_policy"] == {"age": 86400}, name
    for bad in ("{", '{"retention_policy": {"age": 0}}', '{"storage_class": 3}'):
        async with s2.http.get(
            basin.path("w", "/records?seq_num=0"), headers=basin.headers({"s2-stream-config": bad})
        ) as r:
            assert (r.status, (await r.json())["code"]) == (400, "bad_header"), bad


async def test_request_tokens_and_reconfigurations_survive_a_restart(tmp_path: Path) -> None:
    """With --data-dir, a create retried after a restart is still a no-op, and a PATCH is kept."""
    store = Store(tmp_path)
    store.provision_basin("basin-one", None, "tok")
    store.provision("basin-one", "s", RETAIN_DAY, "tok")
    store.reconfigure("basin-one", "s", {"storage_class": "standard"})
    store.close()
    store = Store(tmp_path)
    try:
        assert store.provision_basin("basin-one", None, "tok")[1] == "noop"
        stream, outcome = store.provision("basin-one", "s", RETAIN_DAY, "tok")
        assert outcome == "noop"
        config = stream.config or {}
        assert (config["storage_class"], config["retention_policy"]) == ("standard", {"age": 86400})
    finally:
        store.close()
