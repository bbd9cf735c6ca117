"""Encrypted streams through the sidecar (docs/encryption.md): the key reaches S2 from the
app's `s2-encryption-key` metadata or the sidecar's key files; S2's answers become statuses that
name the problem; and what reads share (single flights, live feeds, replays, the history cache)
is shared only between reads with the same key, so a read with another key, or none, never gets
records read with a key. The embedded emulator seals and opens records as s2-lite does."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import uuid
from argparse import Namespace
from pathlib import Path
from typing import Any

import grpc
import pytest

from sidecar._proto.s2sidecar.v1 import stream_pb2 as pb
from sidecar.config import Config, from_args
from sidecar.encryption import EncryptionKey, KeyFiles, scope_of
from sidecar.testing import SidecarHarness

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER = base64.b64encode(bytes(range(1, 33))).decode()
BASIN = "sealed-basin"
Outcome = tuple[list[bytes], grpc.StatusCode | None, str]


@pytest.fixture(autouse=True)
def fresh_basin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A basin of its own per test: against s2-lite one server serves the whole session."""
    monkeypatch.setattr(sys.modules[__name__], "BASIN", f"sealed-{uuid.uuid4().hex[:12]}")


def md(key: str | None) -> tuple[tuple[str, str], ...]:
    return () if key is None else (("s2-encryption-key", key),)


async def read(h: SidecarHarness, stream: str, key: str | None, **req: Any) -> Outcome:
    try:
        msg = await h.stub.Read(pb.ReadRequest(**{"basin": BASIN, "stream": stream, **req}), metadata=md(key))
    except grpc.aio.AioRpcError as e:
        return [], e.code(), e.details() or ""
    return [r.body for r in msg.records], None, ""


async def session(h: SidecarHarness, stream: str, key: str | None, *, until: int, **req: Any) -> Outcome:
    """Records of a ReadSession until `until` of them arrived, or its status."""
    out: list[bytes] = []
    call = h.stub.ReadSession(pb.ReadSessionRequest(basin=BASIN, stream=stream, **req), metadata=md(key))
    try:
        async for msg in call:
            out += [r.body for r in msg.records]
            if len(out) >= until:
                call.cancel()
                break
    except grpc.aio.AioRpcError as e:
        return out, e.code(), e.details() or ""
    return out, None, ""


async def sealed(h: SidecarHarness, stream: str, n: int, *, start: int = 0) -> list[bytes]:
    bodies = [f"secret-{i}".encode() for i in range(start, start + n)]
    await h.append(stream, bodies, basin=BASIN, encryption_key=KEY)
    return bodies


async def served(h: SidecarHarness, stream: str) -> int:
    return int((await h.emulator_stats())["read_records"].get(f"{BASIN}/{stream}", 0))


async def test_reads_with_the_key_and_statuses_without_it() -> None:
    async with SidecarHarness() as h:
        await h.create_basin(BASIN, stream_cipher="aegis-256")
        bodies = await sealed(h, "s", 3)
        assert await read(h, "s", KEY, seq_num=0) == (bodies, None, "")

        _, code, details = await read(h, "s", None, seq_num=1)
        assert code is grpc.StatusCode.FAILED_PRECONDITION
        assert "missing encryption key for stream cipher 'aegis-256'" in details
        assert "s2-encryption-key" in details and "--encryption-keys-dir" in details

        _, code, details = await read(h, "s", OTHER, seq_num=0)
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert "decryption_failed" in details and "not this stream's" in details

        checked = {"": "got 0 characters", KEY + "A": "got 45 characters", KEY[:-4] + "!!!=": "not standard",
                   base64.b64encode(b"1234").decode(): "got 4", base64.urlsafe_b64encode(b"\xff" * 32).decode():
                   "not standard"}  # fmt: skip
        before = None if h.upstream_url else await h.emulator_stats()
        for bad, problem in checked.items():
            _, code, details = await read(h, "s", bad, seq_num=0)
            assert code is grpc.StatusCode.INVALID_ARGUMENT and problem in details, (bad, details)
            assert "s2-encryption-key" in details and (not bad or bad not in details)
        if before is not None:
            assert (await h.emulator_stats())["requests"] == before["requests"]  # refused before going upstream

        tail = await h.stub.CheckTail(pb.CheckTailRequest(basin=BASIN, stream="s"))  # S2 takes no key for it
        assert tail.tail.seq_num == 3

        # A plain stream ignores a well-formed key, as S2 does.
        await h.append(f"plain-{BASIN}", [b"p"])
        assert await read_plain_basin(h, f"plain-{BASIN}", KEY) == [b"p"]


