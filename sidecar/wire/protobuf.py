"""S2's protobuf messages (`application/protobuf` bodies and s2s frame payloads).

Batches travel as bytes: the sidecar's gRPC batches share S2's field numbers, so a batch read
from upstream is forwarded as it came. `ReadBatch` wraps those bytes with the few facts the
read logic needs (count, last position, tail), decoded once by upb in C.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from sidecar._proto.s2.v1 import records_pb2 as pb
from sidecar.errors import ProtocolError
from sidecar.types import AppendRecord, Record, StreamPosition, metered_size
from sidecar.wire.records import (
    RECORDS_TAG,
    TAIL_TAG,
    command_records,
    encode_varint,
    index_records,
    metered_sizes,
    without_tails,
)

__all__ = [
    "ReadBatch",
    "batch_from_records",
    "decode_append_ack",
    "decode_append_input",
    "decode_read_batch",
    "encode_append_ack",
    "encode_append_input",
    "encode_batch",
    "encode_position",
    "encode_record_field",
    "merge_batches",
    "metered_size",
    "records_from_fields",
    "slice_batch",
    "split_batch",
    "without_command_records",
]

_RECORDS_TAG = bytes([RECORDS_TAG])
_TAIL_TAG = bytes([TAIL_TAG])


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """One batch from a read: S2's `ReadBatch` protobuf bytes and what is known of them."""

    data: bytes
    count: int
    first_seq_num: int | None
    last_seq_num: int | None
    last_timestamp: int | None
    tail: StreamPosition | None
    # The upstream asked for a reconnect after this batch (s2s flag; see `sidecar.wire.s2s`).
    reconnect_advised: bool = False

    @property
    def reaches_tail(self) -> bool:
        """Whether every record before `tail` was read by the time this batch ends: a heartbeat,
        or records ending right before the tail. S2's SDKs call a session caught up on such a
        batch (s2-streamstore/s2 sdk/src/session/read.rs `ReadUpdate::from_batch`)."""
        tail = self.tail
        return tail is not None and (self.last_seq_num is None or self.last_seq_num + 1 == tail.seq_num)

    def records(self) -> list[Record]:
        """Decode every record (off the hot path: tests, JSON fallbacks)."""
        return _decode_records(self.data)

    def metered_bytes(self) -> int:
        """Metered size of all records; costs a pass over them, so only asked when `bytes` is bounded."""
        return sum(metered_sizes(self.data))

    def record_fields(self) -> bytes:
        """The batch's record fields alone (what history answers are made of). A batch without a
        tail is nothing else (a ReadBatch has two fields), so it is returned as is; one with a tail
        may hold tail fields anywhere (batches merged by concatenation): those are left out."""
        return self.data if self.tail is None else without_tails(self.data)


def decode_read_batch(data: bytes) -> ReadBatch:
    """Parse a serialized `ReadBatch`, keeping the bytes for forwarding."""
    try:
        msg = pb.ReadBatch.FromString(data)
    except DecodeError as e:
        raise ProtocolError(f"malformed protobuf ReadBatch from upstream: {e}") from None
    records = msg.records
    n = len(records)
    tail = StreamPosition(msg.tail.seq_num, msg.tail.timestamp) if msg.HasField("tail") else None
    if n == 0:
        return ReadBatch(data, 0, None, None, None, tail)
    last = records[n - 1]
    first_seq, last_seq = records[0].seq_num, last.seq_num
    if last_seq - first_seq != n - 1:
        raise ProtocolError(f"malformed upstream batch: {n} records from seq_num {first_seq} to {last_seq}")
    return ReadBatch(data, n, first_seq, last_seq, last.timestamp, tail)


