"""Replays through the history cache: sessions and one-shot reads served from `history.py` where
it covers them, with one upstream session per gap shared by every reader that needs it.

A reader stands at `pos` (its `ResumePlan.next_seq_num`, or its start). In a loop:
1. If the cache holds `pos` and may serve it now (`history.py`: by age, or by incarnation), it
   is served from there, one upstream batch at a time, within its own remaining bounds (count,
   metered bytes, until); freshness is checked again before each batch, however slowly the app
   reads. A chunk that only S2 can vouch for again is confirmed first (once for all readers).
2. Else, if another reader's upstream session (a `Run`) is fetching the range `pos` is in (it
   started at or before `pos` and has not passed it yet, or passed it only just now), the reader
   waits for that run to move past `pos` and reads what it fetched from the cache (for at most
   `FOLLOW_PATIENCE` in all, and not for a run whose own app sets its pace: a run whose app reads
   slowly or stopped reading is left behind, for good).
3. Else it opens its own upstream session (a run others may follow) from `pos`, with its own
   remaining bounds, exactly the request it would make without the cache; every batch goes into
   the cache before it is handed on. The run ends at the session's stop, when the cache covers
   what comes next (someone else fetched it), or, for a follow-for-ever session, at the tail: the
   rest is the live path (`hub.py`) as without the cache.

A follower never depends on the cache keeping what it waits for: if the records it waited for
were evicted before it read them, it fetches them itself (step 3), so a small cache costs upstream
reads, never progress. Only `SeqNum` starts are served from the cache; `timestamp` and
`tail_offset` starts resolve upstream (the cache cannot prove where they land) and fill it.

Confirming a stream (`confirm`) asks S2, concurrently: its listing (the incarnation's
`created_at`), its tail, and its first remaining record. A basin whose token may not list streams
(403) is in *age* mode for the life of the process: its records are served only within `max_age`
of being read, and nothing is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from sidecar.encryption import EncryptionKey, scope_of
from sidecar.errors import RangeNotSatisfiable, S2Error, SidecarError
from sidecar.metrics import Metrics
from sidecar.reads.coalesce import Progress, SingleFlight
from sidecar.reads.history import Confirmation, HistoryCache, Limits
from sidecar.reads.hub import Hub, shareable
from sidecar.reads.plan import ResumePlan
from sidecar.reads.session import Observer, SessionEvent, Trimmed, resumable_session, session_observer
from sidecar.reads.tails import TailCache
from sidecar.telemetry import NO_CALL_TRACE, S2_CACHE, CallTrace
from sidecar.types import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    ReadLimit,
    ReadQuery,
    ReadScope,
    SeqNum,
    StreamKey,
    StreamPosition,
)
from sidecar.upstream.client import MERGE_BYTES, UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch, merge_batches

log = logging.getLogger(__name__)

S2_CACHE_HISTORY = "history"  # value of S2_CACHE when records came from the history cache
S2_CACHE_RECORDS = "s2.cache.records"  # how many records of the call came from it
AHEAD_WINDOW = MAX_BATCH_RECORDS  # a reader at most this far ahead of a run waits for it
# A follower waits at most this long for a run to pass it before fetching on its own: the run goes
# at its own app's pace, and an app that reads slowly or stopped must not hold the others back.
FOLLOW_PATIENCE = 1.0
# A run whose app took longer than this to take a batch goes at its app's pace, not upstream's.
APP_HOLD = 0.25


class Mode(Enum):
    """How the history cache knows a basin's cached records are current (module docs)."""

    INCARNATION = "incarnation"
    AGE = "age"


