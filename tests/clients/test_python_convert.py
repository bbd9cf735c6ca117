"""The Python client's records made from the sidecar's messages (`_convert.records`, which skips
SequencedRecord.__init__ for speed) are the records the public constructor makes: same type,
fields, equality, hash, repr, frozenness and dataclass behaviour."""

from __future__ import annotations

import dataclasses

import pytest
from s2sidecar_client import ReadBatch, SequencedRecord, StreamPosition
from s2sidecar_client._convert import batch, records
from s2sidecar_client._proto.s2sidecar.v1 import stream_pb2 as pb

CASES = [
    SequencedRecord(0, 1700000000000, (), b"x" * 100),
    SequencedRecord(1, 1700000000001, ((b"k", b"v"), (b"k", b"w"), (b"", b"")), b"with headers"),
    SequencedRecord(2**64 - 1, 0, ((b"", b"fence-token"),), b""),  # a command record
    SequencedRecord(3, 4),  # the defaults: no headers, empty body
]


def message(*recs: SequencedRecord) -> list[pb.SequencedRecord]:
    return [
        pb.SequencedRecord(
            seq_num=r.seq_num,
            timestamp=r.timestamp,
            headers=[pb.Header(name=n, value=v) for n, v in r.headers],
            body=r.body,
        )
        for r in recs
    ]


@pytest.mark.parametrize("expected", CASES, ids=["plain", "headers", "command", "defaults"])
def test_a_converted_record_is_the_constructed_one(expected: SequencedRecord) -> None:
    (got,) = records(message(expected))
    assert type(got) is SequencedRecord
    assert got == expected and hash(got) == hash(expected) and repr(got) == repr(expected)
    assert dataclasses.astuple(got) == dataclasses.astuple(expected)
    assert type(got.headers) is tuple and all(type(h) is tuple for h in got.headers)
    assert got.is_command == expected.is_command
    assert dataclasses.replace(got, body=b"other") == dataclasses.replace(expected, body=b"other")
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.body = b"changed"  # type: ignore[misc]


def test_a_batch_keeps_order_tail_and_caught_up() -> None:
    msg = pb.ReadSessionResponse(
        records=message(*CASES), tail=pb.StreamPosition(seq_num=9, timestamp=5), caught_up=True
    )
    assert batch(msg) == ReadBatch(tuple(CASES), StreamPosition(9, 5), caught_up=True)
    assert batch(pb.ReadResponse(records=message(*CASES))) == ReadBatch(tuple(CASES), None)
    assert batch(pb.ReadSessionResponse()) == ReadBatch()