async def read_plain_basin(h: SidecarHarness, stream: str, key: str | None) -> list[bytes]:
    msg = await h.stub.Read(pb.ReadRequest(stream=stream, seq_num=0), metadata=md(key))
    return [r.body for r in msg.records]


async def test_a_wrong_key_ends_a_session_at_once_without_retrying() -> None:
    async with SidecarHarness(retry_base_delay=0.05) as h:
        await h.create_basin(BASIN, stream_cipher="aes-256-gcm")
        await sealed(h, "s", 2)
        for start in ({"seq_num": 0}, {"tail_offset": 1}):
            got, code, details = await asyncio.wait_for(session(h, "s", OTHER, until=1, **start), 5)
            assert (got, code) == ([], grpc.StatusCode.PERMISSION_DENIED), details
        if h.upstream_url:
            return
        sessions = (await h.emulator_stats())["requests"][f"{BASIN}/s"]["session"]
        # One upstream session each, and the shared feed the tail_offset one looked at first (it
        # reads no record, so it does not fail): a retry would be one more per failure.
        assert sessions <= 3, sessions


async def test_live_followers_with_different_keys_at_once() -> None:
    """A right key, a wrong key and no key follow one stream at the same time: only the first gets
    records, the others their statuses; the right key's feed is not theirs."""
    async with SidecarHarness() as h:
        await h.create_basin(BASIN, stream_cipher="aegis-256")
        await sealed(h, "live", 1)
        right = [asyncio.create_task(session(h, "live", KEY, until=4, tail_offset=0)) for _ in range(2)]
        await asyncio.sleep(0.5)
        wrong = asyncio.create_task(session(h, "live", OTHER, until=1, tail_offset=0))
        none = asyncio.create_task(session(h, "live", None, until=1, tail_offset=0))
        await asyncio.sleep(0.3)
        bodies = await sealed(h, "live", 4, start=1)
        for task in right:
            assert (await asyncio.wait_for(task, 10))[:2] == (bodies, None)
        assert (await asyncio.wait_for(wrong, 10))[:2] == ([], grpc.StatusCode.PERMISSION_DENIED)
        assert (await asyncio.wait_for(none, 10))[:2] == ([], grpc.StatusCode.FAILED_PRECONDITION)
        assert h.sidecar is not None and h.sidecar.reader is not None
        scopes = {key[2] for key in h.sidecar.reader.hub.feeds}
        assert EncryptionKey.parse(KEY).fingerprint in scopes and KEY not in repr(scopes)


async def test_replays_from_the_cache_only_with_the_same_key() -> None:
    async with SidecarHarness() as h:
        await h.create_basin(BASIN, stream_cipher="aegis-256")
        bodies = await sealed(h, "replay", 50)
        assert (await session(h, "replay", KEY, until=50, seq_num=0))[:2] == (bodies, None)
        upstream = None if h.upstream_url else await served(h, "replay")
        # The same range at once: the right key from the cache, the others S2's answers.
        outcomes = await asyncio.gather(
            session(h, "replay", KEY, until=50, seq_num=0),
            read(h, "replay", KEY, seq_num=10, count=5),
            session(h, "replay", OTHER, until=1, seq_num=0),
            read(h, "replay", OTHER, seq_num=0),
            session(h, "replay", None, until=1, seq_num=0),
            read(h, "replay", None, seq_num=0),
        )
        assert outcomes[0][:2] == (bodies, None) and outcomes[1][:2] == (bodies[10:15], None)
        assert [o[:2] for o in outcomes[2:4]] == [([], grpc.StatusCode.PERMISSION_DENIED)] * 2
        assert [o[:2] for o in outcomes[4:]] == [([], grpc.StatusCode.FAILED_PRECONDITION)] * 2
        if upstream is not None:
            assert await served(h, "replay") == upstream  # the right key's replays came from the cache
        assert h.sidecar is not None and h.sidecar.reader is not None
        history = h.sidecar.reader.history
        assert history.ranges(scope_of(BASIN, "replay", EncryptionKey.parse(KEY))) == [(0, 50)]
        assert history.ranges(scope_of(BASIN, "replay", None)) == []


