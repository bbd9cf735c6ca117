"""Basins, streams and their records, in memory, optionally backed by SQLite.

Each record is kept once, already encoded as a `ReadBatch.records` protobuf field, next to
parallel lists of timestamps and cumulative metered sizes. Protobuf and s2s reads are then a
join of a slice of fields; start and stop positions are bisections over the parallel lists.
In a stream with a `cipher`, an envelope record's field holds its headers and body sealed
(`encryption.py`); `Stream.read_fields` opens them for a read, and sizes stay the plaintext's.

Records below a stream's trim point (explicit `trim` commands, and retention by age, applied
lazily when a read starts) stay in the lists; reads start at the first remaining index instead,
so `seq_num == index` holds for every record.

Everything here is synchronous: an append assigns sequence numbers, commits to SQLite and
updates memory without yielding to the event loop, so appends to one stream never interleave.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

from . import encryption, s2_configs
from .clock import CreationClock, format_rfc3339, parse_rfc3339

DB_FILE = "emulator.sqlite3"
MAX_FENCING_TOKEN_BYTES = 36
TRIM_BODY_BYTES = 8  # a trim command's body is its seq_num as a big-endian u64


def _to_sqlite(timestamp: int) -> int:
    """A u64 timestamp as SQLite's signed 64-bit integer (two's complement): S2 keeps uncapped
    client timestamps up to 2^64-1. Never compared in SQL, only stored and loaded back."""
    return timestamp - 2**64 if timestamp >= 2**63 else timestamp


def _from_sqlite(stored: int) -> int:
    return stored + 2**64 if stored < 0 else stored


class ErrorBody(S2Error):
    """An S2 error whose body is not `{"code","message"}` (412 append preconditions)."""

    def __init__(self, status: int, code: str, body: dict[str, Any]) -> None:
        super().__init__(status, code, json.dumps(body))
        self.body = body


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(eq=False)
class Stream:
    """One stream: its records in encoded form and what reads and appends need to know."""

    basin: str
    name: str
    created_at: str
    config: dict[str, Any] | None = None
    fencing_token: str | None = None
    db_id: int | None = None
    # The basin's `stream_cipher` when the stream was created, for its lifetime: its envelope
    # records are then stored sealed, and appends and reads need the key (encryption.py).
    cipher: str | None = None
    trim_point: int = 0  # explicit trims: records below this seq_num are gone
    fields: list[bytes] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)  # arrival times (ms), for retention by age
    cum_bytes: list[int] = field(default_factory=lambda: [0])  # cum_bytes[i] = metered size of records[:i]
    deleted: bool = False  # from the DELETE on: no more reads, appends or followers
    # Set from that DELETE until the deletion ends (S2 finishes it in the background): the stream is
    # still listed, with this time, and its name cannot be created again yet.
    deleted_at: str | None = None
    # Events of open reads waiting at the tail; an append or a delete sets them all.
    waiters: set[asyncio.Event] = field(default_factory=set)
    # The `s2-request-token` it was created with and the config given, so that a retried create
    # is a no-op (S2: lite/src/backend/streams.rs `creation_idempotency_key`).
    creation_key: str | None = None

    @property
    def next_seq(self) -> int:
        return len(self.fields)

    @property
    def tail(self) -> StreamPosition:
        return StreamPosition(len(self.fields), self.timestamps[-1] if self.timestamps else 0)

    def info(self) -> dict[str, Any]:
        # Listed with `deleted_at` until the background deletion ends, then not at all (S2:
        # lite/src/backend/streams.rs `mark_stream_deleted`, bgtasks/stream_trim.rs `finalize_trim`).
        return {"name": self.name, "created_at": self.created_at, "deleted_at": self.deleted_at, "cipher": self.cipher}

    def record_cipher(self, key: str | None) -> encryption.RecordCipher | None:
        """What an append or read with this `s2-encryption-key` works with: None for a plain
        stream, else the cipher and key, or S2's 400 for a key missing or malformed."""
        return encryption.resolve(self.cipher, key, encryption.stream_aad(self.basin, self.name))

    def read_fields(self, start: int, end: int, cipher: encryption.RecordCipher | None) -> list[bytes]:
        """Records `start` to `end` as readers get them: opened with `cipher` in an encrypted
        stream (400 decryption_failed for a key that did not seal them)."""
        fields = self.fields[start:end]
        if self.cipher is None:
            return fields
        assert cipher is not None, "resolved with record_cipher, which refuses a missing key"
        return cipher.open_fields(fields)

    def first_index(self) -> int:
        """The first record not trimmed, by trim point or by retention age (S2 trims both)."""
        first = min(self.trim_point, len(self.fields))
        age = s2_configs.retention_age(self.config)
        if age is not None:
            first = max(first, bisect.bisect_left(self.arrivals, now_ms() - age * 1000))
        return first

    def position_at(self, index: int) -> StreamPosition:
        """The tail as it was when the stream held `index` records (what a session has seen)."""
        return StreamPosition(index, self.timestamps[index - 1] if index > 0 else 0)

    def metered(self, start: int, end: int) -> int:
        return self.cum_bytes[end] - self.cum_bytes[start]

    def wake(self) -> None:
        for event in self.waiters:
            event.set()

    def start_index(self, query: ReadQuery, can_follow: bool) -> int:
        """Where a read starts, by S2's rules; raises `RangeNotSatisfiable` (416) when it cannot."""
        n = len(self.fields)
        first = self.first_index()
        if query.limit.count == 0 or query.limit.bytes == 0:
            # An exhausted limit ends the read before the tail is even looked at: an empty answer,
            # wherever it starts, clamp or not (S2: lite/src/backend/read.rs `read_session`).
            return first
        tail = self.tail
        match query.start:
            case SeqNum(v):
                past, pos = v > tail.seq_num, v
            case Timestamp(v):
                # Timestamps never decrease, so the first record with ts >= v is a bisection. S2
                # looks it up among the records not trimmed, and a timestamp it finds none for
                # resolves to the tail (lite/src/backend/read.rs `read_start_seq_num`): on a stream
                # trimmed through its last record that is the tail, 416 unless the read can wait.
                past, pos = v > tail.timestamp, bisect.bisect_left(self.timestamps, v, first)
            case TailOffset(v):
                past, pos = False, max(0, n - v)
        if past:
            if not query.clamp:
                raise RangeNotSatisfiable(tail)
            pos = n
        if pos >= n and not can_follow:
            raise RangeNotSatisfiable(tail)
        # A start below the trim point starts at the first remaining record (no error); the 416
        # decision above is on the position asked for, as S2 decides before it scans.
        return max(pos, first)

    def end_index(self, start: int, max_count: int, max_bytes: int, until: int | None) -> int:
        """End (exclusive) of the longest run from `start` within count, metered bytes and `until`."""
        hi = min(len(self.fields), start + max_count)
        limit = self.cum_bytes[start] + max_bytes
        end = bisect.bisect_right(self.cum_bytes, limit, start, hi + 1) - 1
        if until is not None:
            end = bisect.bisect_left(self.timestamps, until, start, end)
        return max(end, start)


