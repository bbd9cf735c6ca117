"""JSON and protobuf mapping, checked against hand-written bytes and S2's documented shapes."""

import pytest

from sidecar.errors import ProtocolError, RangeNotSatisfiable, S2Error
from sidecar.types import Record, StreamPosition, metered_size
from sidecar.wire import json as wjson
from sidecar.wire.names import basin_name_problem, stream_name_problem
from sidecar.wire.protobuf import decode_read_batch, encode_batch, encode_record_field

# SequencedRecord{seq_num:0, timestamp:5, headers:[{name:"a", value:"b"}], body:"hi"} as field 1 of ReadBatch.
RECORD_FIELD = b"\x0a\x0e" + b"\x10\x05" + b"\x1a\x06\x0a\x01a\x12\x01b" + b'"\x02hi'


def test_record_field_bytes() -> None:
    assert encode_record_field(0, 5, [(b"a", b"b")], b"hi") == RECORD_FIELD


def test_batch_decode_keeps_bytes_and_facts() -> None:
    data = RECORD_FIELD + b"\x12\x04\x08\x01\x10\x05"
    assert encode_batch([RECORD_FIELD], StreamPosition(1, 5)) == data
    batch = decode_read_batch(data)
    assert batch.data == data
    assert (batch.count, batch.first_seq_num, batch.last_seq_num, batch.last_timestamp) == (1, 0, 0, 5)
    assert batch.tail == StreamPosition(1, 5)
    assert batch.records() == [Record(0, 5, ((b"a", b"b"),), b"hi")]
    assert batch.metered_bytes() == 8 + 2 + 2 + 2 == metered_size([(b"a", b"b")], b"hi")


def test_bad_protobuf_and_gaps_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        decode_read_batch(b"\x0a\xff\xff")
    gap = encode_record_field(0, 1, [], b"") + encode_record_field(2, 1, [], b"")
    with pytest.raises(ProtocolError):
        decode_read_batch(gap)


def test_json_batch_base64_round_trip() -> None:
    obj = {
        "records": [{"seq_num": 3, "timestamp": 9, "headers": [["AA==", "/w=="]], "body": "AAEC"}],
        "tail": {"seq_num": 4, "timestamp": 9},
    }
    records, tail = wjson.batch_from_json(obj, wjson.Format.BASE64)
    assert records == [Record(3, 9, ((b"\x00", b"\xff"),), b"\x00\x01\x02")]
    assert tail == StreamPosition(4, 9)
    assert wjson.batch_to_json(records, tail, wjson.Format.BASE64) == obj


def test_json_leaves_out_empty_headers_and_body() -> None:
    assert wjson.record_to_json(Record(1, 2), wjson.Format.RAW) == {"seq_num": 1, "timestamp": 2}


def test_format_header() -> None:
    assert wjson.Format.from_header(None) is wjson.Format.RAW
    assert wjson.Format.from_header("json-binsafe") is wjson.Format.BASE64
    with pytest.raises(S2Error) as info:
        wjson.Format.from_header("hex")
    assert (info.value.status, info.value.code) == (400, "bad_header")


def test_error_bodies() -> None:
    e = wjson.error_from_response(404, b'{"code":"stream_not_found","message":"no such stream"}')
    assert (e.status, e.code, e.retryable) == (404, "stream_not_found", False)
    r = wjson.error_from_response(416, b'{"tail":{"seq_num":7,"timestamp":8}}')
    assert isinstance(r, RangeNotSatisfiable) and r.tail == StreamPosition(7, 8)
    odd = wjson.error_from_response(503, b"<html>busy</html>", retry_after_ms=50)
    assert (odd.code, odd.retryable, odd.retry_after_ms) == ("http_503", True, 50)
    assert wjson.error_from_response(409, b'{"code":"transaction_conflict","message":""}').retryable


def test_names() -> None:
    assert basin_name_problem("my-basin-1") is None
    for bad in ("short", "-leading-dash", "trailing-dash-", "UPPERCASE", "a" * 49):
        assert basin_name_problem(bad)
    assert stream_name_problem("orders/eu") is None
    for bad in ("", ".", "..", "x" * 513):
        assert stream_name_problem(bad)
