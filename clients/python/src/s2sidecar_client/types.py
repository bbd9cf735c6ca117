"""Value types, shaped like S2's own Python SDK: frozen dataclasses, no protobuf in sight."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SeqNum:
    """Start at this sequence number."""

    value: int


@dataclass(frozen=True, slots=True)
class Timestamp:
    """Start at the first record whose timestamp (milliseconds) is >= `value`."""

    value: int


@dataclass(frozen=True, slots=True)
class TailOffset:
    """Start `value` records before the tail (saturates at the first record)."""

    value: int


Start = SeqNum | Timestamp | TailOffset
"""Where a read starts. `None` where a start is accepted means the tail (`TailOffset(0)`)."""


@dataclass(frozen=True, slots=True)
class ReadLimit:
    """Stop after `count` records or before exceeding `bytes` metered bytes (`None`: no limit).

    For `read`, the sidecar caps one batch at 1000 records and 1 MiB; for `read_session`
    the limit applies to the whole session."""

    count: int | None = None
    bytes: int | None = None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """For a tail: the seq_num the next record will get, and the last record's timestamp (ms)."""

    seq_num: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class SequencedRecord:
    """A record as stored in the stream. `headers` are (name, value) pairs in append order."""

    seq_num: int
    timestamp: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""

    @property
    def is_command(self) -> bool:
        """A command record (fence or trim): a single header with an empty name."""
        return len(self.headers) == 1 and self.headers[0][0] == b""


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """One batch. `records` may be empty (a `wait` ran out, or a session heartbeat);
    `tail` is the stream's tail when the sidecar knows it. `caught_up` (sessions only): with this
    batch every record before the tail has been delivered (or left out by
    `ignore_command_records`): true on every heartbeat, as S2's SDKs' `is_caught_up()`."""

    records: tuple[SequencedRecord, ...] = field(default=())
    tail: StreamPosition | None = None
    caught_up: bool = False

    @property
    def is_heartbeat(self) -> bool:
        """A session heartbeat: no records, and the tail the session is caught up to."""
        return not self.records and self.tail is not None

    @property
    def next_seq_num(self) -> int | None:
        """The seq_num after the last record of this batch (`None` for an empty batch)."""
        return self.records[-1].seq_num + 1 if self.records else None