def merge_batches(batches: Sequence[ReadBatch]) -> ReadBatch:
    """One batch holding several consecutive ones. Serialized protobuf messages merge by
    concatenation (repeated fields append, the last `tail` wins), so no record is touched:
    the sidecar sends fewer, larger gRPC messages, which Python's gRPC moves much faster."""
    if len(batches) == 1:
        return batches[0]
    with_records = [b for b in batches if b.count]
    for prev, nxt in itertools.pairwise(with_records):
        assert prev.last_seq_num is not None
        if nxt.first_seq_num != prev.last_seq_num + 1:
            raise ProtocolError(
                f"malformed upstream batches: seq_num {prev.last_seq_num} then {nxt.first_seq_num}, not contiguous"
            )
    tail = next((b.tail for b in reversed(batches) if b.tail is not None), None)
    advised = any(b.reconnect_advised for b in batches)
    if not with_records:
        return ReadBatch(b"".join(b.data for b in batches), 0, None, None, None, tail, advised)
    first, last = with_records[0], with_records[-1]
    return ReadBatch(
        b"".join(b.data for b in batches),
        sum(b.count for b in with_records),
        first.first_seq_num,
        last.last_seq_num,
        last.last_timestamp,
        tail,
        advised,
    )


def split_batch(batch: ReadBatch, max_bytes: int) -> list[ReadBatch]:
    """`batch` as consecutive batches of at most `max_bytes` serialized bytes each, cut at record
    boundaries (the tail, and the reconnect advice, go with the last part). A rare path: a merged
    or header-heavy batch can encode to about twice its metered size, past what a gRPC client
    accepts in one message. A single record larger than `max_bytes` travels alone."""
    if len(batch.data) <= max_bytes or batch.count <= 1:
        return [batch]
    msg = pb.ReadBatch.FromString(batch.data)
    tail = msg.tail if msg.HasField("tail") else None
    room = max_bytes - (tail.ByteSize() + 2 if tail is not None else 0)
    groups: list[list[pb.SequencedRecord]] = [[]]
    size = 0
    for record in msg.records:
        n = record.ByteSize()
        field_size = 1 + len(encode_varint(n)) + n
        if groups[-1] and size + field_size > room:
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += field_size
    parts = []
    for i, group in enumerate(groups):
        last = i == len(groups) - 1
        part = pb.ReadBatch(records=group, tail=tail if last else None)
        decoded = decode_read_batch(part.SerializeToString())
        if last and batch.reconnect_advised:
            decoded = dataclasses.replace(decoded, reconnect_advised=True)
        parts.append(decoded)
    return parts


def slice_batch(batch: ReadBatch, from_seq_num: int) -> ReadBatch:
    """The part of `batch` from `from_seq_num` on (re-encodes the kept records: a rare path,
    for a reader joining a shared feed in the middle of a batch)."""
    if batch.first_seq_num is None or from_seq_num <= batch.first_seq_num:
        return batch
    msg = pb.ReadBatch.FromString(batch.data)
    del msg.records[: from_seq_num - batch.first_seq_num]
    return decode_read_batch(msg.SerializeToString())


def without_command_records(batch: ReadBatch) -> ReadBatch:
    """`batch` without its command records (S2's SDKs' `ignore_command_records`), the tail and the
    reconnect advice kept. The batch itself when it holds none; else the kept record fields,
    sliced out as they are. What is left may skip seq_nums, and be empty: it is an app's answer,
    not something the read logic merges or resumes from."""
    if not batch.count:
        return batch
    fields = batch.record_fields()
    offsets, stamps = index_records(fields, batch.count)
    dropped = set(command_records(fields, offsets))
    if not dropped:
        return batch
    keep = [i for i in range(batch.count) if i not in dropped]
    data = encode_batch([fields[offsets[i] : offsets[i + 1]] for i in keep], batch.tail)
    if not keep:
        return ReadBatch(data, 0, None, None, None, batch.tail, batch.reconnect_advised)
    first = batch.first_seq_num
    assert first is not None  # a batch with records
    return ReadBatch(
        data, len(keep), first + keep[0], first + keep[-1], stamps[keep[-1]], batch.tail, batch.reconnect_advised
    )


