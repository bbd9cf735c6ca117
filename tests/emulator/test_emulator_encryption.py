"""Encrypted streams, as S2 has them (client-supplied keys): a basin's `stream_cipher` becomes each
new stream's `cipher`, appends and reads carry the key in `s2-encryption-key`, and records are
stored sealed. Each answer is the one s2-lite 0.43.4 gave to the same request (the differential
test, test_against_s2_lite.py, compares them live).

S2's source: docs/adr/csek.md (the design), common/src/encryption.rs (the header and the key's
resolution, with their messages), storage/src/record/encryption.rs (what is sealed, and how),
lite/src/handlers/v1/error.rs (bad_header, decryption_failed), lite/src/handlers/v1/records.rs
(SSE error events, s2s terminal frames), lite/src/backend/streams.rs (`cipher` from the basin).
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import nacl.bindings
import pytest

from sidecar.emulator import Emulator, EmulatorConfig
from sidecar.emulator.encryption import RecordCipher, resolve, stream_aad
from sidecar.emulator.store import DB_FILE
from sidecar.errors import S2Error
from sidecar.types import AppendRecord
from sidecar.wire import s2s
from sidecar.wire.protobuf import encode_append_input

from .helpers import S2, S2S, SSE, Events, Frames

KEY = base64.b64encode(bytes(range(1, 33))).decode()
OTHER_KEY = base64.b64encode(bytes([9] * 32)).decode()
CIPHERS = ("aegis-256", "aes-256-gcm")
SECRET = "top-secret-body"
# One record of 8 + 2 + len("h") + len("hv") + 15 = 28 metered bytes.
RECORD = {"headers": [["h", "hv"]], "body": SECRET}
RECORD_BYTES = 8 + 2 + 1 + 2 + len(SECRET)


async def _encrypted(s2: S2, cipher: str = "aegis-256") -> S2:
    return await s2.create_basin({"stream_cipher": cipher})


async def _call(
    s2: S2, method: str, stream: str, suffix: str, body: Any = None, key: str | None = None, **headers: str
) -> tuple[int, Any]:
    extra = dict(headers)
    if key is not None:
        extra["s2-encryption-key"] = key
    async with s2.http.request(method, s2.path(stream, suffix), json=body, headers=s2.headers(extra)) as r:
        text = await r.text()
        return r.status, (await r.json(content_type=None)) if text else None


async def _create(s2: S2, stream: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"stream": stream} if config is None else {"stream": stream, "config": config}
    async with s2.http.post(f"{s2.url}/v1/streams", json=body, headers=s2.headers()) as r:
        assert r.status == 201, await r.text()
        info: dict[str, Any] = await r.json()
        return info


def _err(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


MISSING = _err("bad_header", "missing encryption key for stream cipher 'aegis-256'")
FAILED = _err("decryption_failed", "record decryption failed")


# -- The cipher: basin config, stream metadata ------------------------------------------------


async def test_a_basin_cipher_becomes_each_new_stream_cipher_for_its_lifetime(s2: S2) -> None:
    """lite/src/backend/streams.rs `provision_stream`: a new stream's `cipher` is the basin's
    `stream_cipher` then; a later change to the basin leaves existing streams as they were."""
    basin = await _encrypted(s2)
    async with s2.http.get(f"{s2.url}/v1/basins/{basin.basin}") as r:
        assert (await r.json())["stream_cipher"] == "aegis-256"
    assert (await _create(basin, "first"))["cipher"] == "aegis-256"
    # A `cipher` in the stream's config is not a field of S2's StreamConfig: ignored, not shown.
    assert (await _create(basin, "asked", {"cipher": "aes-256-gcm"}))["cipher"] == "aegis-256"
    status, config = await _call(basin, "GET", "asked", "")
    assert status == 200 and "cipher" not in config
    # The basin's cipher changes (PUT reconfigures a basin whole: a config without it is plain).
    async with s2.http.put(f"{s2.url}/v1/basins/{basin.basin}", json={"config": {"stream_cipher": "aes-256-gcm"}}) as r:
        assert r.status == 200
    assert (await _create(basin, "second"))["cipher"] == "aes-256-gcm"
    async with s2.http.put(f"{s2.url}/v1/basins/{basin.basin}", json={"config": {}}) as r:
        assert r.status == 200
    async with s2.http.get(f"{s2.url}/v1/basins/{basin.basin}") as r:
        assert (await r.json())["stream_cipher"] is None
    assert (await _create(basin, "third"))["cipher"] is None
    async with s2.http.get(f"{s2.url}/v1/streams", headers=basin.headers()) as r:
        listed = await r.json()
    assert [(s["name"], s["cipher"]) for s in listed["streams"]] == [
        ("asked", "aegis-256"),
        ("first", "aegis-256"),
        ("second", "aes-256-gcm"),
        ("third", None),
    ]
    # The first stream still needs its key, and its own cipher's.
    status, body = await _call(basin, "POST", "first", "/records", {"records": [RECORD]})
    assert (status, body) == (400, MISSING)


async def test_an_unknown_cipher_is_refused_as_serde_refuses_it(s2: S2) -> None:
    for cipher in ("chacha20", "AES-256-GCM"):  # names are lowercase only
        async with s2.http.post(
            f"{s2.url}/v1/basins", json={"basin": "cipher-refused", "config": {"stream_cipher": cipher}}
        ) as r:
            assert r.status == 400
            body = await r.json()
        assert body["code"] == "bad_json"
        assert body["message"] == f"unknown variant `{cipher}`, expected `aegis-256` or `aes-256-gcm`"


async def test_a_stream_created_by_its_first_append_takes_the_basin_cipher(s2: S2) -> None:
    basin = await s2.create_basin({"stream_cipher": "aes-256-gcm", "create_stream_on_append": True})
    status, _ = await _call(basin, "POST", "auto", "/records", {"records": [RECORD]}, key=KEY)
    assert status == 200
    status, body = await _call(basin, "GET", "auto", "/records?seq_num=0")
    assert (status, body) == (400, _err("bad_header", "missing encryption key for stream cipher 'aes-256-gcm'"))


# -- The key: appends and reads ----------------------------------------------------------------


@pytest.mark.parametrize("cipher", CIPHERS)
async def test_records_round_trip_with_the_key_headers_and_body(s2: S2, cipher: str) -> None:
    basin = await _encrypted(s2, cipher)
    await _create(basin, "s")
    status, ack = await _call(basin, "POST", "s", "/records", {"records": [RECORD, RECORD]}, key=KEY)
    assert status == 200 and ack["end"]["seq_num"] == 2
    status, body = await _call(basin, "GET", "s", "/records?seq_num=0", key=KEY)
    assert status == 200
    assert [(r["seq_num"], r["headers"], r["body"]) for r in body["records"]] == [
        (0, [["h", "hv"]], SECRET),
        (1, [["h", "hv"]], SECRET),
    ]
    # Protobuf reads are opened too: the body is in the answer, in clear.
    async with basin.http.get(
        basin.path("s", "/records?seq_num=0&count=1"),
        headers=basin.headers({"s2-encryption-key": KEY, "Accept": "application/protobuf"}),
    ) as r:
        assert r.status == 200 and SECRET.encode() in await r.read()


async def test_no_key_malformed_keys_and_the_header_limit(s2: S2) -> None:
    """common/src/encryption.rs: the header is 1-44 characters once trimmed (checked before
    anything else, plain streams too); the key is padded standard base64 of 32 bytes."""
    basin = await _encrypted(s2)
    await _create(basin, "s")
    plain = await s2.create_basin()
    await _create(plain, "p")
    rec = {"records": [RECORD]}
    b64 = base64.b64encode
    prefix = "invalid encryption key"
    cases: list[tuple[str | None, dict[str, str]]] = [
        (None, MISSING),
        ("!!!!", _err("bad_header", f"{prefix} for stream cipher 'aegis-256': invalid base64")),
        (KEY.rstrip("="), _err("bad_header", f"{prefix} for stream cipher 'aegis-256': invalid base64")),
        (
            base64.urlsafe_b64encode(bytes([0xFB] * 32)).decode(),
            _err("bad_header", f"{prefix} for stream cipher 'aegis-256': invalid base64"),
        ),
        (b64(b"abcd").decode(), _err("bad_header", f"{prefix} length for stream cipher 'aegis-256': 4")),
        (b64(b"a" * 33).decode(), _err("bad_header", f"{prefix} length for stream cipher 'aegis-256': 33")),
    ]
    for key, error in cases:
        for method, suffix, body in (("POST", "/records", rec), ("GET", "/records?seq_num=0", None)):
            assert await _call(basin, method, "s", suffix, body, key=key) == (400, error), (key, method)
    too_long = "A" * 45
    for key, length in ((too_long, 45), ("   ", 0)):
        header_error = _err(
            "bad_header",
            f"Invalid header `s2-encryption-key`: invalid encryption key: key material length {length} is out of range",
        )
        for target, stream in ((basin, "s"), (plain, "p")):
            assert await _call(target, "POST", stream, "/records", rec, key=key) == (400, header_error)
            assert await _call(target, "GET", stream, "/records?seq_num=0", key=key) == (400, header_error)
    # A plain stream ignores a key that passes the header's limit, even one that is not base64.
    for key in (KEY, "!!!!"):
        status, _ = await _call(plain, "POST", "p", "/records", rec, key=key)
        assert status == 200
        status, body = await _call(plain, "GET", "p", "/records?seq_num=0", key=key)
        assert status == 200 and body["records"][0]["body"] == SECRET
    # Tail checks take no key: neither needed, nor even parsed.
    for key in (None, too_long):
        assert await _call(basin, "GET", "s", "/records/tail", key=key) == (
            200,
            {"tail": {"seq_num": 0, "timestamp": 0}},
        )


async def test_what_is_checked_before_the_key(s2: S2) -> None:
    """The header before the body; the body and the batch before the key (it is resolved once
    the stream is open); a missing stream is 404 before any key."""
    basin = await _encrypted(s2)
    await _create(basin, "s")
    status, body = await _call(
        basin, "POST", "s", "/records", None, key="A" * 45, **{"Content-Type": "application/json"}
    )
    assert (status, body["code"]) == (400, "bad_header")
    status, body = await _call(basin, "POST", "s", "/records", None, **{"Content-Type": "application/json"})
    assert (status, body["code"]) == (400, "bad_json")
    status, body = await _call(basin, "POST", "s", "/records", {"records": []})
    assert (status, body["code"]) == (422, "invalid")
    status, body = await _call(basin, "GET", "s", "/records?seq_num=1&timestamp=1")
    assert (status, body["code"]) == (422, "invalid")
    status, body = await _call(basin, "GET", "nope", "/records?seq_num=0")
    assert (status, body["code"]) == (404, "stream_not_found")
    # A read past the tail (416 with a key) needs the key first.
    assert await _call(basin, "GET", "s", "/records?seq_num=99") == (400, MISSING)
    status, body = await _call(basin, "POST", "s", "/records", {"records": [RECORD], "match_seq_num": 5})
    assert (status, body) == (400, MISSING)


async def test_a_wrong_key_appends_but_cannot_read(s2: S2) -> None:
    """docs/adr/csek.md: "Appends will succeed even if a different key is provided"; the read of
    a record sealed with another key fails its tag: 400 decryption_failed, the whole read."""
    basin = await _encrypted(s2)
    await _create(basin, "s")
    await _call(basin, "POST", "s", "/records", {"records": [RECORD]}, key=KEY)
    status, _ = await _call(basin, "POST", "s", "/records", {"records": [{"body": "other"}]}, key=OTHER_KEY)
    assert status == 200
    assert await _call(basin, "GET", "s", "/records?seq_num=0", key=KEY) == (400, FAILED)
    status, body = await _call(basin, "GET", "s", "/records?seq_num=0&count=1", key=KEY)
    assert status == 200 and body["records"][0]["body"] == SECRET
    status, body = await _call(basin, "GET", "s", "/records?seq_num=1", key=OTHER_KEY)
    assert status == 200 and body["records"][0]["body"] == "other"
    async with basin.http.get(
        basin.path("s", "/records?seq_num=0"),
        headers=basin.headers({"s2-encryption-key": OTHER_KEY, "Accept": "application/protobuf"}),
    ) as r:
        assert (r.status, await r.json(content_type=None)) == (400, FAILED)


async def test_command_records_stay_in_clear(s2: S2) -> None:
    """storage/src/record/encryption.rs `encrypt_record`: commands are stored as they are, so a
    read of commands alone opens with any well-formed key (but not with none)."""
    basin = await _encrypted(s2)
    await _create(basin, "s")
    fence = {"headers": [["", "fence"]], "body": "tok"}
    await _call(basin, "POST", "s", "/records", {"records": [RECORD, fence]}, key=KEY)
    status, body = await _call(basin, "GET", "s", "/records?seq_num=1", key=OTHER_KEY)
    assert status == 200 and body["records"][0]["headers"] == [["", "fence"]] and body["records"][0]["body"] == "tok"
    assert await _call(basin, "GET", "s", "/records?seq_num=1") == (400, MISSING)
    # The fencing token works as on any stream.
    status, body = await _call(basin, "POST", "s", "/records", {"records": [RECORD], "fencing_token": "x"}, key=KEY)
    assert status == 412 and body == {"fencing_token_mismatch": "tok"}


async def test_metered_sizes_are_the_plaintext_sizes(s2: S2) -> None:
    """storage/src/record/encryption.rs: "The stored `metered_size` remains the logical plaintext
    metered size", so `bytes` bounds and SSE ids count as for a plain stream."""
    basin = await _encrypted(s2)
    await _create(basin, "s")
    await _call(basin, "POST", "s", "/records", {"records": [RECORD, RECORD]}, key=KEY)
    status, body = await _call(basin, "GET", "s", f"/records?seq_num=0&bytes={RECORD_BYTES}", key=KEY)
    assert status == 200 and len(body["records"]) == 1
    status, body = await _call(basin, "GET", "s", f"/records?seq_num=0&bytes={RECORD_BYTES - 1}", key=KEY)
    assert (status, body) == (200, {"records": []})
    async with basin.http.get(
        basin.path("s", "/records?seq_num=0&count=2"), headers=basin.headers({**SSE, "s2-encryption-key": KEY})
    ) as r:
        assert f"id: 1,2,{2 * RECORD_BYTES}\n" in await Events(r).next()