@dataclass(eq=False)
class Basin:
    """A basin: its `BasinConfig` (as given) and its streams."""

    name: str
    created_at: str
    config: dict[str, Any] | None = None
    streams: dict[str, Stream] = field(default_factory=dict)
    implicit: bool = False  # known only from streams in a data dir written before basins were stored
    deleted_at: str | None = None  # being deleted (S2 deletes a basin in the background)
    creation_key: str | None = None  # as a stream's (S2: lite/src/backend/basins.rs `creation_idempotency_key`)

    def flag(self, name: str) -> bool:
        return bool((self.config or {}).get(name))

    def info(self) -> dict[str, Any]:
        # As s2-lite lists a basin (S2: api/src/v1/basin.rs `BasinInfo`): no `location` of its own, and
        # the deprecated `state` derived from `deleted_at`.
        state = "active" if self.deleted_at is None else "deleting"
        return {
            "name": self.name,
            "location": None,
            "created_at": self.created_at,
            "deleted_at": self.deleted_at,
            "state": state,
        }


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
        elif command == b"trim":
            if len(r.body) != TRIM_BODY_BYTES:
                raise S2Error(
                    422,
                    "invalid",
                    f"record {i}: a trim command's body must be {TRIM_BODY_BYTES} bytes, got {len(r.body)}",
                )
        else:
            raise S2Error(422, "invalid", f"record {i}: unknown command {command!r:.50}")
        sizes.append(size)
    total = sum(sizes)
    if total > MAX_BATCH_BYTES:
        raise S2Error(422, "invalid", f"batch is {total} metered bytes; the limit is {MAX_BATCH_BYTES}")
    return sizes


