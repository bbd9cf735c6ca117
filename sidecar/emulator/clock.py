"""Creation times of basins and streams: RFC 3339 with nanoseconds, as s2-lite writes them,
and strictly increasing, so that every incarnation of a name has its own `created_at`.

s2-lite stamps `created_at` with `OffsetDateTime::now_utc()` and serializes it with
`time::serde::rfc3339` (S2: api/src/v1/stream/mod.rs `StreamInfo`, lite/src/backend/streams.rs):
the `time` crate's `Rfc3339` writes `YYYY-MM-DDTHH:MM:SS`, then `.` and the nanoseconds with
trailing zeros dropped (1 to 9 digits; nothing when they are zero), then `Z` for UTC.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

NS_PER_SECOND = 1_000_000_000

_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d\d):(\d\d))")


def format_rfc3339(ns: int) -> str:
    """`ns` nanoseconds since the Unix epoch, in UTC, as the `time` crate's `Rfc3339` writes it."""
    seconds, nanos = divmod(ns, NS_PER_SECOND)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the Unix epoch of an RFC 3339 date-time (digits past nanoseconds are
    dropped); `ValueError` when it is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {text[:60]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    whole = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)  # a leap second counts as :59
    if m[8] is None:
        sign = 1 if m[9] == "+" else -1
        whole -= sign * timedelta(hours=int(m[10]), minutes=int(m[11]))
    return int(whole.timestamp()) * NS_PER_SECOND + int((m[7] or "0").ljust(9, "0"))


class CreationClock:
    """Hands out creation times: the wall clock, but always after the last one handed out or
    observed, so a name deleted and re-created within one clock tick still gets a later time."""

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._now_ns = now_ns
        self.last = 0

    def observe(self, ns: int) -> None:
        """A time handed out before (e.g. by an earlier run over the same data dir)."""
        self.last = max(self.last, ns)

    def next(self) -> int:
        self.last = max(self._now_ns(), self.last + 1)
        return self.last