# -- Sessions -------------------------------------------------------------------------------------


async def test_sessions_need_the_key_before_they_start(s2: S2) -> None:
    basin = await _encrypted(s2)
    await _create(basin, "s")
    for headers in (SSE, S2S):
        async with basin.http.get(basin.path("s", "/records?seq_num=0"), headers=basin.headers(headers)) as r:
            assert (r.status, await r.json(content_type=None)) == (400, MISSING)
    async with basin.http.post(basin.path("s", "/records"), data=b"", headers=basin.headers(S2S)) as r:
        assert (r.status, await r.json(content_type=None)) == (400, MISSING)


async def test_a_wrong_key_ends_an_sse_session_with_an_error_event(s2: S2) -> None:
    """lite/src/handlers/v1/records.rs: the error as an `error` event, and no `[DONE]` after it."""
    basin = await _encrypted(s2)
    await _create(basin, "s")
    await _call(basin, "POST", "s", "/records", {"records": [RECORD]}, key=KEY)
    headers = basin.headers({**SSE, "s2-encryption-key": OTHER_KEY})
    async with basin.http.get(basin.path("s", "/records?seq_num=0&count=1"), headers=headers) as r:
        assert r.status == 200
        events = Events(r)
        assert await events.next() == (
            'event: error\ndata: {"code":"decryption_failed","message":"record decryption failed"}\n\n'
        )
        assert await events.rest() == b""