class _Database:
    """SQLite persistence: every append, trim and basin change is committed before it is acknowledged."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL survives a crash of this process, which is what a restart test needs.
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS basins (
                name TEXT PRIMARY KEY, created_at TEXT NOT NULL, config TEXT);
            CREATE TABLE IF NOT EXISTS streams (
                id INTEGER PRIMARY KEY, basin TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL,
                config TEXT, fencing_token TEXT, trim_point INTEGER NOT NULL DEFAULT 0, UNIQUE (basin, name));
            CREATE TABLE IF NOT EXISTS creation_clock (
                id INTEGER PRIMARY KEY CHECK (id = 0), last_ns INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS records (
                stream_id INTEGER NOT NULL, seq_num INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                metered INTEGER NOT NULL, field BLOB NOT NULL, arrival INTEGER,
                PRIMARY KEY (stream_id, seq_num)) WITHOUT ROWID;
            """
        )
        # Data directories written before trims and retention existed lack these columns.
        for table, column, decl in (
            ("streams", "trim_point", "INTEGER NOT NULL DEFAULT 0"),
            ("records", "arrival", "INTEGER"),
            ("streams", "deleted_at", "TEXT"),
            ("basins", "deleted_at", "TEXT"),
            ("streams", "cipher", "TEXT"),
            ("streams", "creation_key", "TEXT"),
            ("basins", "creation_key", "TEXT"),
        ):
            if column not in {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def load(self) -> dict[str, Basin]:
        basins: dict[str, Basin] = {}
        for name, created_at, config, deleted_at, key in self._conn.execute(
            "SELECT name, created_at, config, deleted_at, creation_key FROM basins"
        ):
            config = json.loads(config) if config else None
            basins[name] = Basin(name, created_at, config, deleted_at=deleted_at, creation_key=key)
        streams: dict[int, Stream] = {}
        loaded_at = now_ms()
        for sid, basin, name, created_at, config, token, trim_point, deleted_at, cipher, key in self._conn.execute(
            "SELECT id, basin, name, created_at, config, fencing_token, trim_point, deleted_at, cipher, creation_key"
            " FROM streams"
        ):
            s = Stream(basin, name, created_at, json.loads(config) if config else None, token, sid, cipher, trim_point)
            s.deleted, s.deleted_at, s.creation_key = deleted_at is not None, deleted_at, key
            streams[sid] = s
            # Streams from before basins were stored: their basin exists, with S2's default config.
            basins.setdefault(basin, Basin(basin, created_at, implicit=True)).streams[name] = s
        for sid, ts, metered, blob, arrival in self._conn.execute(
            "SELECT stream_id, timestamp, metered, field, arrival FROM records ORDER BY stream_id, seq_num"
        ):
            s = streams[sid]
            s.fields.append(bytes(blob))
            s.timestamps.append(_from_sqlite(ts))
            s.arrivals.append(loaded_at if arrival is None else arrival)
            s.cum_bytes.append(s.cum_bytes[-1] + metered)
        return basins

    def last_created(self) -> int:
        """The last creation time handed out, deleted basins and streams included (0: none stored)."""
        row = self._conn.execute("SELECT last_ns FROM creation_clock WHERE id = 0").fetchone()
        return int(row[0]) if row is not None else 0

    def _created(self, ns: int) -> None:
        self._conn.execute(
            "INSERT INTO creation_clock (id, last_ns) VALUES (0, ?)"
            " ON CONFLICT (id) DO UPDATE SET last_ns = excluded.last_ns",
            (ns,),
        )

    def create_basin(self, basin: Basin, created_ns: int) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT INTO basins (name, created_at, config, creation_key) VALUES (?, ?, ?, ?)",
                (
                    basin.name,
                    basin.created_at,
                    json.dumps(basin.config) if basin.config is not None else None,
                    basin.creation_key,
                ),
            )
            self._created(created_ns)

    def reconfigure_basin(self, basin: Basin) -> None:
        self._conn.execute(
            "UPDATE basins SET config = ? WHERE name = ?",
            (json.dumps(basin.config) if basin.config is not None else None, basin.name),
        )

    def mark_basin_deleted(self, basin: Basin) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("UPDATE basins SET deleted_at = ? WHERE name = ?", (basin.deleted_at, basin.name))
            self._conn.execute(
                "UPDATE streams SET deleted_at = ? WHERE basin = ? AND deleted_at IS NULL",
                (basin.deleted_at, basin.name),
            )

    def delete_basin(self, basin: Basin) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "DELETE FROM records WHERE stream_id IN (SELECT id FROM streams WHERE basin = ?)", (basin.name,)
            )
            self._conn.execute("DELETE FROM streams WHERE basin = ?", (basin.name,))
            self._conn.execute("DELETE FROM basins WHERE name = ?", (basin.name,))

    def create(self, stream: Stream, created_ns: int) -> int:
        with self._conn:
            self._conn.execute("BEGIN")
            cur = self._conn.execute(
                "INSERT INTO streams (basin, name, created_at, config, cipher, creation_key) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stream.basin,
                    stream.name,
                    stream.created_at,
                    json.dumps(stream.config) if stream.config is not None else None,
                    stream.cipher,
                    stream.creation_key,
                ),
            )
            self._created(created_ns)
        assert cur.lastrowid is not None
        return cur.lastrowid

    def reconfigure(self, stream: Stream) -> None:
        config = json.dumps(stream.config) if stream.config is not None else None
        self._conn.execute("UPDATE streams SET config = ? WHERE id = ?", (config, stream.db_id))

    def mark_deleted(self, stream: Stream) -> None:
        self._conn.execute("UPDATE streams SET deleted_at = ? WHERE id = ?", (stream.deleted_at, stream.db_id))

    def delete(self, stream: Stream) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute("DELETE FROM records WHERE stream_id = ?", (stream.db_id,))
            self._conn.execute("DELETE FROM streams WHERE id = ?", (stream.db_id,))

    def append(
        self,
        stream: Stream,
        rows: list[tuple[int, int, int, bytes]],
        arrival: int,
        fencing_token: str | None,
        trim_point: int,
    ) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO records (stream_id, seq_num, timestamp, metered, field, arrival)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(stream.db_id, seq, _to_sqlite(ts), size, field, arrival) for seq, ts, size, field in rows],
            )
            if fencing_token != stream.fencing_token or trim_point != stream.trim_point:
                self._conn.execute(
                    "UPDATE streams SET fencing_token = ?, trim_point = ? WHERE id = ?",
                    (fencing_token, trim_point, stream.db_id),
                )

    def close(self) -> None:
        self._conn.close()


