"""The upstream-reachability policy behind `s2_sidecar_upstream_up` (beside `admin.py`, whose
`UpstreamProbe` feeds it): 1 when the upstream was reachable on the last attempt to reach it, 0
when it was not.

Real traffic decides first: any HTTP response (whatever its status: S2 answered) sets 1, and a
request that could not open a connection (refused, unreachable, DNS, TLS handshake, connect
timeout: `status="connect"`, or `"host_not_found"`) sets 0. Failures after connecting (a reset mid-body, a read timeout,
a malformed answer) say nothing about reachability and leave it as it was. The periodic TCP probe
(every 2 s) decides when no request has reported for `traffic_wins_for` seconds, so an idle
sidecar still notices an outage and a recovery, and a TCP connect that works cannot hide requests
that fail (e.g. a TLS handshake refused).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol


class Settable(Protocol):
    def set(self, value: float) -> None: ...


class Reachability:
    def __init__(
        self, gauge: Settable, *, traffic_wins_for: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._gauge, self._window, self._clock = gauge, traffic_wins_for, clock
        self._traffic_at = -math.inf

    def traffic(self, reachable: bool) -> None:
        """What a request found: an HTTP answer (True) or no connection (False)."""
        self._gauge.set(1.0 if reachable else 0.0)
        self._traffic_at = self._clock()

    def probe(self, reachable: bool) -> None:
        """What the TCP probe found; heeded only when no request has reported lately."""
        if self._clock() - self._traffic_at >= self._window:
            self._gauge.set(1.0 if reachable else 0.0)
