"""Appends: JSON in both formats, protobuf in and out, timestamps, limits, preconditions, commands."""

from __future__ import annotations

import json
import time

from .helpers import S2


async def test_json_ack_and_server_timestamps(s2: S2, stream: str) -> None:
    before = time.time_ns() // 1_000_000
    ack = await s2.append(stream, [{"body": "a"}, {"body": "b"}])
    after = time.time_ns() // 1_000_000
    ts = ack["start"]["timestamp"]
    assert before <= ts <= after
    assert ack == {
        "start": {"seq_num": 0, "timestamp": ts},
        "end": {"seq_num": 2, "timestamp": ts},
        "tail": {"seq_num": 2, "timestamp": ts},
    }
    ack = await s2.append(stream, [{"body": "c"}])
    assert ack["start"]["seq_num"] == 2 and ack["end"]["seq_num"] == 3


async def test_client_timestamps_capped_and_monotonic(s2: S2, stream: str) -> None:
    future = time.time_ns() // 1_000_000 + 3_600_000
    ack = await s2.append(stream, [{"timestamp": 50, "body": "a"}, {"timestamp": 40, "body": "b"}])
    assert ack["start"] == {"seq_num": 0, "timestamp": 50}
    assert ack["end"] == {"seq_num": 2, "timestamp": 50}  # 40 < 50: adjusted up
    ack = await s2.append(stream, [{"timestamp": 45, "body": "c"}, {"timestamp": future, "body": "d"}])
    assert ack["start"]["timestamp"] == 50
    assert ack["end"]["timestamp"] < future  # capped at the arrival time
    assert ack["end"]["timestamp"] <= time.time_ns() // 1_000_000
    _, body = await s2.read(stream, "seq_num=0")
    assert [r["timestamp"] for r in body["records"]][:3] == [50, 50, 50]


async def test_uncapped_config_keeps_future_timestamps(s2: S2, stream: str) -> None:
    config = {"timestamping": {"uncapped": True}}
    async with s2.http.put(s2.path(stream), json=config, headers=s2.headers()) as r:
        assert r.status == 201
    future = time.time_ns() // 1_000_000 + 3_600_000
    ack = await s2.append(stream, [{"timestamp": future, "body": "a"}])
    assert ack["start"]["timestamp"] == future


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _protobuf_record(timestamp: int) -> bytes:
    """`AppendInput` with one record {timestamp, body "x"}, its varint written as given (even past 2^64)."""
    record = b"\x08" + _varint(timestamp) + b"\x1a\x01x"
    return b"\x0a" + _varint(len(record)) + record


async def test_uncapped_timestamps_are_u64(s2: S2, stream: str) -> None:
    """S2 keeps client timestamps up to 2^64-1 on an uncapped stream (a u64 throughout:
    common/src/record.rs), and reads start by them; s2-lite 0.43.4 answers so for JSON and protobuf."""
    async with s2.http.put(s2.path(stream), json={"timestamping": {"uncapped": True}}, headers=s2.headers()) as r:
        assert r.status == 201
    ack = await s2.append(stream, [{"timestamp": 2**63 - 1, "body": "a"}, {"timestamp": 2**63, "body": "b"}])
    assert ack["end"] == {"seq_num": 2, "timestamp": 2**63}
    proto = s2.headers({"Content-Type": "application/protobuf"})
    async with s2.http.post(s2.path(stream, "/records"), data=_protobuf_record(2**64 - 1), headers=proto) as r:
        assert r.status == 200
        assert (await r.json())["tail"] == {"seq_num": 3, "timestamp": 2**64 - 1}
    _, body = await s2.read(stream, "seq_num=0")
    assert [r["timestamp"] for r in body["records"]] == [2**63 - 1, 2**63, 2**64 - 1]
    _, body = await s2.read(stream, f"timestamp={2**63}")
    assert [r["seq_num"] for r in body["records"]] == [1, 2]
    _, body = await s2.read(stream, f"timestamp={2**64 - 1}")
    assert [r["seq_num"] for r in body["records"]] == [2]


async def test_numbers_past_u64_are_refused(s2: S2, stream: str) -> None:
    """serde_json reads a JSON number past 2^64-1 as a float, which no u64 field takes (400
    bad_json); prost refuses a varint past it ("invalid varint", 400 bad_proto). s2-lite 0.43.4:
    "invalid type: floating point `1.8446744073709552e+19`, expected u64"."""
    for body in (
        {"records": [{"timestamp": 2**64, "body": "a"}]},
        {"records": [{"body": "a"}], "match_seq_num": 2**64},
    ):
        async with s2.http.post(s2.path(stream, "/records"), json=body, headers=s2.headers()) as r:
            assert (r.status, (await r.json())["code"]) == (400, "bad_json")
    proto = s2.headers({"Content-Type": "application/protobuf"})
    for timestamp in (2**64, 2**70):
        async with s2.http.post(s2.path(stream, "/records"), data=_protobuf_record(timestamp), headers=proto) as r:
            assert (r.status, (await r.json())["code"]) == (400, "bad_proto")
    async with s2.http.get(s2.path(stream, f"/records?timestamp={2**64}"), headers=s2.headers()) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_query")
    assert await s2.read(stream, "seq_num=0") == (416, {"tail": {"seq_num": 0, "timestamp": 0}})


