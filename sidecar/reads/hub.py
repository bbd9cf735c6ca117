"""Shared live sessions: one upstream session per followed stream, fanned out to every local
`ReadSession` that follows it.

A `LiveFeed` follows one stream from its tail for as long as someone listens, resuming by
itself after upstream failures, and keeps its most recent batches so a reader slightly behind
can still join. A reader (`shared_session`) joins the feed when the feed can continue exactly
where the reader is; otherwise it reads on its own upstream session, and joins once that
session has caught up to the live edge. Each subscriber has a bounded queue: one that falls
behind is detached and finishes on its own upstream session from where it was, so a slow app
never holds the others back and never loses a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from sidecar.encryption import EncryptionKey, scope_of
from sidecar.errors import SidecarError
from sidecar.reads.plan import ResumePlan
from sidecar.reads.session import SessionEvent, Trimmed, resumable_session, session_observer
from sidecar.reads.tails import TailCache
from sidecar.telemetry import NO_CALL_TRACE, S2_BASIN, S2_SHARED, S2_STREAM, CallTrace
from sidecar.types import ReadQuery, ReadScope, SeqNum, StreamPosition, TailOffset
from sidecar.upstream.client import MERGE_BYTES, UpstreamClient
from sidecar.upstream.retry import RetryPolicy
from sidecar.wire.protobuf import ReadBatch, batch_from_records, merge_batches, slice_batch

log = logging.getLogger(__name__)

RECENT_BATCHES = 16  # kept by a feed for readers that join slightly behind


def shareable(query: ReadQuery) -> bool:
    """Only sessions that follow for ever share a feed; bounded ones read on their own."""
    return not query.bounded and query.wait is None


@dataclass(eq=False)
class Subscription:
    """One reader's bounded queue of batches from a feed."""

    maxsize: int
    items: deque[ReadBatch] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    detached: bool = False  # must continue on its own once the queue is drained
    too_slow: bool = False  # detached because its queue overflowed

    def offer(self, batch: ReadBatch) -> bool:
        """Queue a batch; False when the queue is full."""
        if len(self.items) >= self.maxsize:
            return False
        self.items.append(batch)
        self.ready.set()
        return True

    def detach(self, *, too_slow: bool = False) -> None:
        self.detached, self.too_slow = True, too_slow
        self.ready.set()

    async def next(self) -> ReadBatch | None:
        """The next batch, or None once detached and drained. A backlog goes out as one message
        (batches merge by concatenation), so a lagging app catches up in fewer, larger messages."""
        items = self.items
        while not items:
            if self.detached:
                return None
            self.ready.clear()
            await self.ready.wait()
        first = items.popleft()
        if not first.count or not items:
            return first
        batches, size = [first], len(first.data)
        # Merge only what fits: a message never grows past MERGE_BYTES by merging (each batch is
        # already within the message limit on its own).
        while items and items[0].count and size + len(items[0].data) <= MERGE_BYTES:
            batch = items.popleft()
            batches.append(batch)
            size += len(batch.data)
        return merge_batches(batches)


