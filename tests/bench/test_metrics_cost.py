"""The metrics-cost benchmark with tiny parameters: every row is there, figures are positive, and
the hand-written registry and the OTel SDK instruments really recorded what was asked."""

from __future__ import annotations

from typing import Any

from tests.bench.metrics_cost import format_rows, hand_written, measure, otel


def test_rows_and_figures() -> None:
    rows = measure(calls=200, repeats=1)
    text = format_rows(rows)
    assert len(rows) == 9 and all(r.us > 0 for r in rows), text
    assert all(r.what in text for r in rows)


def test_both_ways_record_the_same_counts() -> None:
    call, _, _, render = hand_written()
    call(8)
    assert 's2_sidecar_rpcs_total{method="Read",code="OK"} 2' in render()
    ot_call, _, _, _, collect = otel()
    ot_call(8)
    data: Any = collect()
    [rm] = data.resource_metrics
    [sm] = rm.scope_metrics
    rpcs = next(m for m in sm.metrics if m.name == "s2_sidecar_rpcs")
    points = {tuple(sorted(p.attributes.items())): p.value for p in rpcs.data.data_points}
    assert points[(("code", "OK"), ("method", "Read"))] == 2
