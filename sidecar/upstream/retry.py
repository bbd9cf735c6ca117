"""S2's retry policy, in one place: which errors retry, and how long to wait before the next try.

Backoff as S2's SDKs do it: base = min(100 ms * 2^attempt, 1 s), delay = base + uniform(0, base),
at least `retry-after-ms` when the server sent one, and no wait at all for `server_draining`
(the server asked us to reconnect elsewhere). Callers reset the attempt count after progress.
A unary call also has a time budget: no retry starts later than `max_total` seconds after its
first attempt, so a call without a deadline ends within that plus one attempt's own timeout.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sidecar.errors import S2Error, SidecarError

MAX_RETRY_AFTER = 30.0  # seconds
# About what 10 fast failures take with S2's backoff (7.5 to 15 s of waits), so it cuts only runs
# of slow failures (connect timeouts, upstream request timeouts) short.
UNARY_RETRY_BUDGET = 15.0  # seconds


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay: float = 0.1
    max_base_delay: float = 1.0
    max_total: float = UNARY_RETRY_BUDGET  # seconds from a unary call's first attempt to its last retry

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """`attempt` counts failures so far in this run (1 after the first)."""
        return isinstance(error, SidecarError) and error.retryable and attempt <= self.max_attempts

    def within_budget(self, elapsed: float, delay: float) -> bool:
        """Whether a unary call whose first attempt was `elapsed` seconds ago may retry after
        waiting `delay` more."""
        return elapsed + delay <= self.max_total

    def delay(self, error: BaseException, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if isinstance(error, S2Error) and error.code == "server_draining":
            return 0.0
        base: float = min(self.base_delay * 2.0 ** (attempt - 1), max(self.max_base_delay, self.base_delay))
        delay = base + (rng or random).uniform(0, base)
        if isinstance(error, S2Error) and error.retry_after_ms is not None:
            # Honour the server's ask, within reason: a bogus huge value must not park a session.
            delay = max(delay, min(error.retry_after_ms / 1000, MAX_RETRY_AFTER))
        return delay


# S2's SDKs act on at most one reconnect advice a minute per session; past that they stay on the
# connection until the server ends it, so a server whose replacement also advises cannot make a
# session reconnect in a loop.
MAX_ADVISED_RECONNECTS = 1
ADVISED_RECONNECT_WINDOW = 60.0  # seconds


@dataclass
class AdvisedReconnects:
    """When to act on a server's reconnect advice (the s2s frame flag), as S2's SDKs do."""

    count: int = 0
    last: float | None = field(default=None)

    def should_reconnect(self, now: float) -> bool:
        return not self._recent(now) or self.count < MAX_ADVISED_RECONNECTS

    def record(self, now: float) -> None:
        if not self._recent(now):
            self.count = 0
        self.last = now
        self.count += 1

    def _recent(self, now: float) -> bool:
        return self.last is not None and now - self.last <= ADVISED_RECONNECT_WINDOW
