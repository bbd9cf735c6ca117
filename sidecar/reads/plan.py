"""The resume planner, sans-IO: given what a session has delivered, what to ask upstream next.

Feed it every batch the app received (`delivered`) and every heartbeat (`caught_up`); when the
upstream fails, `next_query(now)` is the request that continues the session with no record
lost or repeated, or None when the session has nothing left to read.

It also judges what upstream sends (`admit_records`, `admit_heartbeat`), by S2's rules:
- Inside one upstream response, records continue exactly where the previous ones ended, and a
  heartbeat's tail is where the session stands (a heartbeat never skips records: S2 sends one
  only once everything before the tail has been sent). Anything else is an upstream error, and
  the session resumes from the last record delivered.
- At the start of a response that continues a session, a jump forward is trimming: S2 answers a
  read that starts below the trim point from the first remaining record (its read path scans
  from the start key; trimmed keys are gone), so the records in between no longer exist.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sidecar.errors import ProtocolError
from sidecar.types import ReadLimit, ReadQuery, SeqNum, StreamPosition


class Discontinuity(ProtocolError):
    """Upstream contradicted itself (a gap, a repeat, or a heartbeat ahead of the records) inside
    one response. Retryable: the session asks again from the last record delivered."""


@dataclass
class ResumePlan:
    query: ReadQuery  # the session as the app asked for it
    records: int = 0  # delivered so far
    metered_bytes: int = 0  # delivered so far (kept only when the query bounds bytes)
    next_seq_num: int | None = None  # first seq_num not yet delivered, once known
    last_batch_at: float | None = None  # monotonic time of the last delivered batch
    following_since: float | None = None  # monotonic time of the first heartbeat (S2's wait starts there)

    @property
    def tracks_bytes(self) -> bool:
        return self.query.limit.bytes is not None

    # -- judging what upstream sends ------------------------------------------------------------

    def admit_records(self, first_seq_num: int, *, response_start: bool) -> int:
        """Check where a batch starts. Returns how many records were skipped because they were
        trimmed (0 unless this is the first batch of a resumed response); raises `Discontinuity`."""
        expected = self.next_seq_num
        if expected is None or first_seq_num == expected:
            return 0
        if response_start and first_seq_num > expected:
            return first_seq_num - expected
        what = "repeats records" if first_seq_num < expected else "skips records"
        raise Discontinuity(f"upstream batch starts at seq_num {first_seq_num}, expected {expected}: it {what}")

    def admit_heartbeat(self, tail: StreamPosition, *, response_start: bool) -> int:
        """Check a heartbeat's tail against what was delivered. Returns how many records were
        trimmed (a resumed response that finds everything up to the tail gone); raises
        `Discontinuity` when a heartbeat claims a tail past records this response has not sent."""
        expected = self.next_seq_num
        if expected is None or tail.seq_num <= expected:
            return 0  # a tail behind us is stale (S2's tail is eventually consistent), never a skip
        if response_start:
            return tail.seq_num - expected
        raise Discontinuity(
            f"upstream heartbeat says the tail is {tail.seq_num}, but records from seq_num {expected} were not sent"
        )

    # -- what was delivered ---------------------------------------------------------------------

    def delivered(self, count: int, last_seq_num: int, metered_bytes: int, now: float) -> None:
        """The app was sent `count` records ending at `last_seq_num`."""
        self.records += count
        self.metered_bytes += metered_bytes
        self.next_seq_num = last_seq_num + 1
        self.last_batch_at = now

    def caught_up(self, tail: StreamPosition, now: float | None = None) -> None:
        """A heartbeat (admitted): everything before `tail` that matched the read was delivered
        or trimmed."""
        if self.following_since is None and now is not None:
            self.following_since = now
        if self.next_seq_num is None or tail.seq_num > self.next_seq_num:
            self.next_seq_num = tail.seq_num

    @property
    def exhausted(self) -> bool:
        """True when a stop has been reached and nothing is left to read."""
        limit = self.query.limit
        return (limit.count is not None and self.records >= limit.count) or (
            limit.bytes is not None and self.metered_bytes >= limit.bytes
        )

    def remaining_wait(self, now: float) -> int | None:
        """`wait` less the time it has already run. S2's wait starts when the session starts
        following (its first heartbeat) and restarts with each batch after that; while a session
        is still catching up, none of it has run."""
        wait = self.query.wait
        if wait is None or self.following_since is None:
            return wait
        since = max(self.following_since, self.last_batch_at or self.following_since)
        # S2 takes whole seconds: round to the nearest, so a session ends within 0.5 s of its wait.
        return max(0, int(wait - (now - since) + 0.5))

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