async def test_a_wrong_key_ends_an_s2s_session_with_a_terminal_frame(s2: S2) -> None:
    basin = await _encrypted(s2)
    await _create(basin, "s")
    await _call(basin, "POST", "s", "/records", {"records": [RECORD]}, key=KEY)
    headers = basin.headers({**S2S, "s2-encryption-key": OTHER_KEY})
    async with basin.http.get(basin.path("s", "/records?seq_num=0&count=1"), headers=headers) as r:
        assert r.status == 200
        frames = Frames(r)
        # As s2-lite 0.43.4 sent it: length 0x44, terminal flag 0x80, status 400, the error's JSON.
        assert await frames.next() == (
            b'\x00\x00D\x80\x01\x90{"code":"decryption_failed","message":"record decryption failed"}'
        )
        assert await frames.at_end()


async def test_an_s2s_append_session_seals_with_its_key(s2: S2) -> None:
    basin = await _encrypted(s2, "aes-256-gcm")
    await _create(basin, "s")
    frame = s2s.encode_frame(encode_append_input([AppendRecord(body=SECRET.encode(), timestamp=5)], None, None))
    headers = basin.headers({**S2S, "s2-encryption-key": KEY})
    async with basin.http.post(basin.path("s", "/records"), data=frame, headers=headers) as r:
        assert r.status == 200
        await r.read()
    status, body = await _call(basin, "GET", "s", "/records?seq_num=0", key=KEY)
    assert status == 200 and body["records"][0]["body"] == SECRET
    assert await _call(basin, "GET", "s", "/records?seq_num=0", key=OTHER_KEY) == (400, FAILED)