class LiveFeed:
    def __init__(
        self,
        key: ReadScope,
        client: UpstreamClient,
        policy: RetryPolicy,
        tails: TailCache,
        *,
        queue_batches: int,
        silence_bound: float,
        on_idle: Callable[[LiveFeed], None],
        linger: float = 2.0,
        join_grace: float = 5.0,
        tracer: trace.Tracer | None = None,
        on_records: Callable[[ReadScope, ReadBatch, float], None] | None = None,
        encryption: EncryptionKey | None = None,
    ) -> None:
        self.key = key  # one feed per stream and key: a feed's readers all read with its key
        self.stream = key[:2]  # what the tail cache knows it by: a tail is the same whatever the key
        self._encryption = encryption
        self._on_records = on_records
        tracer = tracer or trace.NoOpTracer()
        self.linger = linger
        self._client, self._policy, self._tails = client, policy, tails
        self._queue_batches = queue_batches
        self._silence_bound = silence_bound
        self._on_idle = on_idle
        self.subscribers: set[Subscription] = set()
        self.recent: deque[ReadBatch] = deque(maxlen=RECENT_BATCHES)
        self.next_seq_num: int | None = None  # first seq_num the feed has not received
        self.tail: StreamPosition | None = None  # the latest tail upstream told the feed
        self.live = asyncio.Event()  # set once caught up at the tail
        self.settled = asyncio.Event()  # set once live, or ended
        self.error: SidecarError | None = None  # why the feed ended, if it failed
        self.ended = False
        self._linger: asyncio.TimerHandle | None = None
        # The feed outlives the call that started it: it runs in a fresh context under a span of
        # its own (linked to that call), which every subscriber's span links to.
        creator = trace.get_current_span().get_span_context()
        self.span = tracer.start_span(
            "s2 shared session",
            context=otel_context.Context(),
            kind=SpanKind.INTERNAL,
            attributes={S2_BASIN: key[0], S2_STREAM: key[1], S2_SHARED: True},
            links=[Link(creator)] if creator.is_valid else (),
        )
        self._report = session_observer(client.metrics, _SpanEvents(self.span))
        self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())
        # A feed nobody joins (its reader failed, or is still catching up) must not follow for ever.
        self._linger = asyncio.get_running_loop().call_later(self.linger + join_grace, self._idle)

    # -- joining --------------------------------------------------------------------------------

    def can_serve(self, seq_num: int) -> bool:
        """Whether the feed can continue a reader whose next record is `seq_num`, exactly."""
        if self.ended or self.next_seq_num is None or not self.live.is_set():
            return False
        if seq_num == self.next_seq_num:
            return True
        first = self.recent[0].first_seq_num if self.recent else None
        return first is not None and first <= seq_num < self.next_seq_num

    def subscribe(self, seq_num: int, *, announce: bool = True) -> Subscription:
        """Join at `seq_num` (check `can_serve` first): recent batches from there are queued now,
        then a heartbeat when that brings the reader to the tail. S2 sends a heartbeat as soon as
        a session starts following, and the feed's own went out before this reader was here.
        `announce=False`: the reader was just told the tail (it is switching from its own session)."""
        sub = Subscription(self._queue_batches)
        for batch in self.recent:
            if batch.last_seq_num is not None and batch.last_seq_num >= seq_num:
                sub.items.append(slice_batch(batch, seq_num))
        tail = self.tail
        if (announce or sub.items) and tail is not None and tail.seq_num == self.next_seq_num:
            sub.items.append(batch_from_records([], tail))  # a heartbeat: no records, the tail
        self.subscribers.add(sub)
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers and not self.ended and self._linger is None:
            # Keep following briefly: apps often reconnect at once, and the feed stays warm.
            self._linger = asyncio.get_running_loop().call_later(self.linger, self._idle)

    def _idle(self) -> None:
        if not self.subscribers:
            self.close()

    def close(self) -> None:
        self.ended = True
        self._task.cancel()
        self._on_idle(self)

    # -- following ------------------------------------------------------------------------------

    async def _run(self) -> None:
        plan = ResumePlan(ReadQuery(TailOffset(0)))  # follow from the tail, for ever
        reason = "the shared upstream session ended"
        otel_context.attach(trace.set_span_in_context(self.span))  # this task's context is its own
        try:
            on_records = self._on_records
            async for batch in resumable_session(
                self._client,
                *self.stream,
                plan.query,
                policy=self._policy,
                plan=plan,
                observe=self._observe,
                # The history cache keeps what S2 returned, with when it was asked for.
                on_records=None if on_records is None else functools.partial(on_records, self.key),
                encryption=self._encryption,
            ):
                self._receive(batch)
        except asyncio.CancelledError:
            reason = "the shared upstream session was closed"
            raise
        except SidecarError as e:
            reason = f"the shared upstream session failed: {e}"
            self.error = e
            log.info("shared session for %s/%s failed: %s", *self.stream, e)
        finally:
            self.ended = True
            self.settled.set()
            self.span.end()
            self._tails.untrack(self.stream)
            for sub in list(self.subscribers):
                self._detach(sub, reason)
            self._on_idle(self)

    def _observe(self, event: SessionEvent) -> None:
        self._report(event)
        if not isinstance(event, Trimmed):
            self._tails.untrack(self.stream)  # reconnecting: nobody vouches for the tail now

    def _receive(self, batch: ReadBatch) -> None:
        if batch.tail is not None:
            self.tail = batch.tail
        if batch.count:
            assert batch.last_seq_num is not None
            self.recent.append(batch)
            self.next_seq_num = batch.last_seq_num + 1
            caught_up = batch.tail is not None and batch.tail.seq_num == self.next_seq_num
        else:
            assert batch.tail is not None
            if self.next_seq_num is None or batch.tail.seq_num > self.next_seq_num:
                self.next_seq_num = batch.tail.seq_num
            caught_up = True
            self.live.set()
            self.settled.set()
        if caught_up and batch.tail is not None:
            self._tails.track(self.stream, batch.tail, for_seconds=self._silence_bound)
        for sub in list(self.subscribers):
            if not sub.offer(batch):
                self._detach(sub, "the app fell behind the shared feed", too_slow=True)

    def _detach(self, sub: Subscription, reason: str, *, too_slow: bool = False) -> None:
        self.subscribers.discard(sub)
        sub.detach(too_slow=too_slow)
        log.debug("subscriber of %s/%s continues on its own: %s", *self.stream, reason)


