"""A serialized `ReadBatch`'s records, read as bytes: the byte-level work of the history cache.

The history cache keeps S2's `ReadBatch.records` fields byte for byte and serves slices of them
(concatenated record fields are a valid `ReadBatch`). This module is where those bytes are read:
the framing (varints), where each record's field starts and its timestamp, each record's metered
size, which records are command records, and the trim commands a batch may hold. Pure functions
over bytes.
"""

from __future__ import annotations

from array import array

from sidecar._proto.s2.v1 import records_pb2 as pb
from sidecar.types import metered_size

__all__ = [
    "RECORDS_TAG",
    "TAIL_TAG",
    "TRIM_HEADER",
    "command_records",
    "decode_varint",
    "encode_varint",
    "index_records",
    "metered_sizes",
    "trim_point",
    "without_tails",
]

RECORDS_TAG = 0x0A  # field 1, length-delimited: ReadBatch.records
TAIL_TAG = 0x12  # field 2, length-delimited: ReadBatch.tail
_SEQ_NUM_TAG = 0x08  # SequencedRecord field 1, varint
_TIMESTAMP_TAG = 0x10  # SequencedRecord field 2, varint
_HEADERS_TAG = 0x1A  # SequencedRecord field 3, length-delimited: Header
_HEADER_NAME_TAG = 0x0A  # Header field 1, length-delimited

# A trim command is a record with one header of empty name and value "trim", and as body the
# seq_num to trim up to, 8 bytes big-endian. Serialized inside a SequencedRecord, that header is
# field 3 (Header), 6 bytes long, holding field 2 (value) = b"trim" (the empty name is left out).
TRIM_HEADER = b"\x1a\x06\x12\x04trim"
_TRIM_BODY_BYTES = 8


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos`, and the position after it; IndexError when `data` ends inside it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def index_records(data: bytes, count: int) -> tuple[array[int], array[int]]:
    """Where each of the first `count` record fields of a serialized `ReadBatch` starts (plus
    where the last one ends), and each record's timestamp. Reads only the framing and the two
    leading varints of each record (upb writes fields in number order; zero values are left out).
    The records must be the leading fields (`without_tails` makes them so)."""
    offsets: array[int] = array("q")
    stamps: array[int] = array("q")
    pos = 0
    for _ in range(count):
        if data[pos] != RECORDS_TAG:
            raise ValueError(f"not a ReadBatch.records field at byte {pos}")
        length, start = decode_varint(data, pos + 1)
        end = start + length
        offsets.append(pos)
        q, ts = start, 0
        if q < end and data[q] == _SEQ_NUM_TAG:
            _, q = decode_varint(data, q + 1)
        if q < end and data[q] == _TIMESTAMP_TAG:
            ts, q = decode_varint(data, q + 1)
        stamps.append(ts)
        pos = end
    offsets.append(pos)
    return offsets, stamps


def command_records(data: bytes, offsets: array[int]) -> list[int]:
    """Which records (by index) of record fields `data`, framed by `offsets` (`index_records`), are
    command records: exactly one header, with an empty name (S2's SDKs' `is_command_record`: fence
    and trim). Reads each record's leading fields only: seq_num, timestamp, then its headers, in
    field-number order as S2 and upb write them; an empty name is left out, or written empty."""
    found = []
    for i in range(len(offsets) - 1):
        _, pos = decode_varint(data, offsets[i] + 1)
        end = offsets[i + 1]
        if pos < end and data[pos] == _SEQ_NUM_TAG:
            _, pos = decode_varint(data, pos + 1)
        if pos < end and data[pos] == _TIMESTAMP_TAG:
            _, pos = decode_varint(data, pos + 1)
        if pos >= end or data[pos] != _HEADERS_TAG:
            continue  # no headers
        length, header = decode_varint(data, pos + 1)
        after = header + length
        if after < end and data[after] == _HEADERS_TAG:
            continue  # more than one header
        if length == 0 or data[header] != _HEADER_NAME_TAG or data[header + 1] == 0:
            found.append(i)
    return found


def without_tails(data: bytes) -> bytes:
    """The record fields of a serialized `ReadBatch` alone: tail fields, which may sit anywhere in
    batches merged by concatenation, are left out (a copy)."""
    parts = []
    pos = 0
    while pos < len(data):
        tag = data[pos]
        length, start = decode_varint(data, pos + 1)
        if tag == RECORDS_TAG:
            parts.append(data[pos : start + length])
        pos = start + length
    return b"".join(parts)


def metered_sizes(data: bytes) -> array[int]:
    """The metered size of each record of a serialized `ReadBatch` (decodes it: a pass over the
    records, only made when a read bounds bytes)."""
    return array(
        "q",
        (metered_size([(h.name, h.value) for h in r.headers], r.body) for r in pb.ReadBatch.FromString(data).records),
    )


def trim_point(data: bytes) -> int:
    """Where the trim command records of a serialized `ReadBatch` trim the stream to (0: none).
    S2's effective point of one command is min(requested, the command's seq_num + 1)."""
    if TRIM_HEADER not in data:
        return 0  # the common case, found without decoding
    point = 0
    for r in pb.ReadBatch.FromString(data).records:
        if (
            len(r.headers) == 1
            and r.headers[0].name == b""
            and r.headers[0].value == b"trim"
            and len(r.body) == _TRIM_BODY_BYTES
        ):
            point = max(point, min(int.from_bytes(r.body, "big"), r.seq_num + 1))
    return point