@dataclass(eq=False)
class Run:
    """One reader's upstream session over a gap, which readers behind it follow."""

    start: int
    next: int  # first seq_num the run has not received
    live: bool = False  # reached the tail (heartbeat): past here is the live path
    ended: bool = False
    handing_since: float | None = None  # when it began handing a batch to its own app, if it is
    last_hand: float = 0.0  # how long its app took to take the last batch
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def held_by_app(self, now: float) -> bool:
        """Its own app, not upstream, sets its pace: readers behind it should not wait for it."""
        if self.handing_since is not None and now - self.handing_since > APP_HOLD:
            return True
        return self.last_hand > APP_HOLD

    def advance(self, next_seq_num: int) -> None:
        self.next = max(self.next, next_seq_num)
        self._pulse()

    def end(self) -> None:
        self.ended = True
        self._pulse()

    def _pulse(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed(self) -> None:
        await self._changed.wait()


def _trim_aware(observe: Observer, on_trim: Callable[[int], None]) -> Observer:
    def both(event: SessionEvent) -> None:
        if isinstance(event, Trimmed):
            on_trim(event.to_seq_num)  # S2 skipped them: they are gone
        observe(event)

    return both


class Replays:
    def __init__(
        self,
        client: UpstreamClient,
        policy: RetryPolicy,
        history: HistoryCache,
        tails: TailCache,
        hub: Hub,
        *,
        share_sessions: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.policy, self.history, self.tails, self.hub = client, policy, history, tails, hub
        self.share_sessions = share_sessions
        self.metrics: Metrics = client.metrics
        self.runs: dict[ReadScope, list[Run]] = {}
        self._clock = clock
        self._confirmations: SingleFlight[ReadScope, None] = SingleFlight()
        self._background: dict[ReadScope, asyncio.Task[None]] = {}  # confirm_soon's tasks
        self.modes: dict[str, Mode] = {}  # per basin, once the cache has read it
        for mode in Mode:
            self.metrics.history_basins.labels(mode.value).set_function(
                lambda mode=mode: sum(1 for m in self.modes.values() if m is mode)  # type: ignore[misc]
            )
        history.on_evict = self.metrics.history_evictions.inc

    async def close(self) -> None:
        tasks = list(self._background.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- accounting -------------------------------------------------------------------------------

    def fill(self, key: ReadScope, batch: ReadBatch, asked_at: float) -> None:
        """A batch S2 returned, by any read path, to a request sent at `asked_at`: count it and
        keep it."""
        if batch.count:
            self.metrics.history_upstream_bytes.inc(len(batch.data))
            self.history.insert(key, batch, asked_at)

    def _missed(self, batch: ReadBatch) -> None:
        if batch.count:
            self.metrics.history_records.labels("miss").inc(batch.count)
            self.metrics.history_bytes.labels("miss").inc(len(batch.data))

    def _hit(self, records: int, nbytes: int, call: CallTrace, total: list[int]) -> None:
        self.metrics.history_records.labels("hit").inc(records)
        self.metrics.history_bytes.labels("hit").inc(nbytes)
        total[0] += records
        call.set(S2_CACHE, S2_CACHE_HISTORY)
        call.set(S2_CACHE_RECORDS, total[0])

    def upstream_failed(self, stream: StreamKey, error: BaseException) -> None:
        if isinstance(error, S2Error) and error.status == 404:
            self.history.forget_stream(stream)  # deleted: whatever comes back under this name is a new stream

    # -- confirming with S2 -----------------------------------------------------------------------

    def _mode(self, basin: str) -> Mode:
        return self.modes.setdefault(basin, Mode.INCARNATION)

    async def confirm(self, key: ReadScope, encryption: EncryptionKey | None) -> None:
        """Ask S2 whether the stream's cached records stand (once for all concurrent readers of
        the scope, with its key: `encryption`). Failures are not raised: what was not confirmed is
        simply not served."""
        if self._mode(key[0]) is not Mode.INCARNATION:
            return

        async def confirm(_progress: Progress) -> None:
            await self._confirm(key, encryption)

        with contextlib.suppress(SidecarError):
            await self._confirmations.do(key, confirm)

    def confirm_soon(self, key: ReadScope, encryption: EncryptionKey | None) -> None:
        """`confirm` in the background (for the next reads: a call with a deadline does not wait)."""
        if key not in self._background and self._mode(key[0]) is Mode.INCARNATION:
            task = asyncio.get_running_loop().create_task(self.confirm(key, encryption))
            self._background[key] = task
            task.add_done_callback(lambda _t: self._background.pop(key, None))

    async def _confirm(self, key: ReadScope, encryption: EncryptionKey | None) -> None:
        started = self._clock()
        # All three, whatever fails first: a failure must not leave the others running unseen.
        answers = await asyncio.gather(
            self.client.stream_incarnation(*key[:2]),
            self.client.check_tail(*key[:2]),
            self._first_remaining(key, encryption),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, SidecarError):
                raise answer
        errors = [a for a in answers if isinstance(a, SidecarError)]
        if errors:
            self._confirmation_failed(key, errors[0])  # the listing's own error first, if any
            raise errors[0]
        incarnation, tail, first = answers
        assert not isinstance(incarnation, BaseException) and isinstance(tail, StreamPosition)
        assert not isinstance(first, BaseException)
        before = self.history.knows_incarnation(key)
        seen = Confirmation(started, self._clock(), incarnation, tail.seq_num, first)
        result = "deleted" if incarnation is None else "same"
        if incarnation is not None and before and not self.history.same_incarnation(key, incarnation):
            result = "recreated"
            log.info("history cache: %s/%s was deleted and re-created; dropping what it held", *key[:2])
        self.history.confirm(key, seen)
        self.metrics.history_confirmations.labels(result).inc()

    def _confirmation_failed(self, key: ReadScope, error: SidecarError) -> None:
        denied = isinstance(error, S2Error) and error.status == 403 and error.code == "permission_denied"
        if denied and self._mode(key[0]) is Mode.INCARNATION:
            self.modes[key[0]] = Mode.AGE
            log.warning(
                "history cache: basin %s: S2 refused to list its streams (permission_denied); its "
                "records are served only within --history-cache-max-age of being read",
                key[0],
            )
        self.upstream_failed(key[:2], error)
        deleted = isinstance(error, S2Error) and error.status == 404
        self.metrics.history_confirmations.labels("deleted" if deleted else "failed").inc()

    async def _first_remaining(self, key: ReadScope, encryption: EncryptionKey | None) -> int | None:
        """The first record S2 still has (explicit trims and retention move it); None if none.
        Read with the scope's key: an encrypted stream answers no read without it."""
        try:
            first = await self.client.read(*key[:2], ReadQuery(SeqNum(0), ReadLimit(count=1)), encryption)
        except RangeNotSatisfiable:
            return None  # nothing from 0 on that a bounded read could return: all trimmed, or empty
        return first.first_seq_num

    # -- one-shot reads ---------------------------------------------------------------------------

    def read_cached(
        self, key: ReadScope, query: ReadQuery, call: CallTrace, encryption: EncryptionKey | None = None
    ) -> tuple[ReadBatch | None, ReadQuery | None]:
        """A one-shot read's records from the cache, and what must still be asked upstream for the
        same batch (None: the cache answered all of it). S2 answers a one-shot read with as many
        records as its bounds allow (at most 1,000 / 1 MiB), so where the cache stops short of
        them the rest comes from upstream in the same call, from where the cache stopped, with the
        bounds that remain and no `wait` (S2 answers at once when it has records). Entries that
        only S2 can vouch for again are confirmed in the background: a unary call has a deadline."""
        if not isinstance(query.start, SeqNum) or not self.history.holds(key):
            return None, query
        count = MAX_BATCH_RECORDS if query.limit.count is None else min(query.limit.count, MAX_BATCH_RECORDS)
        nbytes = MAX_BATCH_BYTES if query.limit.bytes is None else min(query.limit.bytes, MAX_BATCH_BYTES)
        if count <= 0 or nbytes <= 0:
            return None, query
        got = self.history.lookup(key, query.start.value, Limits(count, nbytes, query.until), 1 << 62)
        if got.stale:
            self.confirm_soon(key, encryption)
        if not got.records:
            return None, query
        batch = merge_batches(got.pieces)
        self._hit(batch.count, len(batch.data), call, [0])
        if got.stopped_by_limit or got.records >= count or got.metered >= nbytes:
            return batch, None
        rest = ReadQuery(
            SeqNum(got.next_seq_num),
            ReadLimit(count=count - got.records, bytes=nbytes - got.metered),
            until=query.until,
            clamp=query.clamp,
        )
        return batch, rest

    # -- sessions ---------------------------------------------------------------------------------

    def _run_for(self, key: ReadScope, pos: int) -> Run | None:
        for run in self.runs.get(key, ()):
            if (
                not run.ended
                and not run.live
                and run.start <= pos
                and run.next <= pos <= run.next + AHEAD_WINDOW
                and not run.held_by_app(self._clock())
            ):
                return run
        return None

    async def session(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        plan: ResumePlan,
        *,
        call: CallTrace = NO_CALL_TRACE,
        encryption: EncryptionKey | None = None,
    ) -> AsyncGenerator[ReadBatch, None]:
        """A `SeqNum`-start session served from the cache where it can be (see the module docs),
        in its key's scope only (`encryption`)."""
        assert isinstance(query.start, SeqNum)
        key = scope_of(basin, stream, encryption)
        shared = self.share_sessions and shareable(query)
        limit = query.limit
        served = [0]
        tried: Run | None = None  # the run last waited for, if the cache then still missed
        too_slow: set[Run] = set()  # runs this reader gave up waiting for: never waited for again
        confirmed_at_pos: int | None = None  # where a confirmation was last asked for
        asked_incarnation = False
        while not plan.exhausted:
            pos = plan.next_seq_num if plan.next_seq_num is not None else query.start.value
            # 1. The cache: one message's worth at a time, so that freshness is decided again
            # before each (an app that reads slowly must not get records S2 dropped since).
            got = self.history.lookup(
                key,
                pos,
                Limits(
                    None if limit.count is None else limit.count - plan.records,
                    None if limit.bytes is None else limit.bytes - plan.metered_bytes,
                    query.until,
                ),
                MERGE_BYTES,
                max_bytes=MERGE_BYTES,
            )
            if got.records:
                self._hit(got.records, sum(len(p.data) for p in got.pieces), call, served)
                plan.metered_bytes += got.metered
                # Small chunks (a live feed's batches of a few records) go out merged: the cost
                # of a gRPC message, not of its records, bounds how fast a replay goes.
                for batch in _merged(got.pieces, MERGE_BYTES):
                    assert batch.last_seq_num is not None
                    plan.delivered(batch.count, batch.last_seq_num, 0, self._clock())
                    yield batch
                if got.stopped_by_limit:
                    return  # count, bytes or until reached: where S2 ends the session
                tried = confirmed_at_pos = None
                continue
            if got.stale and confirmed_at_pos != pos:
                confirmed_at_pos = pos  # once per position: a failed confirmation reads upstream
                await self.confirm(key, encryption)
                continue
            # 2. Someone's run is fetching this: follow it.
            run = self._run_for(key, pos)
            if run is not None and run is not tried and run not in too_slow:
                tried = run
                # At most FOLLOW_PATIENCE in all for the run to pass `pos`, and not at all once its
                # own app sets its pace: a leader whose app reads slowly (not only one that stopped
                # reading) holds no one back; one that waits on upstream is worth waiting for.
                deadline = self._clock() + FOLLOW_PATIENCE
                while run.next <= pos and not run.ended and not run.live:
                    now = self._clock()
                    if now >= deadline or run.held_by_app(now):
                        too_slow.add(run)
                        break
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(deadline - now, APP_HOLD)):
                            await run.changed()
                continue
            # 3. Our own upstream session over the gap.
            if shared and (feed := self.hub.feeds.get(key)) is not None and feed.can_serve(pos):
                break  # the live feed is already there
            own = plan.next_query(self._clock()) if plan.next_seq_num is not None else query
            if own is None:
                return
            if not asked_incarnation and not self.history.knows_incarnation(key):
                # Learn the incarnation before the run asks for records, so that what it reads
                # can be confirmed later, not only served within max_age (`history.py`); then
                # look again: another reader may have started a run meanwhile.
                asked_incarnation = True
                await self.confirm(key, encryption)
                continue
            run = Run(pos, pos)
            self.runs.setdefault(key, []).append(run)
            observe = _trim_aware(session_observer(self.metrics, call), lambda point: self.history.trim(key, point))
            batches = resumable_session(
                self.client,
                basin,
                stream,
                own,
                policy=self.policy,
                plan=plan,
                observe=observe,
                on_tail=lambda tail: self.tails.observe((basin, stream), tail),
                on_records=functools.partial(self.fill, key),  # before it is handed on: followers read it there
                encryption=encryption,
            )
            to_live = False
            try:
                async with contextlib.aclosing(batches):
                    async for batch in batches:
                        if batch.count:
                            assert batch.last_seq_num is not None
                            self._missed(batch)
                            run.advance(batch.last_seq_num + 1)
                        elif batch.tail is not None:
                            run.live = True
                            run.advance(batch.tail.seq_num)
                        run.handing_since = handed = self._clock()
                        yield batch
                        run.last_hand, run.handing_since = self._clock() - handed, None
                        if run.live and shared:
                            to_live = True
                            break  # at the tail: the live path takes over, as without the cache
                        if (
                            batch.count
                            and plan.next_seq_num is not None
                            and not run.live
                            and self.history.servable_at(key, plan.next_seq_num)
                        ):
                            break  # the cache already holds what comes next (another run got it)
                    else:
                        return  # upstream ended the session: its stop was reached
            except SidecarError as e:
                self.upstream_failed((basin, stream), e)
                raise
            finally:
                run.end()
                runs = self.runs.get(key, [])
                if run in runs:
                    runs.remove(run)
                if not runs:
                    self.runs.pop(key, None)
            if to_live:
                # Start (or find) the feed now, so the hub can switch this reader to it at once.
                await self.hub.settled(key, encryption)
                live = self.hub.session(basin, stream, query, plan, call=call, told_tail=True, encryption=encryption)
                async with contextlib.aclosing(live) as rest:
                    async for batch in rest:
                        yield batch
                return
        else:
            return
        # The live feed can continue exactly here.
        live = self.hub.session(basin, stream, query, plan, call=call, encryption=encryption)
        async with contextlib.aclosing(live) as rest:
            async for batch in rest:
                yield batch


def _merged(pieces: list[ReadBatch], max_bytes: int) -> Iterator[ReadBatch]:
    """Consecutive pieces merged into batches of at most `max_bytes` (a piece alone may be more)."""
    group: list[ReadBatch] = []
    size = 0
    for piece in pieces:
        if group and size + len(piece.data) > max_bytes:
            yield merge_batches(group)
            group, size = [], 0
        group.append(piece)
        size += len(piece.data)
    if group:
        yield merge_batches(group)
