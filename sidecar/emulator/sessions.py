"""Reads that wait: open reads (sessions and long polls) and the SSE and s2s session loop.

A waiting read sleeps on its own `asyncio.Event`, registered with its stream: an append, a
delete, `sessions/close` or `stop()` sets it. Nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from sidecar.errors import S2Error
from sidecar.types import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, ReadQuery, StreamPosition, metered_size
from sidecar.wire import s2s, sse
from sidecar.wire.json import Format, batch_to_json, dumps, position_to_json
from sidecar.wire.protobuf import encode_batch, encode_record_field, records_from_fields

from .encryption import RecordCipher
from .faults import Stats
from .output import GARBAGE_PROTOBUF, Output, error_payload
from .store import Stream, now_ms

COMPRESS_MIN_BYTES = 1024  # S2's s2s framing: messages under 1 KiB are not compressed
# A deleted stream's last record, in s2-lite: a trim command to the largest seq_num
# (S2: lite/src/backend/streams.rs `delete_stream`, `terminal_trim`).
TERMINAL_TRIM_BODY = b"\xff" * 8
STREAMER_GONE = "streamer missing in action"  # S2: lite/src/backend/error.rs `StreamerMissingInActionError`


def terminal_trim(stream: Stream) -> tuple[bytes, int, StreamPosition]:
    """The deletion's trim command as s2-lite's followers get it: (its record field, its metered
    size, the tail after it). It is appended like any record: seq_num the tail, arrival time."""
    seq = stream.next_seq
    ts = max(now_ms(), stream.timestamps[-1] if stream.timestamps else 0)
    field = encode_record_field(seq, ts, ((b"", b"trim"),), TERMINAL_TRIM_BODY)
    return field, metered_size(((b"", b"trim"),), TERMINAL_TRIM_BODY), StreamPosition(seq + 1, ts)


def deleted_error(stream: Stream, as_s2_lite: bool) -> S2Error:
    """What ends an open read of a deleted stream (see `EmulatorConfig.deletion_ends_reads_as_s2_lite`)."""
    if as_s2_lite:
        return S2Error(503, "unavailable", STREAMER_GONE)
    return S2Error(404, "stream_not_found", f"stream {stream.name!r} was deleted")


class Live:
    """One open read waiting at a tail, and the error that ends it early (set by close)."""

    def __init__(self, basin: str, stream: str, session: bool, stats: Stats | None = None) -> None:
        self.basin = basin
        self.stream = stream
        self.session = session
        self.stats = stats
        self.wake = asyncio.Event()
        self.close_error: S2Error | None = None

    async def wait(self, seconds: float | None) -> bool:
        """Wait for a wake-up; False when `seconds` passed without one."""
        try:
            async with asyncio.timeout(seconds):
                await self.wake.wait()
        except TimeoutError:
            return False
        return True


class LiveReads:
    """Registry of open reads, for closing them (`sessions/close`, `stop()`) and counting sessions."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._open: set[Live] = set()

    @contextlib.contextmanager
    def open(self, stream: Stream, session: bool) -> Iterator[Live]:
        live = Live(stream.basin, stream.name, session, self._stats)
        key = f"{stream.basin}/{stream.name}"
        self._open.add(live)
        stream.waiters.add(live.wake)
        if session:
            self._stats.open_sessions[key] += 1
        try:
            yield live
        finally:
            self._open.discard(live)
            stream.waiters.discard(live.wake)
            if session:
                self._stats.open_sessions[key] -= 1
                if self._stats.open_sessions[key] <= 0:
                    del self._stats.open_sessions[key]

    @property
    def count(self) -> int:
        """Open reads: sessions and long polls."""
        return len(self._open)

    def close(
        self, error: S2Error, basin: str | None = None, stream: str | None = None, sessions_only: bool = True
    ) -> int:
        """End matching open reads with `error`; returns how many."""
        n = 0
        for live in self._open:
            if (sessions_only and not live.session) or live.close_error is not None:
                continue
            if (basin is None or live.basin == basin) and (stream is None or live.stream == stream):
                live.close_error = error
                live.wake.set()
                n += 1
        return n


