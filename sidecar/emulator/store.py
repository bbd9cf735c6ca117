"""Streams and their records, in memory, optionally backed by SQLite.

Each record is kept once, already encoded as a `ReadBatch.records` protobuf field, next to
parallel lists of timestamps and cumulative metered sizes. Protobuf and s2s reads are then a
join of a slice of fields; start and stop positions are bisections over the parallel lists.

Everything here is synchronous: an append assigns sequence numbers, commits to SQLite and
updates memory without yielding to the event loop, so appends to one stream never interleave.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sidecar.errors import RangeNotSatisfiable, S2Error
from sidecar.types import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    AppendRecord,
    ReadQuery,
    SeqNum,
    StreamPosition,
    TailOffset,
    Timestamp,
    metered_size,
)
from sidecar.wire.protobuf import encode_record_field

DB_FILE = "emulator.sqlite3"
MAX_FENCING_TOKEN_BYTES = 36
# SQLite integers are signed 64-bit; an uncapped client timestamp above this cannot be stored.
_MAX_STORED_TIMESTAMP = 2**63 - 1


class ErrorBody(S2Error):
    """An S2 error whose body is not `{"code","message"}` (412 append preconditions)."""

    def __init__(self, status: int, code: str, body: dict[str, Any]) -> None:
        super().__init__(status, code, json.dumps(body))
        self.body = body


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Stream:
    """One stream: its records in encoded form and what reads and appends need to know."""

    basin: str
    name: str
    created_at: str
    config: dict[str, Any] | None = None
    fencing_token: str | None = None
    db_id: int | None = None
    fields: list[bytes] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    cum_bytes: list[int] = field(default_factory=lambda: [0])  # cum_bytes[i] = metered size of records[:i]
    deleted: bool = False
    # Events of open reads waiting at the tail; an append or a delete sets them all.
    waiters: set[asyncio.Event] = field(default_factory=set)

    @property
    def next_seq(self) -> int:
        return len(self.fields)

    @property
    def tail(self) -> StreamPosition:
        return StreamPosition(len(self.fields), self.timestamps[-1] if self.timestamps else 0)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at}

    def metered(self, start: int, end: int) -> int:
        return self.cum_bytes[end] - self.cum_bytes[start]

    def wake(self) -> None:
        for event in self.waiters:
            event.set()

    def start_index(self, query: ReadQuery, can_follow: bool) -> int:
        """Where a read starts, by S2's rules; raises `RangeNotSatisfiable` (416) when it cannot."""
        n = len(self.fields)
        tail = self.tail
        match query.start:
            case SeqNum(v):
                past, pos = v > tail.seq_num, v
            case Timestamp(v):
                # Timestamps never decrease, so the first record with ts >= v is a bisection.
                past, pos = v > tail.timestamp, bisect.bisect_left(self.timestamps, v)
            case TailOffset(v):
                past, pos = False, max(0, n - v)
        if past:
            if not query.clamp:
                raise RangeNotSatisfiable(tail)
            pos = n
        if pos >= n and not can_follow:
            raise RangeNotSatisfiable(tail)
        return pos

    def end_index(self, start: int, max_count: int, max_bytes: int, until: int | None) -> int:
        """End (exclusive) of the longest run from `start` within count, metered bytes and `until`."""
        hi = min(len(self.fields), start + max_count)
        limit = self.cum_bytes[start] + max_bytes
        end = bisect.bisect_right(self.cum_bytes, limit, start, hi + 1) - 1
        if until is not None:
            end = bisect.bisect_left(self.timestamps, until, start, end)
        return max(end, start)


@dataclass(frozen=True, slots=True)
class AppendResult:
    start: StreamPosition
    end: StreamPosition
    tail: StreamPosition


def _command(record: AppendRecord) -> bytes | None:
    """The command name of a command record (one header with an empty name), else None."""
    if len(record.headers) == 1 and record.headers[0][0] == b"":
        return record.headers[0][1]
    return None