async def test_base64_binary_round_trip_and_raw_is_lossy(s2: S2, stream: str) -> None:
    # b"\x00\xffhi" = AP9oaQ==, b"k\x80" = a4A=, b"\x01" = AQ==
    headers = s2.headers({"s2-format": "base64"})
    body = {"records": [{"timestamp": 3, "headers": [["a4A=", "AQ=="]], "body": "AP9oaQ=="}]}
    async with s2.http.post(s2.path(stream, "/records"), json=body, headers=headers) as r:
        assert r.status == 200
    for fmt in ("base64", "json-binsafe"):
        status, got = await s2.read(stream, "seq_num=0", {"s2-format": fmt})
        assert status == 200
        assert got["records"] == [{"seq_num": 0, "timestamp": 3, "headers": [["a4A=", "AQ=="]], "body": "AP9oaQ=="}]
    for fmt in ("raw", "json"):
        _, got = await s2.read(stream, "seq_num=0", {"s2-format": fmt})
        assert got["records"] == [
            {"seq_num": 0, "timestamp": 3, "headers": [["k\ufffd", "\x01"]], "body": "\x00\ufffdhi"}
        ]


async def test_raw_format_round_trip_unicode(s2: S2, stream: str) -> None:
    await s2.append(stream, [{"timestamp": 1, "headers": [["nämé", "välue"]], "body": "bödy ✓"}])
    _, got = await s2.read(stream, "seq_num=0")
    assert got["records"] == [{"seq_num": 0, "timestamp": 1, "headers": [["nämé", "välue"]], "body": "bödy ✓"}]
    _, got = await s2.read(stream, "seq_num=0", {"s2-format": "base64"})
    assert got["records"][0]["body"] == "YsO2ZHkg4pyT"  # UTF-8 of "bödy ✓"


async def test_bad_format_json_and_proto(s2: S2, stream: str) -> None:
    async with s2.http.post(
        s2.path(stream, "/records"), json={"records": [{"body": "x"}]}, headers=s2.headers({"s2-format": "hex"})
    ) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_header"
    async with s2.http.post(s2.path(stream, "/records"), data=b"{not json", headers=s2.headers()) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_json"
    async with s2.http.post(s2.path(stream, "/records"), json={"records": "nope"}, headers=s2.headers()) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_json"
    proto = s2.headers({"Content-Type": "application/protobuf"})
    async with s2.http.post(s2.path(stream, "/records"), data=b"\x0a\x7f\x01", headers=proto) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "bad_proto"


async def test_protobuf_append_and_ack(s2: S2, stream: str) -> None:
    # AppendInput{records: [AppendRecord{timestamp: 5, body: "hi"}, AppendRecord{timestamp: 6, headers:
    # [Header{name: "k", value: "v"}]}], match_seq_num: 0}
    rec1 = b"\x08\x05\x1a\x02hi"
    rec2 = b"\x08\x06\x12\x06\x0a\x01k\x12\x01v"
    data = b"\x0a\x06" + rec1 + b"\x0a\x0a" + rec2 + b"\x10\x00"
    headers = s2.headers({"Content-Type": "application/protobuf", "Accept": "application/protobuf"})
    async with s2.http.post(s2.path(stream, "/records"), data=data, headers=headers) as r:
        assert r.status == 200
        assert r.content_type == "application/protobuf"
        ack = await r.read()
    # AppendAck{start: {seq_num: 0, timestamp: 5}, end: {seq_num: 2, timestamp: 6}, tail: {2, 6}}
    assert ack == b"\x0a\x02\x10\x05" + b"\x12\x04\x08\x02\x10\x06" + b"\x1a\x04\x08\x02\x10\x06"
    # Protobuf in, JSON out when protobuf is not accepted.
    async with s2.http.post(
        s2.path(stream, "/records"),
        data=b"\x0a\x04\x08\x07\x1a\x00",
        headers=s2.headers({"Content-Type": "application/x-protobuf"}),
    ) as r:
        assert await r.json() == {
            "start": {"seq_num": 2, "timestamp": 7},
            "end": {"seq_num": 3, "timestamp": 7},
            "tail": {"seq_num": 3, "timestamp": 7},
        }
    _, got = await s2.read(stream, "seq_num=0")
    assert got["records"] == [
        {"seq_num": 0, "timestamp": 5, "body": "hi"},
        {"seq_num": 1, "timestamp": 6, "headers": [["k", "v"]]},
        {"seq_num": 2, "timestamp": 7},
    ]


