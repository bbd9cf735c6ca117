"""The prometheus_client cost benchmark with tiny parameters: every row is there with positive
figures, and both sides render the same families with the same counts."""

from __future__ import annotations

from sidecar.metrics import Metrics
from tests.bench.prometheus_cost import format_rows, measure, populated, prometheus_client_metrics
from tests.telemetry.exposition import parse, sample


def test_rows_and_figures() -> None:
    rows = measure(ops=200, repeats=1)
    text = format_rows(rows)
    assert len(rows) == 6 and all(r.old_us > 0 and r.new_us > 0 for r in rows), text
    assert all(r.what in text for r in rows)


def test_both_sides_hold_the_same_metric_set() -> None:
    old, new = populated(Metrics).render(), populated(prometheus_client_metrics).render()
    assert {n: (f.type, f.help) for n, f in parse(old).items()} == {n: (f.type, f.help) for n, f in parse(new).items()}
    for text in (old, new):
        assert sample(text, "s2_sidecar_rpcs_total", method="Read", code="NOT_FOUND") == 1
        assert sample(text, "s2_sidecar_upstream_connections_in_use", pool="unary") == 3