def _creation_key(request_token: str | None, config: dict[str, Any] | None) -> str | None:
    """What makes a create a retry of another: the same token and the same config as given."""
    if request_token is None:
        return None
    return json.dumps([request_token, s2_configs.canonical(config or {})], sort_keys=True)


def _not_found(basin: str, name: str) -> S2Error:
    return S2Error(404, "stream_not_found", f"stream {name!r} does not exist in basin {basin!r}")


def _stream_deletion_pending(name: str) -> S2Error:
    return S2Error(409, "stream_deletion_pending", f"stream {name!r} is being deleted")


def _basin_deletion_pending(name: str) -> S2Error:
    return S2Error(409, "basin_deletion_pending", f"basin {name!r} is being deleted")


class Store:
    """All basins and streams. A basin exists once created; a stream once created, or on first
    append / read when its basin's config says so (S2: lite/src/backend/core.rs auto-create).

    Deletion, as in S2, ends in the background `deletion_delay` seconds after it is acknowledged
    (0: at once). Until then the basin or stream is listed with `deleted_at`, and S2's
    `*_deletion_pending` errors answer what cannot go on. A deletion pending when the store closes
    is finished when it opens again: a deleted stream never comes back."""

    def __init__(
        self, data_dir: Path | None = None, now_ns: Callable[[], int] = time.time_ns, deletion_delay: float = 0.0
    ) -> None:
        self._db = _Database(data_dir / DB_FILE) if data_dir is not None else None
        self._basins: dict[str, Basin] = self._db.load() if self._db is not None else {}
        self._now_ns = now_ns
        self._deletion_delay = deletion_delay
        self._pending: set[asyncio.TimerHandle] = set()
        # Creation times stay increasing across restarts, past every time a stored name ever had.
        self._clock = CreationClock(now_ns)
        if self._db is not None:
            self._clock.observe(self._db.last_created())
            for b in self._basins.values():
                for created_at in (b.created_at, *(s.created_at for s in b.streams.values())):
                    with contextlib.suppress(ValueError):
                        self._clock.observe(parse_rfc3339(created_at))
        for b in list(self._basins.values()):
            if b.deleted_at is not None:
                self._finish_basin(b)
            else:
                for s in [s for s in b.streams.values() if s.deleted_at is not None]:
                    self._finish(s)

    def close(self) -> None:
        for handle in self._pending:
            handle.cancel()  # stored as pending: finished when the store opens again
        self._pending.clear()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _later(self, finish: Callable[[], None]) -> None:
        """Run `finish` once the deletion delay has passed (the background part of a deletion)."""

        def run() -> None:
            self._pending.discard(handle)
            finish()

        handle = asyncio.get_running_loop().call_later(self._deletion_delay, run)
        self._pending.add(handle)

    # -- basins ---------------------------------------------------------------------------

    def basin(self, name: str) -> Basin:
        """The basin, also while it is being deleted (S2 still answers its config and listings)."""
        b = self._basins.get(name)
        if b is None:
            raise S2Error(404, "basin_not_found", f"basin {name!r} does not exist")
        return b

    def _active_basin(self, name: str) -> Basin:
        """The basin, for creating streams in it: not while it is being deleted."""
        b = self.basin(name)
        if b.deleted_at is not None:
            raise _basin_deletion_pending(name)
        return b

    def has_basin(self, name: str) -> bool:
        return name in self._basins

    def create_basin(self, name: str, config: dict[str, Any] | None = None) -> Basin:
        return self.provision_basin(name, config, None)[0]

    def provision_basin(self, name: str, config: dict[str, Any] | None, request_token: str | None) -> tuple[Basin, str]:
        """A new basin, `created`; or, when the basin exists, was created with this `s2-request-token`
        and the same config, the existing one, `noop`: a retried create (S2:
        lite/src/backend/basins.rs `provision_basin`, `ProvisionMode::CreateOnly`)."""
        key = _creation_key(request_token, config)
        if (existing := self._basins.get(name)) is not None:
            if existing.deleted_at is not None:
                raise _basin_deletion_pending(name)
            if key is not None and existing.creation_key == key:
                return existing, "noop"
            raise S2Error(409, "resource_already_exists", f"basin {name!r} already exists")
        created_ns = self._clock.next()
        b = Basin(name, format_rfc3339(created_ns), config, creation_key=key)
        if self._db is not None:
            self._db.create_basin(b, created_ns)
        self._basins[name] = b
        return b, "created"

    def ensure_basin_config(self, name: str, config: dict[str, Any] | None) -> tuple[Basin, str]:
        """`PUT /v1/basins/{b}`: create the basin (`created`), or give it this config whole
        (`updated`, or `noop` when it already had it). S2: lite/src/backend/basins.rs
        `provision_basin`, `ProvisionMode::Ensure`."""
        b = self._basins.get(name)
        if b is None:
            return self.create_basin(name, config), "created"
        unchanged = s2_configs.canonical(s2_configs.basin_config_json(b.config)) == s2_configs.canonical(
            s2_configs.basin_config_json(config)
        )
        return self.reconfigure_basin(name, config), "noop" if unchanged and not b.implicit else "updated"

    def patch_basin(self, name: str, patch: Any) -> Basin:
        """`PATCH /v1/basins/{b}`: S2's `BasinReconfiguration` applied (s2_configs)."""
        b = self._active_basin(name)
        return self.reconfigure_basin(name, s2_configs.reconfigure_basin_config(b.config, patch))

    def reconfigure_basin(self, name: str, config: dict[str, Any] | None) -> Basin:
        b = self._active_basin(name)
        b.config = config
        if self._db is not None:
            if b.implicit:
                self._db.create_basin(b, self._clock.last)
            else:
                self._db.reconfigure_basin(b)
        b.implicit = False
        return b

    def ensure_basin(self, name: str, config: dict[str, Any] | None) -> bool:
        """Create the basin unless it exists (a basin found only through old streams takes `config`);
        True if it was created or configured now."""
        b = self._basins.get(name)
        if b is None:
            self.create_basin(name, config)
            return True
        if b.implicit:
            self.reconfigure_basin(name, config)
            return True
        return False

    def delete_basin(self, name: str) -> None:
        """Delete a basin and its streams; deleting one already being deleted is a no-op, as in S2
        (lite/src/backend/basins.rs `delete_basin`, bgtasks/basin_deletion.rs)."""
        b = self.basin(name)
        if b.deleted_at is not None:
            return
        deleted_at = format_rfc3339(self._now_ns())
        for s in b.streams.values():
            s.deleted = True
            s.deleted_at = s.deleted_at or deleted_at
            s.wake()
        if self._deletion_delay <= 0:
            self._finish_basin(b)
            return
        b.deleted_at = deleted_at
        if self._db is not None:
            self._db.mark_basin_deleted(b)
        self._later(lambda: self._finish_basin(b))

    def _finish_basin(self, b: Basin) -> None:
        if self._db is not None:
            self._db.delete_basin(b)
        if self._basins.get(b.name) is b:
            del self._basins[b.name]

    def list_basins(self, prefix: str, start_after: str, limit: int) -> tuple[list[Basin], bool]:
        names = sorted(n for n in self._basins if n.startswith(prefix) and n > start_after)
        return [self._basins[n] for n in names[:limit]], len(names) > limit

    # -- streams --------------------------------------------------------------------------

    def get(self, basin: str, name: str) -> Stream | None:
        """The stream under this name, also while it is being deleted (`deleted_at` set)."""
        return self.basin(basin).streams.get(name)

    def require(self, basin: str, name: str) -> Stream:
        """The stream, for its config: 404 if there is none, 409 while it is being deleted
        (S2: lite/src/backend/streams.rs `get_stream_config`)."""
        s = self.get(basin, name)
        if s is None:
            raise _not_found(basin, name)
        if s.deleted_at is not None:
            raise _stream_deletion_pending(name)
        return s

    def open(self, basin: str, name: str, auto_create: str, config: dict[str, Any] | None = None) -> Stream:
        """The stream for an append (`create_stream_on_append`) or a read or tail
        (`create_stream_on_read`): created now if missing and the basin's config says so; 409
        while it is being deleted (S2: lite/src/backend/core.rs `start_streamer` refuses a stream
        whose terminal trim is pending). A stream created now takes `config` (the request's
        `s2-stream-config`) over the basin's defaults."""
        b = self.basin(basin)
        s = b.streams.get(name)
        if s is None:
            if not b.flag(auto_create):
                raise _not_found(basin, name)
            s = self.create(basin, name, config)
        elif s.deleted:
            raise _stream_deletion_pending(name)
        return s

    def create(
        self, basin: str, name: str, config: dict[str, Any] | None = None, request_token: str | None = None
    ) -> Stream:
        """A new stream (`POST /v1/streams`, or created by its first append or read): 409 if the
        name is taken, also by a stream being deleted (S2: lite/src/backend/streams.rs `provision_stream`)."""
        return self.provision(basin, name, config, request_token)[0]

    def provision(
        self, basin: str, name: str, config: dict[str, Any] | None, request_token: str | None
    ) -> tuple[Stream, str]:
        """`create`, with S2's retry rule: a stream created with this `s2-request-token` and the same
        config is answered as it is, `noop`, instead of 409 (S2: lite/src/backend/streams.rs
        `provision_stream`, `ProvisionMode::CreateOnly`); `created` otherwise."""
        b = self._active_basin(basin)
        key = _creation_key(request_token, config)
        if (existing := b.streams.get(name)) is not None:
            if existing.deleted_at is not None:
                raise _stream_deletion_pending(name)
            if key is not None and existing.creation_key == key:
                return existing, "noop"
            raise S2Error(409, "resource_already_exists", f"stream {name!r} already exists")
        default = (b.config or {}).get("default_stream_config")
        created_ns = self._clock.next()
        # The stream keeps the basin's cipher of now, whatever it becomes later (S2:
        # lite/src/backend/streams.rs `provision_stream` records `stream_cipher` in its metadata).
        cipher = (b.config or {}).get("stream_cipher")
        s = Stream(basin, name, format_rfc3339(created_ns), s2_configs.inherit(config, default), cipher=cipher)
        s.creation_key = key
        if self._db is not None:
            s.db_id = self._db.create(s, created_ns)
        b.streams[name] = s
        return s, "created"

    def ensure(self, basin: str, name: str, config: dict[str, Any] | None) -> tuple[Stream, str]:
        """`PUT /v1/streams/{s}`: create the stream, or give an existing one this config (the fields
        left unset take the basin's defaults, as on creation); `created`, `updated` or `noop` (S2
        compares the resolved configs). S2: lite/src/backend/streams.rs `provision_stream`,
        `ProvisionMode::Ensure`."""
        b = self._active_basin(basin)
        s = b.streams.get(name)
        if s is None:
            return self.create(basin, name, config), "created"
        if s.deleted_at is not None:
            raise _stream_deletion_pending(name)
        desired = s2_configs.inherit(config, (b.config or {}).get("default_stream_config"))
        resolved = s2_configs.canonical(s2_configs.stream_config_json(desired))
        if resolved == s2_configs.canonical(s2_configs.stream_config_json(s.config)):
            return s, "noop"
        self._set_config(s, desired)
        return s, "updated"

    def reconfigure(self, basin: str, name: str, patch: dict[str, Any]) -> Stream:
        """`PATCH /v1/streams/{s}`: S2's `StreamReconfiguration` over the stream's resolved config,
        the fields reset taking the basin's defaults (S2: lite/src/backend/streams.rs `reconfigure_stream`)."""
        b = self._active_basin(basin)
        s = self.require(basin, name)
        current = s2_configs.stream_config_json(s.config)
        default = (b.config or {}).get("default_stream_config")
        self._set_config(s, s2_configs.inherit(s2_configs.reconfigure_stream_config(current, patch), default))
        return s

    def _set_config(self, s: Stream, config: dict[str, Any] | None) -> None:
        s.config = config
        if self._db is not None:
            self._db.reconfigure(s)

    def delete(self, basin: str, name: str) -> None:
        """Delete a stream: its reads, appends and followers end now; it is listed with `deleted_at`
        until the deletion ends. Deleting it again meanwhile is a no-op, as in S2
        (lite/src/backend/streams.rs `delete_stream` / `mark_stream_deleted`)."""
        s = self.get(basin, name)
        if s is None:
            raise _not_found(basin, name)
        if s.deleted_at is not None:
            return
        s.deleted = True
        s.wake()  # followers of a deleted stream end with stream_not_found
        if self._deletion_delay <= 0:
            self._finish(s)
            return
        s.deleted_at = format_rfc3339(self._now_ns())
        if self._db is not None:
            self._db.mark_deleted(s)
        self._later(lambda: self._finish(s))

    def _finish(self, s: Stream) -> None:
        """The end of a stream's deletion: its records and its name are gone."""
        if self._db is not None and s.db_id is not None:
            self._db.delete(s)
        b = self._basins.get(s.basin)
        if b is not None and b.streams.get(s.name) is s:
            del b.streams[s.name]

    def list(self, basin: str, prefix: str, start_after: str, limit: int) -> tuple[list[Stream], bool]:
        streams = self.basin(basin).streams
        names = sorted(n for n in streams if n.startswith(prefix) and n > start_after)
        return [streams[n] for n in names[:limit]], len(names) > limit

    def append(
        self,
        basin: str,
        name: str,
        records: Sequence[AppendRecord],
        match_seq_num: int | None = None,
        fencing_token: str | None = None,
        key: str | None = None,
        created_config: dict[str, Any] | None = None,
    ) -> AppendResult:
        """Append a batch atomically and wake its followers (S2: lite/src/backend/streamer.rs).
        `key` is the request's `s2-encryption-key`, needed by a stream with a cipher: S2 resolves
        it once the stream is open, before the batch's preconditions (lite/src/backend/append.rs)."""
        sizes = _validate_batch(records)
        s = self.open(basin, name, "create_stream_on_append", created_config)
        cipher = s.record_cipher(key)
        if fencing_token is not None and fencing_token != (s.fencing_token or ""):
            raise ErrorBody(412, "fencing_token_mismatch", {"fencing_token_mismatch": s.fencing_token or ""})
        if match_seq_num is not None and match_seq_num != s.next_seq:
            raise ErrorBody(412, "seq_num_mismatch", {"seq_num_mismatch": s.next_seq})
        mode, uncapped = s2_configs.timestamping(s.config)
        if mode == "client-require" and (missing := [i for i, r in enumerate(records) if r.timestamp is None]):
            raise S2Error(422, "invalid", f"record {missing[0]}: the stream's timestamping mode requires a timestamp")

        arrival = now_ms()
        prev = s.timestamps[-1] if s.timestamps else 0
        first_seq = s.next_seq
        token = s.fencing_token
        trim_point = s.trim_point
        rows: list[tuple[int, int, int, bytes]] = []
        for i, (r, size) in enumerate(zip(records, sizes, strict=True)):
            ts = arrival if r.timestamp is None or mode == "arrival" else r.timestamp
            if not uncapped:
                ts = min(ts, arrival)
            # Timestamps never go backwards within a stream: reads by timestamp bisect on them.
            ts = max(ts, prev)
            prev = ts
            seq = first_seq + i
            command = _command(r)
            if cipher is not None and command is None:  # commands stay in clear, as in S2
                rows.append((seq, ts, size, cipher.seal_field(seq, ts, r.headers, r.body)))
            else:
                rows.append((seq, ts, size, encode_record_field(seq, ts, r.headers, r.body)))
            if command == b"fence":
                token = r.body.decode("utf-8")
            elif command == b"trim":
                # The trim point moves to min(requested, this command's seq_num + 1): a trim command
                # trims through itself at most, and the point never moves back (S2: lite/src/backend/streamer.rs).
                trim_point = max(trim_point, min(int.from_bytes(r.body, "big"), seq + 1))

        if self._db is not None:
            self._db.append(s, rows, arrival, token, trim_point)  # committed before memory changes and the ack
        s.fencing_token = token
        s.trim_point = trim_point
        cum = s.cum_bytes[-1]
        for _seq, ts, size, encoded in rows:
            s.fields.append(encoded)
            s.timestamps.append(ts)
            s.arrivals.append(arrival)
            cum += size
            s.cum_bytes.append(cum)
        s.wake()
        return AppendResult(StreamPosition(first_seq, rows[0][1]), StreamPosition(s.next_seq, rows[-1][1]), s.tail)