def _validate_batch(records: Sequence[AppendRecord]) -> list[int]:
    """S2's batch limits (422 invalid, naming the limit); returns each record's metered size."""
    if not 1 <= len(records) <= MAX_BATCH_RECORDS:
        raise S2Error(422, "invalid", f"a batch must have 1 to {MAX_BATCH_RECORDS} records, got {len(records)}")
    sizes = []
    for i, r in enumerate(records):
        size = metered_size(r.headers, r.body)
        if size > MAX_RECORD_BYTES:
            raise S2Error(422, "invalid", f"record {i} is {size} metered bytes; the limit is {MAX_RECORD_BYTES}")
        command = _command(r)
        if command is None:
            if any(name == b"" for name, _ in r.headers):
                raise S2Error(422, "invalid", f"record {i}: header names must not be empty (except commands)")
        elif command == b"fence":
            try:
                token = r.body.decode("utf-8")
            except UnicodeDecodeError:
                raise S2Error(422, "invalid", f"record {i}: fencing token must be UTF-8") from None
            if len(r.body) > MAX_FENCING_TOKEN_BYTES:
                raise S2Error(
                    422, "invalid", f"record {i}: fencing token {token!r:.50} exceeds {MAX_FENCING_TOKEN_BYTES} bytes"
                )
        elif command != b"trim":
            raise S2Error(422, "invalid", f"record {i}: unknown command {command!r:.50}")
        sizes.append(size)
    total = sum(sizes)
    if total > MAX_BATCH_BYTES:
        raise S2Error(422, "invalid", f"batch is {total} metered bytes; the limit is {MAX_BATCH_BYTES}")
    return sizes


class _Database:
    """SQLite persistence: every append is committed before it is acknowledged."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL survives a crash of this process, which is what a restart test needs.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS streams (
                id INTEGER PRIMARY KEY, basin TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL,
                config TEXT, fencing_token TEXT, UNIQUE (basin, name));
            CREATE TABLE IF NOT EXISTS records (
                stream_id INTEGER NOT NULL, seq_num INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                metered INTEGER NOT NULL, field BLOB NOT NULL, PRIMARY KEY (stream_id, seq_num)) WITHOUT ROWID;
            """
        )

    def load(self) -> Iterator[Stream]:
        streams: dict[int, Stream] = {}
        for sid, basin, name, created_at, config, token in self._conn.execute(
            "SELECT id, basin, name, created_at, config, fencing_token FROM streams"
        ):
            streams[sid] = Stream(basin, name, created_at, json.loads(config) if config else None, token, sid)
        for sid, ts, metered, blob in self._conn.execute(
            "SELECT stream_id, timestamp, metered, field FROM records ORDER BY stream_id, seq_num"
        ):
            s = streams[sid]
            s.fields.append(bytes(blob))
            s.timestamps.append(ts)
            s.cum_bytes.append(s.cum_bytes[-1] + metered)
        return iter(streams.values())

    def create(self, s: Stream) -> int:
        cur = self._conn.execute(
            "INSERT INTO streams (basin, name, created_at, config) VALUES (?, ?, ?, ?)",
            (s.basin, s.name, s.created_at, json.dumps(s.config) if s.config is not None else None),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def delete(self, s: Stream) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("DELETE FROM records WHERE stream_id = ?", (s.db_id,))
            self._conn.execute("DELETE FROM streams WHERE id = ?", (s.db_id,))

    def append(self, s: Stream, rows: list[tuple[int, int, int, bytes]], fencing_token: str | None) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO records (stream_id, seq_num, timestamp, metered, field) VALUES (?, ?, ?, ?, ?)",
                [(s.db_id, *row) for row in rows],
            )
            if fencing_token != s.fencing_token:
                self._conn.execute("UPDATE streams SET fencing_token = ? WHERE id = ?", (fencing_token, s.db_id))

    def close(self) -> None:
        self._conn.close()


