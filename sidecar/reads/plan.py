"""The resume planner, sans-IO: given what a session has delivered, what to ask upstream next.

Feed it every batch the app received (`delivered`) and every heartbeat (`caught_up`); when the
upstream fails, `next_query(now)` is the request that continues the session with no record
lost or repeated, or None when the session has nothing left to read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sidecar.types import ReadLimit, ReadQuery, SeqNum, StreamPosition


@dataclass
class ResumePlan:
    query: ReadQuery  # the session as the app asked for it
    records: int = 0  # delivered so far
    metered_bytes: int = 0  # delivered so far (kept only when the query bounds bytes)
    next_seq_num: int | None = None  # first seq_num not yet delivered, once known
    last_batch_at: float | None = None  # monotonic time of the last delivered batch
    tail: StreamPosition | None = None  # latest tail seen

    @property
    def tracks_bytes(self) -> bool:
        return self.query.limit.bytes is not None

    def delivered(self, count: int, last_seq_num: int, metered_bytes: int, now: float) -> None:
        """The app was sent `count` records ending at `last_seq_num`."""
        self.records += count
        self.metered_bytes += metered_bytes
        self.next_seq_num = last_seq_num + 1
        self.last_batch_at = now

    def caught_up(self, tail: StreamPosition) -> None:
        """A heartbeat: everything before `tail` that matched the read has been delivered."""
        self.tail = tail
        if self.next_seq_num is None or tail.seq_num > self.next_seq_num:
            self.next_seq_num = tail.seq_num

    def saw_tail(self, tail: StreamPosition) -> None:
        self.tail = tail

    @property
    def exhausted(self) -> bool:
        """True when a stop has been reached and nothing is left to read."""
        limit = self.query.limit
        return (limit.count is not None and self.records >= limit.count) or (
            limit.bytes is not None and self.metered_bytes >= limit.bytes
        )

    def remaining_wait(self, now: float) -> int | None:
        """`wait` less the time since the last batch (S2's wait is a gap between records)."""
        wait = self.query.wait
        if wait is None or self.last_batch_at is None:
            return wait
        return max(0, wait - int(now - self.last_batch_at))

    def next_query(self, now: float) -> ReadQuery | None:
        """The request that continues the session, or None if it is complete."""
        if self.exhausted:
            return None
        if self.next_seq_num is None:
            return self.query  # nothing known yet: ask again exactly as the app did
        limit = self.query.limit
        wait = self.remaining_wait(now)
        if wait == 0 and self.query.wait:
            return None  # the app's wait ran out while we were reconnecting
        return replace(
            self.query,
            start=SeqNum(self.next_seq_num),
            limit=ReadLimit(
                count=None if limit.count is None else limit.count - self.records,
                bytes=None if limit.bytes is None else limit.bytes - self.metered_bytes,
            ),
            wait=wait,
            # The resume point is at or before the tail we saw, so clamping changes nothing there;
            # keep it so that a stream trimmed meanwhile does not fail the session.
            clamp=self.query.clamp,
        )
