"""What recording a call's metrics costs: the sidecar's hand-written registry (`sidecar/metrics.py`)
against OpenTelemetry's metrics SDK instruments, in this process, no I/O.

    .venv/bin/python -m tests.bench.metrics_cost [--calls 100000] [--repeats 5]

One "call" records what the sidecar records for a `Read`: two counter increments and two
histogram observations, each with attributes (`method`+`code`, `method`, `kind`+`status`,
`kind`), the label values cycling over a few realistic combinations. Rows:

- hand-written, as the sidecar does it (`metric.labels(...).inc()` / `.observe()`);
- OTel SDK, attributes as a dict built per call (what instrumentation code usually does);
- OTel SDK, attribute dicts built once and reused (the best case);
- single operations (one counter add, one histogram record) both ways.

The OTel meter provider has a reader attached (an in-memory one: the recording path is the same
as with a periodic OTLP exporter; export work happens at collection, measured separately as
"collect"). Medians of `--repeats` interleaved rounds, in microseconds per call or operation;
compare ratios, not absolute figures (these shared machines drift 1.5-2x from hour to hour).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from sidecar.metrics import LATENCY_BUCKETS, Metrics

CALLS = (  # (method, code, kind, status)
    ("Read", "OK", "read", "200"),
    ("CheckTail", "OK", "tail", "200"),
    ("Read", "NOT_FOUND", "read", "404"),
    ("ReadSession", "OK", "session", "200"),
)
DURATIONS = (0.0006, 0.0012, 0.004, 0.03, 0.2)


@dataclass(frozen=True)
class Row:
    what: str
    us: float  # microseconds per call (or per operation)


def _once(fn: Callable[[int], object], n: int) -> float:
    """Seconds per iteration of one `fn(n)`, GC off while timing."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn(n)
        return (time.perf_counter() - t0) / n
    finally:
        gc.enable()


def hand_written() -> tuple[Callable[[int], None], Callable[[int], None], Callable[[int], None], Callable[[], str]]:
    m = Metrics(runtime=False)
    rpcs, rpc_duration = m.rpcs, m.rpc_duration
    upstream, upstream_duration = m.upstream_requests, m.upstream_duration

    def call(n: int) -> None:
        for i in range(n):
            method, code, kind, status = CALLS[i & 3]
            d = DURATIONS[i % 5]
            rpcs.labels(method, code).inc()
            rpc_duration.labels(method).observe(d)
            upstream.labels(kind, status).inc()
            upstream_duration.labels(kind).observe(d)

    def counter(n: int) -> None:
        for i in range(n):
            method, code, _, _ = CALLS[i & 3]
            rpcs.labels(method, code).inc()

    def histogram(n: int) -> None:
        for i in range(n):
            rpc_duration.labels(CALLS[i & 3][0]).observe(DURATIONS[i % 5])

    return call, counter, histogram, m.render


def otel() -> tuple[
    Callable[[int], None], Callable[[int], None], Callable[[int], None], Callable[[int], None], Callable[[], object]
]:
    reader = InMemoryMetricReader()
    buckets = View(
        instrument_name="*duration*", aggregation=ExplicitBucketHistogramAggregation(boundaries=LATENCY_BUCKETS)
    )
    provider = MeterProvider(metric_readers=[reader], views=[buckets])
    meter = provider.get_meter("s2-sidecar-bench")
    rpcs = meter.create_counter("s2_sidecar_rpcs", description="gRPC calls finished")
    rpc_duration = meter.create_histogram("s2_sidecar_rpc_duration", unit="s")
    upstream = meter.create_counter("s2_sidecar_upstream_requests")
    upstream_duration = meter.create_histogram("s2_sidecar_upstream_request_duration", unit="s")

    def call(n: int) -> None:
        for i in range(n):
            method, code, kind, status = CALLS[i & 3]
            d = DURATIONS[i % 5]
            rpcs.add(1, {"method": method, "code": code})
            rpc_duration.record(d, {"method": method})
            upstream.add(1, {"kind": kind, "status": status})
            upstream_duration.record(d, {"kind": kind})

    prebuilt = [
        ({"method": m, "code": c}, {"method": m}, {"kind": k, "status": s}, {"kind": k}) for m, c, k, s in CALLS
    ]

    def call_prebuilt(n: int) -> None:
        for i in range(n):
            a_rpc, a_method, a_up, a_kind = prebuilt[i & 3]
            d = DURATIONS[i % 5]
            rpcs.add(1, a_rpc)
            rpc_duration.record(d, a_method)
            upstream.add(1, a_up)
            upstream_duration.record(d, a_kind)

    def counter(n: int) -> None:
        for i in range(n):
            method, code, _, _ = CALLS[i & 3]
            rpcs.add(1, {"method": method, "code": code})

    def histogram(n: int) -> None:
        for i in range(n):
            rpc_duration.record(DURATIONS[i % 5], {"method": CALLS[i & 3][0]})

    return call, call_prebuilt, counter, histogram, reader.get_metrics_data


def measure(calls: int, repeats: int) -> list[Row]:
    """Medians over `repeats` rounds; each round runs every row once, so drift on a shared
    machine touches both ways alike."""
    hw_call, hw_counter, hw_histogram, hw_render = hand_written()
    ot_call, ot_prebuilt, ot_counter, ot_histogram, ot_collect = otel()
    rows: list[tuple[str, Callable[[int], object], int]] = [
        ("call: hand-written (sidecar/metrics.py)", hw_call, calls),
        ("call: OTel SDK, attribute dicts per call", ot_call, calls),
        ("call: OTel SDK, attribute dicts reused", ot_prebuilt, calls),
        ("counter add: hand-written", hw_counter, calls),
        ("counter add: OTel SDK", ot_counter, calls),
        ("histogram record: hand-written", hw_histogram, calls),
        ("histogram record: OTel SDK", ot_histogram, calls),
        ("collect: hand-written render of /metrics", lambda n: [hw_render() for _ in range(n)], max(1, calls // 500)),
        ("collect: OTel reader.get_metrics_data()", lambda n: [ot_collect() for _ in range(n)], max(1, calls // 500)),
    ]
    runs: list[list[float]] = [[] for _ in rows]
    for _ in range(repeats):
        for i, (_, fn, n) in enumerate(rows):
            runs[i].append(_once(fn, n))
    return [Row(what, statistics.median(r) * 1e6) for (what, _, _), r in zip(rows, runs, strict=True)]


def format_rows(rows: list[Row]) -> str:
    base = {"call": rows[0].us, "counter": rows[3].us, "histogram": rows[5].us, "collect": rows[7].us}
    width = max(len(r.what) for r in rows)
    lines = [f"{'what':<{width}}  {'us/op':>8}  {'vs hand-written':>15}"]
    for r in rows:
        ref = base[r.what.split(" ")[0].rstrip(":")]
        lines.append(f"{r.what:<{width}}  {r.us:>8.2f}  {r.us / ref:>14.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000, help="calls (or operations) per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per row; the median is printed")
    opts = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {opts.calls:,} per run, median of {opts.repeats}", flush=True)
    print(format_rows(measure(opts.calls, opts.repeats)))


if __name__ == "__main__":
    main()
