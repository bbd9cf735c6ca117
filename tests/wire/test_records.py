"""A serialized batch's records read as bytes (`sidecar.wire.records`), and what that relies on
from the protobuf library's serialization: these fail loudly if upb ever writes differently."""

from __future__ import annotations

import pytest

from sidecar._proto.s2.v1 import records_pb2 as pb
from sidecar.types import Record, StreamPosition, metered_size
from sidecar.wire.protobuf import (
    batch_from_records,
    decode_read_batch,
    encode_batch,
    merge_batches,
    without_command_records,
)
from sidecar.wire.records import (
    RECORDS_TAG,
    TAIL_TAG,
    TRIM_HEADER,
    command_records,
    decode_varint,
    encode_varint,
    index_records,
    metered_sizes,
    trim_point,
    without_tails,
)


def trim(seq_num: int, to: int) -> Record:
    return Record(seq_num, 2000, ((b"", b"trim"),), to.to_bytes(8, "big"))


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**64 - 1])
def test_varints_round_trip_as_protobuf_writes_them(n: int) -> None:
    # After field 1's tag (a zero value is left out of a message: its varint is one 0 byte).
    written = pb.StreamPosition(seq_num=n).SerializeToString()[1:] if n else b"\x00"
    assert encode_varint(n) == written
    assert decode_varint(b"\xff" + written + b"\x00", 1) == (n, 1 + len(written))


def test_a_varint_cut_short_is_an_index_error() -> None:
    with pytest.raises(IndexError):
        decode_varint(encode_varint(300)[:1], 0)


def test_upb_writes_a_record_seq_num_then_timestamp_then_the_rest() -> None:
    """`index_records` reads only the two leading varints of each record."""
    data = pb.SequencedRecord(seq_num=5, timestamp=9, headers=[pb.Header(name=b"a", value=b"b")], body=b"x")
    serialized = data.SerializeToString()
    assert serialized[:4] == b"\x08\x05\x10\x09"
    assert pb.SequencedRecord(seq_num=0, timestamp=0, body=b"x").SerializeToString()[0] == 0x22  # zeros left out


def test_index_finds_every_record_and_timestamp_including_zero_values() -> None:
    b = batch_from_records([Record(0, 0), Record(1, 7, ((b"a", b"b"),), b"body")], StreamPosition(2, 7))
    offsets, stamps = index_records(b.data, 2)
    assert list(stamps) == [0, 7]
    assert offsets[0] == 0 and offsets[2] < len(b.data)  # the tail field is after the records
    assert b.data[offsets[2]] == TAIL_TAG
    assert batch_from_records([Record(0, 0)], None).data == b.data[offsets[0] : offsets[1]]
    with pytest.raises(ValueError, match=r"not a ReadBatch\.records field"):
        index_records(b.data, 3)  # the third field is the tail


def test_without_tails_keeps_exactly_the_record_fields() -> None:
    parts = [batch_from_records([Record(i, i)], StreamPosition(i + 1, i)) for i in range(3)]
    merged = merge_batches(parts)  # tails between the records
    assert merged.data.count(bytes([TAIL_TAG])) == 3
    data = without_tails(merged.data)
    assert data == batch_from_records([Record(i, i) for i in range(3)], None).data
    assert all(data[o] == RECORDS_TAG for o in index_records(data, 3)[0][:-1])
    assert merged.record_fields() == data
    plain = parts[0].data[: index_records(parts[0].data, 1)[0][1]]
    assert decode_read_batch(plain).record_fields() is plain  # no tail: the bytes as they are


def test_metered_sizes_are_s2s_formula_per_record() -> None:
    records = [Record(0, 1), Record(1, 2, ((b"ab", b"cde"), (b"", b"x")), b"body"), Record(2, 3, (), b"z" * 300)]
    batch = batch_from_records(records, StreamPosition(3, 3))
    expected = [metered_size(r.headers, r.body) for r in records]
    assert expected == [8, 8 + 2 * 2 + 5 + 1 + 4, 8 + 300]
    assert list(metered_sizes(batch.data)) == expected
    assert batch.metered_bytes() == sum(expected)


def test_the_trim_header_is_how_upb_writes_a_trim_command() -> None:
    command = pb.SequencedRecord(seq_num=3, headers=[pb.Header(name=b"", value=b"trim")], body=bytes(8))
    assert TRIM_HEADER in command.SerializeToString()