async def _append_status(s2: S2, stream: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    async with s2.http.post(s2.path(stream, "/records"), json=body, headers=s2.headers()) as r:
        return r.status, await r.json()


async def test_batch_limits(s2: S2, stream: str) -> None:
    status, body = await _append_status(s2, stream, {"records": []})
    assert (status, body["code"]) == (422, "invalid")
    status, body = await _append_status(s2, stream, {"records": [{"body": "x"}] * 1001})
    assert (status, body["code"]) == (422, "invalid")
    assert "1000" in str(body["message"])
    # One record of 8 + 1 MiB metered bytes is over the per-record limit.
    status, body = await _append_status(s2, stream, {"records": [{"body": "x" * (1024 * 1024)}]})
    assert (status, body["code"]) == (422, "invalid")
    assert "record 0" in str(body["message"])
    # Two records that fit alone but not together.
    half = "x" * (600 * 1024)
    status, body = await _append_status(s2, stream, {"records": [{"body": half}, {"body": half}]})
    assert (status, body["code"]) == (422, "invalid")
    assert "batch" in str(body["message"])
    # Exactly at the limits: 1000 records, and one record of exactly 1 MiB metered.
    assert (await _append_status(s2, stream, {"records": [{"body": "x"}] * 1000}))[0] == 200
    assert (await _append_status(s2, stream, {"records": [{"body": "x" * (1024 * 1024 - 8)}]}))[0] == 200
    async with s2.http.get(s2.path(stream, "/records/tail"), headers=s2.headers()) as r:
        assert (await r.json())["tail"]["seq_num"] == 1001


async def test_match_seq_num(s2: S2, stream: str) -> None:
    await s2.append(stream, [{"body": "a"}, {"body": "b"}], match_seq_num=0)
    assert await _append_status(s2, stream, {"records": [{"body": "c"}], "match_seq_num": 1}) == (
        412,
        {"seq_num_mismatch": 2},
    )
    await s2.append(stream, [{"body": "c"}], match_seq_num=2)


async def test_fence_and_fencing_token(s2: S2, stream: str) -> None:
    await s2.append(stream, [{"headers": [["", "fence"]], "body": "tok-1"}])
    assert await _append_status(s2, stream, {"records": [{"body": "x"}], "fencing_token": "other"}) == (
        412,
        {"fencing_token_mismatch": "tok-1"},
    )
    await s2.append(stream, [{"body": "x"}], fencing_token="tok-1")
    await s2.append(stream, [{"body": "y"}])  # no token given: not checked
    status, body = await _append_status(s2, stream, {"records": [{"headers": [["", "fence"]], "body": "t" * 37}]})
    assert (status, body["code"]) == (422, "invalid")
    _, got = await s2.read(stream, "seq_num=0&count=1")
    assert got["records"][0]["headers"] == [["", "fence"]]


async def test_trim_is_stored_as_a_record_and_bad_commands_refused(s2: S2, stream: str) -> None:
    # A trim to seq_num 0 (8 zero bytes, big-endian) trims nothing: the command itself is returned.
    await s2.append(stream, [{"timestamp": 1, "headers": [["", "trim"]], "body": "\u0000" * 8}])
    _, got = await s2.read(stream, "seq_num=0")
    assert got["records"] == [{"seq_num": 0, "timestamp": 1, "headers": [["", "trim"]], "body": "\u0000" * 8}]
    status, body = await _append_status(s2, stream, {"records": [{"headers": [["", "trim"]], "body": "AAAAAAAAAAE="}]})
    assert (status, body["code"]) == (422, "invalid")  # a trim body must be exactly 8 bytes
    status, body = await _append_status(s2, stream, {"records": [{"headers": [["", "explode"]]}]})
    assert (status, body["code"]) == (422, "invalid")
    status, body = await _append_status(s2, stream, {"records": [{"headers": [["", "fence"], ["a", "b"]]}]})
    assert (status, body["code"]) == (422, "invalid")


async def test_bodies_over_2_mib_are_refused(s2: S2, stream: str) -> None:
    """S2 buffers a request body up to axum's default limit, 2 MiB, and refuses a larger one with its
    extractor's rejection: 400 bad_json for JSON, bad_proto for protobuf (s2-lite 0.43.4: "Failed to
    buffer the request body: length limit exceeded"). At the limit the body is taken (here a record
    over 1 MiB: 422 invalid)."""
    limit = 2 * 1024 * 1024
    frame = b'{"records":[{"body":""}]}'
    path, json_headers = s2.path(stream, "/records"), s2.headers({"Content-Type": "application/json"})
    for size, expected in ((limit, (422, "invalid")), (limit + 1, (400, "bad_json"))):
        data = frame[:-4] + b"a" * (size - len(frame)) + frame[-4:]
        assert len(data) == size
        async with s2.http.post(path, data=data, headers=json_headers) as r:
            assert (r.status, (await r.json())["code"]) == expected
    proto = s2.headers({"Content-Type": "application/protobuf"})
    async with s2.http.post(path, data=b"\0" * (limit + 1), headers=proto) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_proto")
        assert (await r.json())["message"] == "Failed to buffer the request body: length limit exceeded"
    big_create = b" " * limit + json.dumps({"stream": stream}).encode()
    async with s2.http.post(f"{s2.url}/v1/streams", data=big_create, headers=json_headers) as r:
        assert (r.status, (await r.json())["code"]) == (400, "bad_json")