class SessionWriter(Protocol):
    """How one session format puts batches, heartbeats, errors and the end on the wire."""

    async def batch(
        self, fields: list[bytes], last_seq: int, tail: StreamPosition | None, count_so_far: int, bytes_so_far: int
    ) -> None: ...
    async def heartbeat(self, tail: StreamPosition) -> None: ...
    async def error(self, err: S2Error) -> None: ...
    async def done(self) -> None: ...


class SSEWriter:
    def __init__(self, out: Output, fmt: Format, corrupt: bool) -> None:
        self._out = out
        self._fmt = fmt
        self._corrupt = corrupt

    async def _event(self, data: str, event: str | None, id: str | None = None) -> None:
        if self._corrupt:  # the corrupt fault: this one event carries a data line that is not JSON
            self._corrupt = False
            data = '{"records": [garbage'
        await self._out.write(sse.encode_event(data, event, id))

    async def batch(
        self, fields: list[bytes], last_seq: int, tail: StreamPosition | None, count_so_far: int, bytes_so_far: int
    ) -> None:
        # JSON needs decoded records: decode just this batch's protobuf fields.
        records = records_from_fields(fields)
        data = dumps(batch_to_json(records, tail, self._fmt)).decode()
        await self._event(data, "batch", sse.format_event_id(last_seq, count_so_far, bytes_so_far))

    async def heartbeat(self, tail: StreamPosition) -> None:
        await self._event(dumps({"timestamp": now_ms(), "tail": position_to_json(tail)}).decode(), "ping")

    async def error(self, err: S2Error) -> None:
        await self._event(dumps(error_payload(err)).decode(), "error")

    async def done(self) -> None:
        await self._event(sse.DONE, None)


class S2SWriter:
    def __init__(self, out: Output, compression: s2s.Compression, corrupt: bool) -> None:
        self._out = out
        self._compression = compression
        self._corrupt = corrupt

    async def _frame(self, payload: bytes) -> None:
        if self._corrupt:  # the corrupt fault: this one frame's payload is not a valid ReadBatch
            self._corrupt = False
            payload = GARBAGE_PROTOBUF
        compress = len(payload) >= COMPRESS_MIN_BYTES
        await self._out.write(
            s2s.encode_frame(payload, compression=self._compression if compress else s2s.Compression.NONE)
        )

    async def batch(
        self, fields: list[bytes], last_seq: int, tail: StreamPosition | None, count_so_far: int, bytes_so_far: int
    ) -> None:
        # Records are complete ReadBatch.records fields: a batch is a join, not a rebuild.
        await self._frame(encode_batch(fields, tail))

    async def heartbeat(self, tail: StreamPosition) -> None:
        await self._frame(encode_batch([], tail))

    async def error(self, err: S2Error) -> None:
        await self._out.write(s2s.encode_terminal(err.status, dumps(error_payload(err))))

    async def done(self) -> None:
        pass  # a clean s2s end is the end of the body


@dataclass(frozen=True, slots=True)
class Heartbeats:
    """Random gaps between heartbeats, in seconds (S2: 5-15 s)."""

    min: float
    max: float

    def gap(self) -> float:
        return random.uniform(self.min, self.max)


