"""The domain, in S2's vocabulary: where a read starts, where it stops, positions and records.

Frozen dataclasses, no I/O. Every other layer speaks these types; `sidecar.wire` is the one
place that maps them to and from S2's wire formats.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

MAX_BATCH_RECORDS = 1000
MAX_BATCH_BYTES = 1024 * 1024  # metered
MAX_RECORD_BYTES = 1024 * 1024  # metered
MAX_UNARY_WAIT_SECONDS = 60
# The largest gRPC message sent to apps: what every gRPC client accepts by default...
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# ...and the least it may be set to: one 1 MiB metered record can encode to ~2 MiB of protobuf
# (many one-byte headers), and must fit one message.
MIN_MAX_MESSAGE_BYTES = 3 * 1024 * 1024
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1

StreamKey = tuple[str, str]  # (basin, stream): how the read logic's caches and registries key a stream
# (basin, stream, key fingerprint): how the read logic keys what reads share (live feeds, single
# flights, replays, the history cache). The fingerprint names the read's encryption key ("" for
# none; `sidecar.encryption`), so records read with one key never reach a read with another.
ReadScope = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class SeqNum:
    """Start at this sequence number."""

    value: int


@dataclass(frozen=True, slots=True)
class Timestamp:
    """Start at the first record whose timestamp (ms) is >= value."""

    value: int


@dataclass(frozen=True, slots=True)
class TailOffset:
    """Start `value` records before the tail (saturating at the first record)."""

    value: int


ReadStart = SeqNum | Timestamp | TailOffset


@dataclass(frozen=True, slots=True)
class ReadLimit:
    """Stops on how much to read: records and metered bytes. None means no bound."""

    count: int | None = None
    bytes: int | None = None

    @property
    def bounded(self) -> bool:
        return self.count is not None or self.bytes is not None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A position: for a tail, the next seq_num and the timestamp of the last record."""

    seq_num: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class ReadQuery:
    """Everything that shapes one read of a stream, as S2's read endpoint takes it."""

    start: ReadStart = field(default_factory=lambda: TailOffset(0))
    limit: ReadLimit = field(default_factory=ReadLimit)
    until: int | None = None
    clamp: bool = False
    wait: int | None = None  # seconds; None means S2's default

    @property
    def bounded(self) -> bool:
        """True when a stop is given (S2 then defaults `wait` to 0)."""
        return self.limit.bounded or self.until is not None

    @property
    def can_follow(self) -> bool:
        """Whether the read may wait at the tail for new records (S2's rule)."""
        return not self.bounded or (self.wait or 0) > 0


@dataclass(frozen=True, slots=True)
class Record:
    """A sequenced record, decoded. Used off the hot path (JSON, tests, the emulator's edges)."""

    seq_num: int
    timestamp: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class AppendRecord:
    """A record to append; `timestamp` None lets the server assign it."""

    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    timestamp: int | None = None


def metered_size(headers: Collection[tuple[bytes, bytes]], body: bytes) -> int:
    """S2's metered size of one record: 8 + 2 per header + header names and values + body (the
    formula of S2's SDK, `MeteredBytes`: https://docs.rs/s2-sdk, and of s2-streamstore/s2's
    `common/src/record`). Record limits and a read's `bytes` bound count in it; this is the one
    place the sidecar computes it."""
    return 8 + 2 * len(headers) + sum(len(n) + len(v) for n, v in headers) + len(body)