# -- Storage ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cipher", CIPHERS)
async def test_the_data_dir_holds_no_plaintext_of_an_encrypted_stream(tmp_path: Path, cipher: str) -> None:
    """Headers and body are sealed before they reach SQLite; the stream keeps its cipher over a
    restart. A plain stream's body, written alongside, is found: the search can find one."""
    config = EmulatorConfig(port=0, data_dir=tmp_path)
    secret, header_value, clear = "sealed-3f9a1c-body", "sealed-header-77d2", "clear-0b41e8-body"
    async with aiohttp.ClientSession() as http:
        async with Emulator(config) as emu:
            s2 = S2(http, emu.url)
            basin = await _encrypted(s2, cipher)
            await _create(basin, "s")
            rec = {"headers": [["h", header_value]], "body": secret}
            assert (await _call(basin, "POST", "s", "/records", {"records": [rec]}, key=KEY))[0] == 200
            plain = await s2.create_basin()
            await _create(plain, "p")
            assert (await _call(plain, "POST", "p", "/records", {"records": [{"body": clear}]}))[0] == 200
            stored = _files(tmp_path)  # the database and its write-ahead log, as they are now
        assert clear.encode() in stored
        assert secret.encode() not in stored and header_value.encode() not in stored
        assert KEY.encode() not in stored and bytes(range(1, 33)) not in stored
        with sqlite3.connect(tmp_path / DB_FILE) as db:  # the checkpointed file alone, too
            rows = b"".join(bytes(blob) for (blob,) in db.execute("SELECT field FROM records"))
        assert clear.encode() in rows and secret.encode() not in rows
        async with Emulator(config) as emu:
            basin = S2(http, emu.url, basin.basin)
            async with http.get(f"{emu.url}/v1/streams", headers=basin.headers()) as r:
                assert [s["cipher"] for s in (await r.json())["streams"]] == [cipher]
            status, body = await _call(basin, "GET", "s", "/records?seq_num=0", key=KEY)
            assert status == 200 and body["records"][0]["body"] == secret
            assert await _call(basin, "GET", "s", "/records?seq_num=0", key=OTHER_KEY) == (400, FAILED)