class Hub:
    """The registry of live feeds, one per followed stream."""

    def __init__(
        self,
        client: UpstreamClient,
        policy: RetryPolicy,
        tails: TailCache,
        *,
        queue_batches: int = 64,
        silence_bound: float = 20.0,
        linger: float = 2.0,
        tracer: trace.Tracer | None = None,
        on_records: Callable[[ReadScope, ReadBatch, float], None] | None = None,
    ) -> None:
        self._client, self._policy, self._tails = client, policy, tails
        self._tracer = tracer
        self.on_records = on_records  # every batch of records S2 returns to the hub's sessions
        self.linger = linger  # how long a feed with no subscribers keeps following
        self._queue_batches = queue_batches
        self._silence_bound = silence_bound
        self.feeds: dict[ReadScope, LiveFeed] = {}

    def feed(self, key: ReadScope, encryption: EncryptionKey | None = None) -> LiveFeed:
        """The scope's feed, started if need be (`encryption`: the key `key` names, if any)."""
        feed = self.feeds.get(key)
        if feed is None or feed.ended:
            feed = LiveFeed(
                key,
                self._client,
                self._policy,
                self._tails,
                queue_batches=self._queue_batches,
                silence_bound=self._silence_bound,
                on_idle=self._forget,
                linger=self.linger,
                tracer=self._tracer,
                on_records=self.on_records,
                encryption=encryption,
            )
            self.feeds[key] = feed
        return feed

    async def settled(self, key: ReadScope, encryption: EncryptionKey | None = None, within: float = 5.0) -> LiveFeed:
        """Start (or find) the stream's feed and wait (at most `within` seconds) until it is live
        or has ended, so that a reader at the tail can be switched to it at once; the feed."""
        feed = self.feed(key, encryption)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await feed.settled.wait()
        return feed

    def _forget(self, feed: LiveFeed) -> None:
        if self.feeds.get(feed.key) is feed:
            del self.feeds[feed.key]

    @property
    def subscribers(self) -> int:
        return sum(len(f.subscribers) for f in self.feeds.values())

    async def close(self) -> None:
        feeds = list(self.feeds.values())
        for feed in feeds:
            feed.close()
        for feed in feeds:
            with contextlib.suppress(asyncio.CancelledError):
                await feed._task

    async def session(
        self,
        basin: str,
        stream: str,
        query: ReadQuery,
        plan: ResumePlan,
        *,
        join_timeout: float = 5.0,
        call: CallTrace = NO_CALL_TRACE,
        told_tail: bool = False,
        encryption: EncryptionKey | None = None,
    ) -> AsyncGenerator[ReadBatch, None]:
        """A follow-for-ever session that rides the stream's shared feed whenever it can (the
        feed of its own key: `encryption`). `told_tail`: the reader already had a heartbeat (it
        continues a session that was at the tail)."""
        key = scope_of(basin, stream, encryption)
        own_only = False  # set once this reader proved too slow for the shared feed
        while True:
            feed = None if own_only else self.feeds.get(key)
            if feed is not None and feed.ended:
                feed = None
            if not own_only and plan.next_seq_num is None and isinstance(query.start, TailOffset):
                feed = self.feed(key, encryption)  # following from (near) the tail: the feed is where it will read
            if feed is not None and plan.next_seq_num is None:
                # Where the app starts, resolved against the feed's live edge when possible.
                feed = await self.settled(key, encryption, join_timeout)  # the same feed: it has not ended
                if feed.error is not None and not feed.error.retryable:
                    raise feed.error  # e.g. no such stream: the app's own session would fail alike
                start = query.start
                if feed.live.is_set() and feed.next_seq_num is not None:
                    if isinstance(start, TailOffset):
                        plan.next_seq_num = max(0, feed.next_seq_num - start.value)
                    elif isinstance(start, SeqNum) and feed.can_serve(start.value):
                        plan.next_seq_num = start.value
            if feed is not None and plan.next_seq_num is not None and feed.can_serve(plan.next_seq_num):
                sub = feed.subscribe(plan.next_seq_num, announce=not told_tail)
                call.set(S2_SHARED, True)
                call.link(feed.span.get_span_context(), {"s2.shared": "shared session"})
                call.event("joined shared session", {"s2.seq_num": plan.next_seq_num})
                try:
                    while (batch := await sub.next()) is not None:
                        if batch.count:
                            assert batch.last_seq_num is not None
                            plan.delivered(batch.count, batch.last_seq_num, 0, time.monotonic())
                        elif batch.tail is not None:
                            plan.caught_up(batch.tail, time.monotonic())
                            told_tail = True
                        yield batch
                finally:
                    feed.unsubscribe(sub)
                own_only = own_only or sub.too_slow
                call.event("left shared session", {"s2.too_slow": sub.too_slow})
                continue  # detached: go on alone from plan.next_seq_num
            # On our own: catch up (or stay alone), and join the feed once caught up.
            own_query = plan.next_query(time.monotonic()) or query
            own = resumable_session(
                self._client,
                basin,
                stream,
                own_query,
                policy=self._policy,
                plan=plan,
                observe=session_observer(self._client.metrics, call),
                on_tail=functools.partial(self._tails.observe, (basin, stream)),
                on_records=None if self.on_records is None else functools.partial(self.on_records, key),
                encryption=encryption,
            )
            async with contextlib.aclosing(own):
                async for batch in own:
                    told_tail = told_tail or not batch.count
                    yield batch
                    if own_only or batch.count or plan.next_seq_num is None:
                        continue
                    # Caught up (a heartbeat): start or find the feed, and switch to it if it can
                    # continue exactly here (this closes our own upstream session).
                    feed = await self.settled(key, encryption, join_timeout)
                    if feed.can_serve(plan.next_seq_num):
                        break
                else:
                    return


class _SpanEvents:
    """`CallTrace` onto a plain span (the shared feed's own)."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        self._span.add_event(name, attributes or {})

    def link(self, other: trace.SpanContext | None, attributes: dict[str, Any] | None = None) -> None:
        if other is not None and other.is_valid:
            self._span.add_link(other, attributes or {})

    def set(self, key: str, value: Any) -> None:
        self._span.set_attribute(key, value)
