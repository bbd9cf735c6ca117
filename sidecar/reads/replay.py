"""Replays through the history cache: sessions and one-shot reads served from `history.py` where
it covers them, with one upstream session per gap shared by every reader that needs it.

A reader stands at `pos` (its `ResumePlan.next_seq_num`, or its start). In a loop:
1. If the cache covers `pos` (and S2 confirmed the stream within `max_age`), it is served from
   there, within its own remaining bounds (count, metered bytes, until).
2. Else, if another reader's upstream session (a `Run`) is fetching the range `pos` is in (it
   started at or before `pos` and has not passed it yet, or passed it only just now), the reader
   waits for that run to move past `pos` and reads what it fetched from the cache (for at most
   `FOLLOW_PATIENCE` at a time: a run whose app stopped reading is left behind).
3. Else it opens its own upstream session (a run others may follow) from `pos`, with its own
   remaining bounds, exactly the request it would make without the cache; every batch goes into
   the cache before it is handed on. The run ends at the session's stop, when the cache covers
   what comes next (someone else fetched it), or, for a follow-for-ever session, at the tail: the
   rest is the live path (`hub.py`) as without the cache.

A follower never depends on the cache keeping what it waits for: if the records it waited for
were evicted before it read them, it fetches them itself (step 3), so a small cache costs upstream
reads, never progress. Only `SeqNum` starts are served from the cache; `timestamp` and
`tail_offset` starts resolve upstream (the cache cannot prove where they land) and fill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from sidecar.errors import RangeNotSatisfiable, S2Error, SidecarError
from sidecar.metrics import Metrics
from sidecar.reads.coalesce import Progress, SingleFlight
from sidecar.reads.history import HistoryCache, Limits, StreamKey, index_records
from sidecar.reads.hub import Hub, shareable
from sidecar.reads.plan import ResumePlan
from sidecar.reads.session import Observer, SessionEvent, Trimmed, resumable_session, session_observer
from sidecar.reads.tails import TailCache
from sidecar.telemetry import NO_CALL_TRACE, S2_CACHE, CallTrace
from sidecar.types import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, ReadLimit, ReadQuery, SeqNum
from sidecar.upstream.client import MERGE_BYTES, UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch, merge_batches

log = logging.getLogger(__name__)

S2_CACHE_HISTORY = "history"  # value of S2_CACHE when records came from the history cache
S2_CACHE_RECORDS = "s2.cache.records"  # how many records of the call came from it
AHEAD_WINDOW = MAX_BATCH_RECORDS  # a reader at most this far ahead of a run waits for it
# A follower waits this long for a run to move before fetching on its own: the run goes at its
# own app's pace, and an app that stopped reading must not hold the others back.
FOLLOW_PATIENCE = 1.0


@dataclass(eq=False)
class Run:
    """One reader's upstream session over a gap, which readers behind it follow."""

    start: int
    next: int  # first seq_num the run has not received
    live: bool = False  # reached the tail (heartbeat): past here is the live path
    ended: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

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
        cache: HistoryCache,
        tails: TailCache,
        hub: Hub,
        *,
        share_sessions: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.policy, self.cache, self.tails, self.hub = client, policy, cache, tails, hub
        self.share_sessions = share_sessions
        self.metrics: Metrics = client.metrics
        self.runs: dict[StreamKey, list[Run]] = {}
        self._clock = clock
        self._validations: SingleFlight[StreamKey, None] = SingleFlight()
        self._background: dict[StreamKey, asyncio.Task[bool]] = {}  # revalidate_soon's tasks
        cache.on_evict = self.metrics.history_evictions.inc

    async def close(self) -> None:
        tasks = list(self._background.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- accounting -------------------------------------------------------------------------------

    def fill(self, key: StreamKey, batch: ReadBatch) -> None:
        """A batch S2 returned, by any read path: count it and keep it."""
        if batch.count:
            self.metrics.history_upstream_bytes.inc(len(batch.data))
            self.cache.insert(key, batch)

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

    def upstream_failed(self, key: StreamKey, error: BaseException) -> None:
        if isinstance(error, S2Error) and error.status == 404:
            self.cache.forget(key)  # deleted: whatever comes back under this name is a new stream

    # -- freshness --------------------------------------------------------------------------------

    async def ensure_fresh(self, key: StreamKey) -> bool:
        """Whether the stream's entries may be served: confirmed with S2 within `max_age`, asking
        again (once for all concurrent readers) when that is older."""
        if self.cache.fresh(key):
            return True
        if not self.cache.holds(key):
            return False

        async def validate(_progress: Progress) -> None:
            await self._validate(key)

        with contextlib.suppress(SidecarError):
            await self._validations.do(key, validate)
        return self.cache.fresh(key)

    def revalidate_soon(self, key: StreamKey) -> None:
        """Confirm the stream's entries in the background (for the next reads): a call with a
        deadline does not wait for it, it reads upstream this time."""
        if self.cache.holds(key) and not self.cache.fresh(key) and key not in self._background:
            task = asyncio.get_running_loop().create_task(self.ensure_fresh(key))
            self._background[key] = task
            task.add_done_callback(lambda _t: self._background.pop(key, None))

    async def _validate(self, key: StreamKey) -> None:
        """Prove the entries still stand: the tail is not below them (a shorter stream is a new
        incarnation), the first remaining record (the trim point, by explicit trims or retention)
        is at or below them, and the lowest record held is byte-identical to S2's (timestamps
        included, so a re-created stream with the same bodies does not pass)."""
        at = self._clock()
        try:
            tail = await self.client.check_tail(*key)
            self.cache.observe_tail(key, tail.seq_num)
            first = await self.client.read(*key, ReadQuery(SeqNum(0), ReadLimit(count=1)))
        except SidecarError as e:
            self.upstream_failed(key, e)
            if isinstance(e, RangeNotSatisfiable):  # empty stream: nothing held can be right
                self.cache.forget(key)
            raise
        if not first.count:
            self.cache.validated(key, tail.seq_num, at)  # everything below the tail is trimmed
            return
        assert first.first_seq_num is not None
        held = self.cache.first_record(key)
        if held is not None:
            seq, data = held
            if seq < first.first_seq_num:
                self.cache.trim(key, first.first_seq_num)
                held = self.cache.first_record(key)
        if held is not None:
            seq, data = held
            probe = first
            if seq != first.first_seq_num:
                probe = await self.client.read(*key, ReadQuery(SeqNum(seq), ReadLimit(count=1)))
            if probe.first_seq_num != seq or _first_field(probe) != data:
                log.info("history cache: %s/%s is not the stream it held; dropping it", *key)
                self.cache.forget(key)
                return
        self.cache.validated(key, first.first_seq_num, at)

    # -- one-shot reads ---------------------------------------------------------------------------

    async def read_cached(self, key: StreamKey, query: ReadQuery, call: CallTrace) -> ReadBatch | None:
        """A one-shot read answered from the cache (S2's batch caps and the query's bounds), or
        None when the cache cannot answer it with at least one record, or its entries wait for
        S2's confirmation (asked for in the background: a unary call has a deadline to keep)."""
        if not isinstance(query.start, SeqNum) or not self.cache.holds(key):
            return None
        if not self.cache.covers(key, query.start.value):
            return None
        if not self.cache.fresh(key):
            self.revalidate_soon(key)
            return None
        count = MAX_BATCH_RECORDS if query.limit.count is None else min(query.limit.count, MAX_BATCH_RECORDS)
        nbytes = MAX_BATCH_BYTES if query.limit.bytes is None else min(query.limit.bytes, MAX_BATCH_BYTES)
        if count <= 0 or nbytes <= 0:
            return None
        got = self.cache.lookup(key, query.start.value, Limits(count, nbytes, query.until), 1 << 62)
        if not got.records:
            return None
        batch = merge_batches(got.pieces)
        self._hit(batch.count, len(batch.data), call, [0])
        return batch

    # -- sessions ---------------------------------------------------------------------------------

    def _run_for(self, key: StreamKey, pos: int) -> Run | None:
        for run in self.runs.get(key, ()):
            if not run.ended and not run.live and run.start <= pos and run.next <= pos <= run.next + AHEAD_WINDOW:
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
    ) -> AsyncGenerator[ReadBatch, None]:
        """A `SeqNum`-start session served from the cache where it can be (see the module docs)."""
        assert isinstance(query.start, SeqNum)
        key = (basin, stream)
        shared = self.share_sessions and shareable(query)
        limit = query.limit
        served = [0]
        tried: Run | None = None  # the run last waited for, if the cache then still missed
        while not plan.exhausted:
            pos = plan.next_seq_num if plan.next_seq_num is not None else query.start.value
            # 1. The cache.
            if self.cache.covers(key, pos) and await self.ensure_fresh(key):
                got = self.cache.lookup(
                    key,
                    pos,
                    Limits(
                        None if limit.count is None else limit.count - plan.records,
                        None if limit.bytes is None else limit.bytes - plan.metered_bytes,
                        query.until,
                    ),
                    MERGE_BYTES,
                )
                if got.records:
                    self._hit(got.records, sum(len(p.data) for p in got.pieces), call, served)
                    for piece in got.pieces:
                        assert piece.last_seq_num is not None
                        plan.delivered(piece.count, piece.last_seq_num, 0, self._clock())
                        yield piece
                    plan.metered_bytes += got.metered
                    if got.stopped_by_limit:
                        return  # count, bytes or until reached: where S2 ends the session
                    tried = None
                    continue
            # 2. Someone's run is fetching this: follow it.
            run = self._run_for(key, pos)
            if run is not None and run is not tried:
                tried = run
                with contextlib.suppress(TimeoutError):
                    while run.next <= pos and not run.ended and not run.live:
                        async with asyncio.timeout(FOLLOW_PATIENCE):
                            await run.changed()
                continue
            # 3. Our own upstream session over the gap.
            if shared and (feed := self.hub.feeds.get(key)) is not None and feed.can_serve(pos):
                break  # the live feed is already there
            own = plan.next_query(self._clock()) if plan.next_seq_num is not None else query
            if own is None:
                return
            run = Run(pos, pos)
            self.runs.setdefault(key, []).append(run)
            observe = _trim_aware(session_observer(self.metrics, call), lambda point: self.cache.trim(key, point))
            batches = resumable_session(
                self.client,
                basin,
                stream,
                own,
                policy=self.policy,
                plan=plan,
                observe=observe,
                on_tail=lambda tail: self.tails.observe(key, tail),
            )
            to_live = False
            try:
                async with contextlib.aclosing(batches):
                    async for batch in batches:
                        if batch.count:
                            assert batch.last_seq_num is not None
                            self.fill(key, batch)  # before it is handed on: followers read it there
                            self._missed(batch)
                            run.advance(batch.last_seq_num + 1)
                        elif batch.tail is not None:
                            run.live = True
                            run.advance(batch.tail.seq_num)
                        yield batch
                        if run.live and shared:
                            to_live = True
                            break  # at the tail: the live path takes over, as without the cache
                        if (
                            batch.count
                            and plan.next_seq_num is not None
                            and not run.live
                            and self.cache.covers(key, plan.next_seq_num)
                            and self.cache.fresh(key)
                        ):
                            break  # the cache already holds what comes next (another run got it)
                    else:
                        return  # upstream ended the session: its stop was reached
            except SidecarError as e:
                self.upstream_failed(key, e)
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
                await _settled(self.hub, key)
                live = self.hub.session(basin, stream, query, plan, call=call, told_tail=True)
                async with contextlib.aclosing(live) as rest:
                    async for batch in rest:
                        yield batch
                return
        else:
            return
        # The live feed can continue exactly here.
        async with contextlib.aclosing(self.hub.session(basin, stream, query, plan, call=call)) as rest:
            async for batch in rest:
                yield batch


async def _settled(hub: Hub, key: StreamKey, within: float = 5.0) -> None:
    feed = hub.feed(key)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await feed.settled.wait()


def _first_field(batch: ReadBatch) -> bytes:
    offsets, _ = index_records(batch.data, 1)
    return batch.data[offsets[0] : offsets[1]]
