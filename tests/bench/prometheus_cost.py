"""What recording and scraping the sidecar's metrics costs: its hand-written registry
(`sidecar/prometheus.py`, with the metric set of `sidecar/metrics.py`) against the same metric set on `prometheus_client`, in one run.

    .venv/bin/python -m tests.bench.prometheus_cost [--ops 50000] [--repeats 5]

The `prometheus_client` side is built from the sidecar's `Metrics` (each metric's name, help,
labels and buckets) on a `CollectorRegistry` of its own, with its process/GC/platform collectors
and no `*_created` series, as the sidecar would have it. Rows, in microseconds per operation (the
scrape: per scrape), medians of `--repeats` interleaved rounds:

- `counter.labels(..).inc()`: a lookup by label values and an increment (the upstream client's way);
- `counter child .inc()`: a series looked up once (the API's way, per call);
- `histogram.labels(..).observe()` and `histogram child .observe()`, likewise;
- one `Read`'s metrics: two cached series (calls, duration) and two by label values (upstream
  request, upstream duration), what the sidecar records per unary call;
- a full scrape of a `Metrics` holding the series a busy sidecar has (~50 series, 13 histograms).

Compare ratios, not absolute figures: a shared machine drifts from hour to hour.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import prometheus_client as pc

from sidecar import prometheus as hand_written
from sidecar.metrics import Metrics

CALLS = (  # (method, code, kind, status)
    ("Read", "OK", "read", "200"),
    ("CheckTail", "OK", "tail", "200"),
    ("Read", "NOT_FOUND", "read", "404"),
    ("ReadSession", "OK", "session", "200"),
)


class _Unchecked:
    """Registered without the registry's name check: `s2_sidecar_history_cache_bytes` (gauge) and
    `s2_sidecar_history_cache_bytes_total` (counter) share a name in OpenMetrics' terms, which
    prometheus_client refuses to register together."""

    def __init__(self, metric: Any) -> None:
        self.collect: Callable[[], Iterable[Any]] = metric.collect


def prometheus_client_metrics() -> Any:
    """The sidecar's metric set on prometheus_client: the same attributes as `Metrics`."""
    pc.disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide; untyped in 0.26
    registry = pc.CollectorRegistry()
    m = types.SimpleNamespace(registry=registry, render=lambda: pc.generate_latest(registry).decode())
    for attr, old in vars(Metrics(runtime=False)).items():
        new: Any
        if isinstance(old, hand_written.Histogram):
            new = pc.Histogram(old.name, old.help, old.label_names, buckets=old.buckets, registry=None)
        elif isinstance(old, hand_written.Counter):
            new = pc.Counter(old.name, old.help, old.label_names, registry=None)
        elif isinstance(old, hand_written.Gauge):
            new = pc.Gauge(old.name, old.help, old.label_names, registry=None)
        else:
            continue
        registry.register(_Unchecked(new))
        setattr(m, attr, new)
    pc.ProcessCollector(registry=registry)
    pc.GCCollector(registry=registry)
    pc.PlatformCollector(registry=registry)
    return m


def populated(make_metrics: Callable[[], Any]) -> Any:
    """A `Metrics` with the series a sidecar has after a while of mixed traffic."""
    m = make_metrics()
    for method, code, kind, status in CALLS:
        m.rpcs.labels(method, code).inc()
        m.rpc_duration.labels(method).observe(0.002)
        m.upstream_requests.labels(kind, status).inc()
        m.upstream_duration.labels(kind).observe(0.01)
        m.records_sent.labels(method).inc(10)
        m.bytes_sent.labels(method).inc(1000)
    for kind in ("read", "tail", "session", "list"):
        m.upstream_retries.labels(kind, "unavailable").inc()
        m.upstream_duration.labels(kind).observe(0.02)
    for result in ("hit", "miss"):
        m.tail_cache.labels(result).inc()
        m.history_records.labels(result).inc(5)
        m.history_bytes.labels(result).inc(500)
    for pool in ("session", "unary", "long_poll"):
        m.upstream_connections_in_use.labels(pool).set_function(lambda: 3)
        m.upstream_connections_limit.labels(pool).set(100)
    m.upstream_connections.labels("1.1").set_function(lambda: 4)
    m.sessions_open.set_function(lambda: 7)
    m.session_lag.observe(12)
    return m


@dataclass(frozen=True)
class Row:
    what: str
    old_us: float
    new_us: float

    @property
    def ratio(self) -> float:
        return self.new_us / self.old_us


def workloads(make_metrics: Callable[[], Any], ops: int) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (run it once, operations in one run)."""
    m = populated(make_metrics)
    labels = [CALLS[i % len(CALLS)] for i in range(ops)]
    counter, histogram = m.rpcs.labels("Read", "OK"), m.rpc_duration.labels("Read")

    def counter_labels() -> None:
        for method, code, _, _ in labels:
            m.rpcs.labels(method, code).inc()

    def counter_child() -> None:
        for _ in labels:
            counter.inc()

    def histogram_labels() -> None:
        for method, _, _, _ in labels:
            m.rpc_duration.labels(method).observe(0.003)

    def histogram_child() -> None:
        for _ in labels:
            histogram.observe(0.003)

    def one_read() -> None:
        for _, _, kind, status in labels:
            counter.inc()
            histogram.observe(0.003)
            m.upstream_requests.labels(kind, status).inc()
            m.upstream_duration.labels(kind).observe(0.002)

    scrapes = max(1, ops // 500)

    def scrape() -> None:
        for _ in range(scrapes):
            m.render()

    return {
        "counter.labels(..).inc()": (counter_labels, ops),
        "counter child .inc()": (counter_child, ops),
        "histogram.labels(..).observe()": (histogram_labels, ops),
        "histogram child .observe()": (histogram_child, ops),
        "one Read's metrics (2 cached, 2 by labels)": (one_read, ops),
        "full scrape (/metrics)": (scrape, scrapes),
    }


def _time(fn: Callable[[], None], n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) / n * 1e6


def measure(*, ops: int = 50_000, repeats: int = 5) -> list[Row]:
    old = workloads(Metrics, ops)
    new = workloads(prometheus_client_metrics, ops)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in old}
    for _ in range(repeats):  # interleaved, so drift hits both sides alike
        for name in old:
            times[name][0].append(_time(*old[name]))
            times[name][1].append(_time(*new[name]))
    return [Row(name, statistics.median(o), statistics.median(n)) for name, (o, n) in times.items()]


def format_rows(rows: list[Row]) -> str:
    lines = [f"{'':44} {'hand-written':>13} {'prometheus_client':>18} {'ratio':>7}"]
    lines += [f"{r.what:44} {r.old_us:10.2f} us {r.new_us:15.2f} us {r.ratio:6.2f}x" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import platform
    from importlib.metadata import version

    import prometheus_client  # noqa: F401  (for its version below)

    print(f"Python {platform.python_version()}, prometheus_client {version('prometheus_client')}, "
          f"{args.ops} operations, median of {args.repeats} interleaved rounds")  # fmt: skip
    print(format_rows(measure(ops=args.ops, repeats=args.repeats)))


if __name__ == "__main__":
    main()
