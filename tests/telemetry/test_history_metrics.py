"""The history cache's metric families: types, help, labels, and what feeds them."""

from __future__ import annotations

from sidecar.metrics import Metrics
from sidecar.reads.history import HistoryCache
from sidecar.types import Record
from sidecar.wire.protobuf import batch_from_records
from tests.telemetry.test_metrics import parse


def test_history_families_render_with_their_types() -> None:
    m = Metrics(runtime=False)
    cache = HistoryCache(10_000)
    cache.on_evict = m.history_evictions.inc
    m.history_cache_bytes.set_function(lambda: cache.bytes)
    m.history_records.labels("hit").inc(5)
    m.history_bytes.labels("miss").inc(100)
    m.history_upstream_bytes.inc(100)
    for lo in range(0, 100, 10):  # ~6 KB a batch against a 10 KB bound: evictions
        cache.insert(("b", "s"), batch_from_records([Record(i, i, (), b"x" * 500) for i in range(lo, lo + 10)], None))
    meta, samples = parse(m.render())
    assert meta["s2_sidecar_history_cache_records_total"][0] == "counter"
    assert meta["s2_sidecar_history_cache_bytes_total"][0] == "counter"
    assert meta["s2_sidecar_history_upstream_read_bytes_total"][0] == "counter"
    assert meta["s2_sidecar_history_cache_bytes"][0] == "gauge"
    assert meta["s2_sidecar_history_cache_evictions_total"][0] == "counter"
    values = {(name, tuple(sorted(labels.items()))): v for name, labels, v in samples}
    assert values[("s2_sidecar_history_cache_records_total", (("result", "hit"),))] == 5
    assert values[("s2_sidecar_history_cache_bytes", ())] == cache.bytes > 0
    assert values[("s2_sidecar_history_cache_evictions_total", ())] == cache.stats.evictions == 9
