"""The upstream-reachability policy behind s2_sidecar_upstream_up: traffic decides first, the
probe only when no request has reported for a while."""

from __future__ import annotations

from sidecar.reachability import Reachability


class Gauge:
    def __init__(self) -> None:
        self.values: list[float] = []

    def set(self, value: float) -> None:
        self.values.append(value)


def test_traffic_decides_and_the_probe_waits_its_turn() -> None:
    now = [100.0]
    gauge = Gauge()
    up = Reachability(gauge, traffic_wins_for=5.0, clock=lambda: now[0])
    up.probe(True)  # no traffic yet: the probe decides
    up.traffic(False)  # a request could not connect
    now[0] += 4.9
    up.probe(True)  # traffic reported 4.9 s ago: ignored
    assert gauge.values == [1.0, 0.0]
    now[0] += 0.1
    up.probe(True)  # 5 s without traffic: the probe decides again
    up.traffic(True)
    up.probe(False)  # right after an HTTP answer: ignored
    assert gauge.values == [1.0, 0.0, 1.0, 1.0]