def batch_from_records(records: Sequence[Record], tail: StreamPosition | None) -> ReadBatch:
    """Build a batch from decoded records (the JSON/SSE path); they must be contiguous."""
    for i in range(1, len(records)):
        if records[i].seq_num != records[i - 1].seq_num + 1:
            raise ProtocolError(
                f"malformed upstream batch: seq_num {records[i - 1].seq_num} then {records[i].seq_num}, not contiguous"
            )
    fields = [encode_record_field(r.seq_num, r.timestamp, r.headers, r.body) for r in records]
    data = encode_batch(fields, tail)
    if not records:
        return ReadBatch(data, 0, None, None, None, tail)
    return ReadBatch(data, len(records), records[0].seq_num, records[-1].seq_num, records[-1].timestamp, tail)


def encode_record_field(seq_num: int, timestamp: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """One record as a complete `ReadBatch.records` field (tag, length, message).

    A batch is then the concatenation of such fields plus the tail: the emulator stores records
    in this form so that serving a protobuf or s2s read is a join, not a rebuild.
    """
    msg = pb.SequencedRecord(
        seq_num=seq_num,
        timestamp=timestamp,
        headers=[pb.Header(name=n, value=v) for n, v in headers],
        body=body,
    ).SerializeToString()
    return _RECORDS_TAG + encode_varint(len(msg)) + msg


def records_from_fields(fields: Iterable[bytes]) -> list[Record]:
    """Decode record fields made by `encode_record_field`."""
    return _decode_records(b"".join(fields))


def _decode_records(data: bytes) -> list[Record]:
    return [
        Record(r.seq_num, r.timestamp, tuple((h.name, h.value) for h in r.headers), r.body)
        for r in pb.ReadBatch.FromString(data).records
    ]


def encode_position(pos: StreamPosition) -> bytes:
    return pb.StreamPosition(seq_num=pos.seq_num, timestamp=pos.timestamp).SerializeToString()


def encode_batch(record_fields: Sequence[bytes], tail: StreamPosition | None) -> bytes:
    """A serialized `ReadBatch` from record fields and an optional tail."""
    if tail is None:
        return b"".join(record_fields)
    t = encode_position(tail)
    return b"".join(record_fields) + _TAIL_TAG + encode_varint(len(t)) + t


def decode_append_input(data: bytes) -> tuple[list[AppendRecord], int | None, str | None]:
    """Parse an `AppendInput`: (records, match_seq_num, fencing_token)."""
    try:
        msg = pb.AppendInput.FromString(data)
    except DecodeError as e:
        raise ProtocolError(f"malformed protobuf AppendInput: {e}") from None
    records = [
        AppendRecord(
            body=r.body,
            headers=tuple((h.name, h.value) for h in r.headers),
            timestamp=r.timestamp if r.HasField("timestamp") else None,
        )
        for r in msg.records
    ]
    return (
        records,
        msg.match_seq_num if msg.HasField("match_seq_num") else None,
        msg.fencing_token if msg.HasField("fencing_token") else None,
    )


def encode_append_input(
    records: Iterable[AppendRecord], match_seq_num: int | None = None, fencing_token: str | None = None
) -> bytes:
    msg = pb.AppendInput(
        records=[
            pb.AppendRecord(
                body=r.body,
                headers=[pb.Header(name=n, value=v) for n, v in r.headers],
                timestamp=r.timestamp,
            )
            for r in records
        ],
        match_seq_num=match_seq_num,
        fencing_token=fencing_token,
    )
    return msg.SerializeToString()


def encode_append_ack(start: StreamPosition, end: StreamPosition, tail: StreamPosition) -> bytes:
    return pb.AppendAck(
        start=pb.StreamPosition(seq_num=start.seq_num, timestamp=start.timestamp),
        end=pb.StreamPosition(seq_num=end.seq_num, timestamp=end.timestamp),
        tail=pb.StreamPosition(seq_num=tail.seq_num, timestamp=tail.timestamp),
    ).SerializeToString()


def decode_append_ack(data: bytes) -> tuple[StreamPosition, StreamPosition, StreamPosition]:
    try:
        msg = pb.AppendAck.FromString(data)
    except DecodeError as e:
        raise ProtocolError(f"malformed protobuf AppendAck: {e}") from None

    def pos(p: pb.StreamPosition) -> StreamPosition:
        return StreamPosition(p.seq_num, p.timestamp)

    return pos(msg.start), pos(msg.end), pos(msg.tail)
