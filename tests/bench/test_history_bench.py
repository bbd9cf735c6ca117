"""The history cache benchmark with tiny parameters: its rows are there, the replays are checked
record by record, and concurrent replays read the range from upstream about once. Not a
performance test: no figure here depends on how fast the machine is."""

from __future__ import annotations

from sidecar.reads.history import EvictionPolicy
from tests.bench.history import HistoryParams, format_history, run_history
from tests.bench.history_eviction import make_batches, sequential, staggered


async def test_history_section() -> None:
    r = await run_history(HistoryParams(records=3000, size=1024, replays=4, runs=1, measure_off=True))
    text = format_history(r)
    print(text)
    assert "4 concurrent replays" in text and "cached / uncached" in text and "RSS" in text
    assert r.range_bytes >= 3000 * 1024  # the replay with the cache off read every record once
    assert r.upstream_ratio <= 1.2, text  # the cache-off figure would be 4
    assert r.cached_rate > 0 and r.uncached_rate > 0 and r.rss_mb > 0
    assert r.off_upstream_bytes == 4 * r.range_bytes  # what the cache saves: each session read it all


def test_eviction_simulation_tells_the_policies_apart() -> None:
    batches = make_batches(20)
    size = sum(len(b.data) for b in batches)
    # A range that fits: read once, whatever the policy.
    for policy in EvictionPolicy:
        assert sequential(policy, batches, size * 2) == 1.0
    # Replays in a row of a range larger than the cache: LRU evicts what the next one needs first.
    assert sequential(EvictionPolicy.LRU, batches, size // 2, replays=3) == 3.0
    assert sequential(EvictionPolicy.KEEP_PREFIX, batches, size // 2, replays=3) < 3.0
    # Concurrent replays close together: LRU keeps what the readers behind the leader need.
    assert staggered(EvictionPolicy.LRU, batches, size // 2, readers=5, gap=1) == 1.0
    assert staggered(EvictionPolicy.KEEP_PREFIX, batches, size // 2, readers=5, gap=1) > 1.5