def test_trim_point_reads_trim_commands_as_s2_applies_them() -> None:
    plain = [Record(i, i, (), b"x") for i in range(3)]
    assert trim_point(batch_from_records(plain, None).data) == 0
    assert trim_point(batch_from_records([*plain, trim(3, 2)], None).data) == 2
    assert trim_point(batch_from_records([trim(3, 500)], None).data) == 4  # never past itself + 1
    assert trim_point(batch_from_records([trim(3, 1), trim(4, 2)], None).data) == 2  # the furthest
    not_commands = [
        Record(0, 0, ((b"x", b"trim"),), bytes(7) + b"\x05"),  # a named header: not a command
        Record(1, 0, ((b"", b"trim"),), b"\x05"),  # a body that is not 8 bytes
        Record(2, 0, ((b"", b"trim"), (b"", b"trim")), bytes(7) + b"\x05"),  # two headers
        Record(3, 0, (), TRIM_HEADER + bytes(8)),  # the bytes in a body
        Record(4, 0, ((b"", b"fence"),), bytes(8)),  # another command
    ]
    assert trim_point(batch_from_records(not_commands, None).data) == 0


# Headers of every shape a command test must tell apart: S2's SDKs' rule is exactly one header,
# with an empty name (s2-streamstore/s2 sdk/src/types.rs `is_command_record`,
# s2-streamstore/s2-sdk-python `SequencedRecord.is_command_record`).
HEADER_SHAPES: list[tuple[tuple[bytes, bytes], ...]] = [
    (),
    ((b"", b"fence"),),
    ((b"", b"trim"),),
    ((b"", b""),),  # an empty header: serialized as a zero-length field
    ((b"", b"x" * 200),),  # a value whose length takes two varint bytes
    ((b"n", b""),),
    ((b"n", b"v"),),
    ((b"", b"fence"), (b"", b"trim")),  # two headers: not a command
    ((b"", b"fence"), (b"n", b"v")),
    ((b"n", b"v"), (b"", b"fence")),
]


def test_command_records_are_those_s2s_sdks_call_commands() -> None:
    records = [
        Record(i, ts, headers, body)
        for i, (ts, headers, body) in enumerate(
            (ts, headers, body)
            for ts in (0, 5, 2**40)
            for headers in HEADER_SHAPES
            for body in (b"", b"\x1a\x02\x12\x00", bytes(300))
        )
    ]
    data = batch_from_records(records, None).data
    offsets, _ = index_records(data, len(records))
    expected = [
        i
        for i, r in enumerate(pb.ReadBatch.FromString(data).records)
        if len(r.headers) == 1 and r.headers[0].name == b""
    ]
    assert expected  # the shapes hold commands, and records that are not
    assert command_records(data, offsets) == expected


def test_an_empty_name_written_out_still_makes_a_command() -> None:
    # proto3 leaves an empty name out; a writer that puts it in (field 1, length 0) means the same.
    header = b"\x0a\x00\x12\x05fence"
    record = b"\x08\x07\x10\x01\x1a" + encode_varint(len(header)) + header
    data = bytes([RECORDS_TAG]) + encode_varint(len(record)) + record
    assert pb.ReadBatch.FromString(data).records[0].headers[0].name == b""
    assert command_records(data, index_records(data, 1)[0]) == [0]


def test_without_command_records_keeps_the_others_byte_for_byte_with_the_tail() -> None:
    records = [
        Record(10, 1, ((b"a", b"1"),), b"d0"),
        Record(11, 2, ((b"", b"fence"),), b"tok"),
        Record(12, 3, (), b"d2"),
        trim(13, 0),
    ]
    tail = StreamPosition(14, 4)
    batch = batch_from_records(records, tail)
    shown = without_command_records(batch)
    assert shown.records() == [records[0], records[2]]
    assert (shown.count, shown.first_seq_num, shown.last_seq_num, shown.last_timestamp) == (2, 10, 12, 3)
    assert shown.tail == tail
    fields = [batch_from_records([r], None).data for r in (records[0], records[2])]
    assert shown.data == encode_batch(fields, tail)
    assert batch.reaches_tail and not shown.reaches_tail  # judge catching up before filtering


def test_without_command_records_of_only_commands_is_empty_with_the_tail() -> None:
    batch = batch_from_records([trim(3, 1), Record(4, 1, ((b"", b"fence"),), b"")], StreamPosition(5, 1))
    shown = without_command_records(batch)
    assert (shown.count, shown.first_seq_num, shown.tail) == (0, None, StreamPosition(5, 1))
    assert pb.ReadBatch.FromString(shown.data).records == []
    plain = batch_from_records([Record(4, 1, (), b"x")], None)
    assert without_command_records(plain) is plain  # nothing to leave out: the same bytes


@pytest.mark.parametrize(
    ("last", "tail", "reaches"),
    [
        (None, StreamPosition(5, 0), True),
        (4, StreamPosition(5, 0), True),
        (3, StreamPosition(5, 0), False),
        (4, None, False),
    ],
)
def test_a_batch_reaches_its_tail_as_s2s_sdks_judge_it(
    last: int | None, tail: StreamPosition | None, reaches: bool
) -> None:
    records = [] if last is None else [Record(last, 0, (), b"")]
    assert batch_from_records(records, tail).reaches_tail is reaches