def _files(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


# -- The sealing itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cipher", "format_id", "nonce", "tag"), [("aegis-256", 1, 32, 32), ("aes-256-gcm", 2, 12, 16)]
)
def test_a_sealed_record_is_format_id_nonce_ciphertext_tag(cipher: str, format_id: int, nonce: int, tag: int) -> None:
    """S2's layout (storage/src/record/encryption.rs), with a fresh random nonce per record; the
    associated data is the stream's identity, so a record moved to another stream does not open."""
    sealer = resolve(cipher, KEY, stream_aad("basin-a", "s"))
    assert sealer is not None
    plaintext = b"headers and body"
    one, two = sealer.seal(plaintext), sealer.seal(plaintext)
    assert one[0] == two[0] == format_id
    assert len(one) == 1 + nonce + len(plaintext) + tag
    assert one[1 : 1 + nonce] != two[1 : 1 + nonce]
    assert sealer.open(one) == sealer.open(two) == plaintext
    elsewhere = RecordCipher(cipher, sealer.key, stream_aad("basin-a", "t"))
    with pytest.raises(S2Error, match="record decryption failed"):
        elsewhere.open(one)
    tampered = one[:-1] + bytes([one[-1] ^ 1])
    with pytest.raises(S2Error, match="record decryption failed"):
        sealer.open(tampered)


def test_pynacl_aegis256_sizes() -> None:
    """What the sealed layout relies on from PyNaCl's libsodium: AEGIS-256 with a 32-byte key and
    nonce and a 32-byte tag (S2's own binding uses a 16-byte tag: storage layouts differ, not behaviour)."""
    assert nacl.bindings.crypto_aead_aegis256_KEYBYTES == 32
    assert nacl.bindings.crypto_aead_aegis256_NPUBBYTES == 32
    assert nacl.bindings.crypto_aead_aegis256_ABYTES == 32


def test_a_plain_stream_resolves_to_no_cipher_whatever_the_key() -> None:
    assert resolve(None, "!!!!", b"") is None
    assert resolve(None, None, b"") is None
