"""Which eviction policy for the history cache: LRU against keep-prefix, on replay workloads.

Pure simulation over the real `HistoryCache` (no sockets): readers move through a stream in steps
of one upstream batch; a reader whose next records are not cached fetches them (that batch goes
into the cache, as the sidecar does). Printed: upstream bytes as a multiple of the range, per
policy and workload (lower is better).

    python -m tests.bench.history_eviction
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sidecar.reads.history import EvictionPolicy, HistoryCache, Limits
from sidecar.types import Record
from sidecar.wire.protobuf import ReadBatch, batch_from_records

BATCH = 100  # records per upstream batch
BODY = b"b" * 1000  # ~1 KiB records


def make_batches(n_batches: int, stream_seed: int = 0) -> list[ReadBatch]:
    return [
        batch_from_records([Record(i, 1000 + i, (), BODY) for i in range(b * BATCH, (b + 1) * BATCH)], None)
        for b in range(n_batches)
    ]


class Sim:
    def __init__(self, policy: EvictionPolicy, bound: int) -> None:
        self.cache = HistoryCache(bound, policy=policy)
        self.upstream = 0

    def step(self, key: tuple[str, str], batches: list[ReadBatch], pos: int) -> int:
        """A reader at batch `pos` reads one batch: from the cache or upstream. Returns the next pos."""
        got = self.cache.lookup(key, pos * BATCH, Limits(count=BATCH), 1 << 40)
        if got.records < BATCH:
            self.upstream += len(batches[pos].data)
            self.cache.insert(key, batches[pos])
        return pos + 1


def sequential(policy: EvictionPolicy, batches: list[ReadBatch], bound: int, replays: int = 4) -> float:
    """Replays one after another of a range larger than the cache."""
    sim = Sim(policy, bound)
    for _ in range(replays):
        pos = 0
        while pos < len(batches):
            pos = sim.step(("b", "s"), batches, pos)
    return sim.upstream / sum(len(b.data) for b in batches)


def staggered(policy: EvictionPolicy, batches: list[ReadBatch], bound: int, readers: int = 20, gap: int = 5) -> float:
    """Concurrent replays started `gap` batches apart, moving at the same pace."""
    sim = Sim(policy, bound)
    positions = [-r * gap for r in range(readers)]
    while any(p < len(batches) for p in positions):
        for r, p in enumerate(positions):
            if 0 <= p < len(batches):
                positions[r] = sim.step(("b", "s"), batches, p)
            elif p < 0:
                positions[r] = p + 1
    return sim.upstream / sum(len(b.data) for b in batches)


def with_live_stream(policy: EvictionPolicy, batches: list[ReadBatch], bound: int) -> float:
    """Replays of one stream while another stream's live batches keep arriving (one per step)."""
    sim = Sim(policy, bound)
    live = make_batches(len(batches) * 2)
    t = 0
    for _ in range(3):
        pos = 0
        while pos < len(batches):
            pos = sim.step(("b", "replayed"), batches, pos)
            sim.cache.insert(("b", "live"), live[t % len(live)])
            t += 1
    return sim.upstream / sum(len(b.data) for b in batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=200, help="range, in batches of 100 x 1 KiB records")
    args = ap.parse_args()
    batches = make_batches(args.batches)
    size = sum(len(b.data) for b in batches)
    workloads: list[tuple[str, Callable[[EvictionPolicy, list[ReadBatch], int], float]]] = [
        ("4 replays in a row", sequential),
        ("20 concurrent, 5 batches apart", staggered),
        ("20 concurrent, 1 batch apart", lambda p, b, n: staggered(p, b, n, gap=1)),
        ("3 replays + a live stream", with_live_stream),
    ]
    print(f"range {size / 1e6:.1f} MB; upstream bytes / range (1.0 = read once; lower is better)")
    print(f"{'workload':34} {'cache/range':>11} " + " ".join(f"{p.value:>12}" for p in EvictionPolicy))
    for name, run in workloads:
        for frac in (1.5, 0.75, 0.4):
            bound = int(size * frac)
            figures = " ".join(f"{run(p, batches, bound):12.2f}" for p in EvictionPolicy)
            print(f"{name:34} {frac:11.2f} {figures}")


if __name__ == "__main__":
    main()