def _remaining(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(0, limit - used)


async def run_session(
    stream: Stream,
    cipher: RecordCipher | None,
    query: ReadQuery,
    start: int,
    writer: SessionWriter,
    live: Live,
    heartbeats: Heartbeats,
    delivered: tuple[int, int] = (0, 0),
    stall: float = 0.0,
    deletion_as_s2_lite: bool = False,
) -> None:
    """Catch up from `start`, then follow live, until a bound, the wait, a close or a delete ends it.

    `delivered` is (records, metered bytes) already delivered before a resumption (Last-Event-ID):
    the session's bounds are reduced by it and its event ids go on counting from it, as S2's do
    (checked against s2-lite, s2-cli 0.43.4: `Last-Event-ID: 1,2,20` then `id: 2,3,30`).
    S2: lite/src/backend/read.rs `read_session` (catch-up batches without a tail, live batches and
    heartbeats with one; a position trimmed away resumes at the first remaining record).
    In an encrypted stream `cipher` opens each batch; a key that did not seal it ends the session
    with `decryption_failed` (S2: lite/src/backend/read.rs stops at the first error).
    """
    loop = asyncio.get_running_loop()
    count_so_far, bytes_so_far = delivered  # the session's totals, resumptions included (SSE ids)
    count_limit, bytes_limit = query.limit.count, query.limit.bytes
    count_left = _remaining(count_limit, count_so_far)
    bytes_left = _remaining(bytes_limit, bytes_so_far)
    # S2's default wait: 0 when bounded, forever (None) when not.
    wait: float | None = query.wait if query.wait is not None else (0 if query.bounded else None)
    pos = start
    following = False
    deadline: float | None = None
    next_heartbeat = 0.0

    if stall > 0:  # the stall fault: headers are out, now nothing at all (not even heartbeats)
        until = loop.time() + stall
        while live.close_error is None and (left := until - loop.time()) > 0:
            live.wake.clear()
            await live.wait(left)

    while True:
        if live.close_error is not None:
            await writer.error(live.close_error)
            return
        if stream.deleted:
            if deletion_as_s2_lite and pos >= stream.next_seq and count_left != 0 and bytes_left != 0:
                # The terminal trim is the stream's next record for a session that has delivered
                # all the others (following, or just done catching up): S2's streamer hands it on
                # before it goes.
                trim, size, tail = terminal_trim(stream)
                await writer.batch([trim], tail.seq_num - 1, tail, count_so_far + 1, bytes_so_far + size)
            await writer.error(deleted_error(stream, deletion_as_s2_lite))
            return
        if count_left == 0 or bytes_left == 0:
            await writer.done()
            return
        pos = max(pos, stream.first_index())  # trimmed under the session: go on from what remains
        if pos < stream.next_seq:
            end = stream.end_index(
                pos,
                MAX_BATCH_RECORDS if count_left is None else min(count_left, MAX_BATCH_RECORDS),
                MAX_BATCH_BYTES if bytes_left is None else min(bytes_left, MAX_BATCH_BYTES),
                query.until,
            )
            if end == pos:
                # A batch cap always admits one record (records are <= 1 MiB), so an empty run
                # means the session's own `bytes` or `until` bound is reached.
                await writer.done()
                return
            try:
                fields = stream.read_fields(pos, end, cipher)
            except S2Error as err:
                await writer.error(err)
                return
            size = stream.metered(pos, end)
            if live.stats is not None:
                live.stats.served(f"{stream.basin}/{stream.name}", end - pos, sum(map(len, fields)))
            count_so_far += end - pos
            bytes_so_far += size
            count_left = _remaining(count_limit, count_so_far)
            bytes_left = _remaining(bytes_limit, bytes_so_far)
            # Only batches served while following (records that arrived live) carry the tail.
            await writer.batch(fields, end - 1, stream.tail if following else None, count_so_far, bytes_so_far)
            pos = end
            if following:
                now = loop.time()
                next_heartbeat = now + heartbeats.gap()
                deadline = None if wait is None else now + wait
            continue

        # Caught up with the tail.
        now = loop.time()
        if not following:
            if wait == 0:
                await writer.done()
                return
            following = True
            await writer.heartbeat(stream.position_at(pos))
            now = loop.time()
            next_heartbeat = now + heartbeats.gap()
            deadline = None if wait is None else now + wait
        live.wake.clear()
        if pos < stream.next_seq or live.close_error is not None or stream.deleted:
            continue  # something happened while the last write was draining
        wake_at = next_heartbeat if deadline is None else min(next_heartbeat, deadline)
        if await live.wait(max(0.0, wake_at - now)):
            continue
        # The wait timed out, but records may have arrived just as it did (the wake-up lost the
        # race with the timeout): deliver them first, so no heartbeat runs ahead of the records.
        if pos < stream.next_seq or live.close_error is not None or stream.deleted:
            continue
        now = loop.time()
        if deadline is not None and now >= deadline:
            await writer.done()
            return
        if now >= next_heartbeat:
            # The tail as this session has delivered it (all of it, checked just above).
            await writer.heartbeat(stream.position_at(pos))
            next_heartbeat = loop.time() + heartbeats.gap()