class Store:
    """All basins and streams. Basins exist implicitly: they are created on first use."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._basins: dict[str, dict[str, Stream]] = {}
        self._db = _Database(data_dir / DB_FILE) if data_dir is not None else None
        if self._db is not None:
            for s in self._db.load():
                self._basins.setdefault(s.basin, {})[s.name] = s

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def get(self, basin: str, name: str) -> Stream | None:
        return self._basins.get(basin, {}).get(name)

    def require(self, basin: str, name: str) -> Stream:
        s = self.get(basin, name)
        if s is None:
            raise S2Error(404, "stream_not_found", f"stream {name!r} does not exist in basin {basin!r}")
        return s

    def create(self, basin: str, name: str, config: dict[str, Any] | None = None) -> Stream:
        s = Stream(basin, name, _rfc3339_now(), config)
        if self._db is not None:
            s.db_id = self._db.create(s)
        self._basins.setdefault(basin, {})[name] = s
        return s

    def ensure(self, basin: str, name: str) -> tuple[Stream, bool]:
        """The stream, and whether it was created now."""
        s = self.get(basin, name)
        return (s, False) if s is not None else (self.create(basin, name), True)

    def delete(self, basin: str, name: str) -> None:
        s = self.require(basin, name)
        if self._db is not None:
            self._db.delete(s)
        del self._basins[basin][name]
        s.deleted = True
        s.wake()  # followers of a deleted stream end with stream_not_found

    def list(self, basin: str, prefix: str, start_after: str, limit: int) -> tuple[list[Stream], bool]:
        names = sorted(n for n in self._basins.get(basin, {}) if n.startswith(prefix) and n > start_after)
        streams = self._basins.get(basin, {})
        return [streams[n] for n in names[:limit]], len(names) > limit

    def append(
        self,
        basin: str,
        name: str,
        records: Sequence[AppendRecord],
        match_seq_num: int | None = None,
        fencing_token: str | None = None,
    ) -> AppendResult:
        """Append a batch atomically (creating the stream if missing) and wake its followers."""
        sizes = _validate_batch(records)
        s = self.get(basin, name) or self.create(basin, name)
        if fencing_token is not None and fencing_token != (s.fencing_token or ""):
            raise ErrorBody(412, "fencing_token_mismatch", {"fencing_token_mismatch": s.fencing_token or ""})
        if match_seq_num is not None and match_seq_num != s.next_seq:
            raise ErrorBody(412, "seq_num_mismatch", {"seq_num_mismatch": s.next_seq})

        arrival = now_ms()
        uncapped = bool(((s.config or {}).get("timestamping") or {}).get("uncapped"))
        prev = s.timestamps[-1] if s.timestamps else 0
        first_seq = s.next_seq
        token = s.fencing_token
        rows: list[tuple[int, int, int, bytes]] = []
        for i, (r, size) in enumerate(zip(records, sizes, strict=True)):
            ts = arrival if r.timestamp is None else r.timestamp
            if not uncapped:
                ts = min(ts, arrival)
            # Timestamps never go backwards within a stream: reads by timestamp bisect on them.
            ts = min(max(ts, prev), _MAX_STORED_TIMESTAMP)
            prev = ts
            seq = first_seq + i
            rows.append((seq, ts, size, encode_record_field(seq, ts, r.headers, r.body)))
            if _command(r) == b"fence":
                token = r.body.decode("utf-8")

        if self._db is not None:
            self._db.append(s, rows, token)  # committed before memory changes and before the ack
        s.fencing_token = token
        cum = s.cum_bytes[-1]
        for _seq, ts, size, encoded in rows:
            s.fields.append(encoded)
            s.timestamps.append(ts)
            cum += size
            s.cum_bytes.append(cum)
        s.wake()
        return AppendResult(StreamPosition(first_seq, rows[0][1]), StreamPosition(s.next_seq, rows[-1][1]), s.tail)