@pytest.mark.emulator_only  # emulator stats
async def test_a_plain_stream_read_with_a_key_is_cached_apart() -> None:
    """S2 ignores a key on a plain stream, so both reads succeed; the no-key read is not served
    what the keyed one read (it goes upstream itself)."""
    async with SidecarHarness() as h:
        await h.append("plain", [b"a", b"b"])
        assert await read_plain_basin(h, "plain", KEY) == [b"a", b"b"]
        before = int((await h.emulator_stats())["read_records"][f"{h.basin}/plain"])
        assert await read_plain_basin(h, "plain", None) == [b"a", b"b"]
        assert int((await h.emulator_stats())["read_records"][f"{h.basin}/plain"]) == before + 2


def key_dir(tmp_path: Path, basins: dict[str, str], streams: dict[str, dict[str, str]] | None = None) -> str:
    (tmp_path / "..data").mkdir()  # what a mounted Secret also holds: skipped
    for basin, key in basins.items():
        (tmp_path / basin).write_text(key + "\n")
    if streams is not None:
        (tmp_path / "streams.json").write_text(json.dumps(streams))
    return str(tmp_path)


async def test_the_sidecars_key_files_and_the_apps_key_wins(tmp_path: Path) -> None:
    odd = "orders/2026 €"  # a stream name no file could be named after
    keys = key_dir(tmp_path, {BASIN: KEY}, {BASIN: {odd: OTHER}})
    async with SidecarHarness(encryption_keys_dir=keys) as h:
        await h.create_basin(BASIN, stream_cipher="aegis-256")
        bodies = await sealed(h, "s", 2)
        await h.append(odd, [b"odd"], basin=BASIN, encryption_key=OTHER)
        assert await read(h, "s", None, seq_num=0) == (bodies, None, "")  # the basin's file
        assert await read(h, odd, None, seq_num=0) == ([b"odd"], None, "")  # streams.json wins over it
        assert (await session(h, "s", None, until=2, seq_num=0))[:2] == (bodies, None)
        # An app's key is used for its call, instead of the files'.
        assert (await read(h, "s", OTHER, seq_num=0))[1] is grpc.StatusCode.PERMISSION_DENIED
        assert (await read(h, odd, KEY, seq_num=0))[1] is grpc.StatusCode.PERMISSION_DENIED


def test_key_files_are_checked_at_start_without_showing_a_key(tmp_path: Path) -> None:
    loaded = KeyFiles.load(key_dir(tmp_path, {BASIN: KEY}, {BASIN: {"a/b": OTHER}}))
    assert loaded.lookup(BASIN, "a/b") == EncryptionKey.parse(OTHER)
    assert loaded.lookup(BASIN, "c") == EncryptionKey.parse(KEY) and loaded.lookup("other-basin", "c") is None
    assert KEY not in repr(loaded) and OTHER not in repr(loaded) and KEY not in repr(EncryptionKey.parse(KEY))
    short = base64.b64encode(b"k" * 16).decode()
    cases: list[tuple[dict[str, str], Any, str]] = [
        ({BASIN: short}, None, f"{BASIN}: the key must decode to 32 bytes, got 16"),
        ({"Not_A_Basin": KEY}, None, "'Not_A_Basin': a key file is named after its basin"),
        ({}, {BASIN: {"s": short}}, f"streams.json: {BASIN}/'s': the key must decode to 32 bytes"),
        ({}, {BASIN: ["s"]}, "streams.json: must be"),
        ({}, "{" + short, "streams.json: not JSON"),
    ]
    for i, (basins, streams, expected) in enumerate(cases):
        d = tmp_path / str(i)
        d.mkdir()
        key_dir(d, basins)
        if streams is not None:
            (d / "streams.json").write_text(streams if isinstance(streams, str) else json.dumps(streams))
        with pytest.raises(ValueError) as info:
            from_args(Namespace(), {"S2_SIDECAR_ENCRYPTION_KEYS_DIR": str(d)})
        assert expected in str(info.value) and short not in str(info.value), str(info.value)
        assert "S2_SIDECAR_ENCRYPTION_KEYS_DIR" in str(info.value)
    assert Config(encryption_keys_dir="x").encryption_keys_dir == "x"
