"""Prometheus metrics with no dependency: counters, gauges and histograms with labels, rendered in
the text exposition format 0.0.4, and the sidecar's metric set (`Metrics`).

Why not `prometheus_client` (which has per-instance registries, `set_function` and typed code
too): on the hot path it costs more than it saves. Its `inc()` and `observe()` are 3-5 Python
calls each with a lock, so a cached `CheckTail` runs 31 Python functions instead of 21 and 5.5%
more CPU instructions (README, "See inside"; `tests/bench/prometheus_cost.py` compares the two per
operation). The `process_*` and `python_*` families it exports by default are reproduced below
with its exact names, types, help texts and labels. Everything is meant to be used from the event
loop's thread (no locks).

Labels never carry secrets, record contents or stream/basin names (unbounded cardinality): each
metric also stops adding series past `max_series` distinct label sets, as a guard.
"""

from __future__ import annotations

import bisect
import gc
import logging
import math
import os
import platform
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Final, Generic, TypeVar

from sidecar.reachability import Reachability

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# 0.5 ms to 60 s: loopback unary calls at the low end, long polls (wait <= 60 s) at the top.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _version() -> str:
    try:
        return importlib_metadata.version("s2-sidecar")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self.value += amount


class GaugeChild:
    __slots__ = ("_fn", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self._fn: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set_function(self, fn: Callable[[], float]) -> None:
        """Evaluate `fn` at each scrape instead of keeping a value (a failing `fn` hides the series)."""
        self._fn = fn

    def read(self) -> float:
        return self.value if self._fn is None else float(self._fn())


class HistogramChild:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, value)] += 1  # le: value <= bound
        self.sum += value


C = TypeVar("C", CounterChild, GaugeChild, HistogramChild)


class _Metric(Generic[C]):
    type: str = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), *, max_series: int = 1000) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"bad metric name {name!r}")
        for label in labels:
            if not _LABEL.fullmatch(label) or label.startswith("__") or label == "le":
                raise ValueError(f"bad label name {label!r}")
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self._children: dict[tuple[str, ...], C] = {}
        self._max_series = max_series
        self._overflowed = False

    def _new(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        """The series for these label values (in `label_names` order); keep it to skip the lookup."""
        child = self._children.get(values)
        if child is not None:
            return child
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {values!r}")
        child = self._new()
        if len(self._children) < self._max_series:
            self._children[tuple(str(v) for v in values)] = child
        elif not self._overflowed:
            self._overflowed = True
            log.warning("metric %s has over %d series: new label values are not exported", self.name, self._max_series)
        return child

    def _samples(self) -> Iterator[str]:
        raise NotImplementedError

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.type}"
        yield from self._samples()


class Counter(_Metric[CounterChild]):
    type = "counter"

    def _new(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def _samples(self) -> Iterator[str]:
        for values, child in list(self._children.items()):
            yield f"{self.name}{_labels(self.label_names, values)} {_fmt(child.value)}"


class Gauge(_Metric[GaugeChild]):
    type = "gauge"

    def _new(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        self.labels().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self.labels().dec(amount)

    def set_function(self, fn: Callable[[], float]) -> None:
        self.labels().set_function(fn)

    def _samples(self) -> Iterator[str]:
        for values, child in list(self._children.items()):
            try:
                value = child.read()
            except Exception:
                log.warning("metric %s%s: callback failed", self.name, values, exc_info=True)
                continue
            yield f"{self.name}{_labels(self.label_names, values)} {_fmt(value)}"


class Histogram(_Metric[HistogramChild]):
    type = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        max_series: int = 1000,
    ) -> None:
        super().__init__(name, help, labels, max_series=max_series)
        bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError("histogram buckets must be distinct and at least one finite")
        self.buckets = bounds

    def _new(self) -> HistogramChild:
        return HistogramChild(self.buckets)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def _samples(self) -> Iterator[str]:
        for values, child in list(self._children.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, math.inf), child.counts, strict=True):
                cumulative += count
                le = 'le="+Inf"' if math.isinf(bound) else f'le="{bound!r}"'
                yield f"{self.name}_bucket{_labels(self.label_names, values, le)} {cumulative}"
            yield f"{self.name}_sum{_labels(self.label_names, values)} {_fmt(child.sum)}"
            yield f"{self.name}_count{_labels(self.label_names, values)} {cumulative}"


C_M = TypeVar("C_M", Counter, Gauge, Histogram)


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family computed at scrape time by a collector (no state kept between scrapes)."""

    name: str
    type: str  # "counter" or "gauge"
    help: str
    label_names: tuple[str, ...] = ()
    samples: tuple[tuple[tuple[str, ...], float], ...] = ()  # (label values, value)

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.type}"
        for values, value in self.samples:
            yield f"{self.name}{_labels(self.label_names, values)} {_fmt(value)}"


Collector = Callable[[], Iterable[Family]]


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric[CounterChild] | _Metric[GaugeChild] | _Metric[HistogramChild]] = {}
        self._collectors: list[tuple[str, Collector]] = []

    def _add(self, metric: C_M) -> C_M:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} already registered")
        self._metrics[metric.name] = metric
        return metric

    def collector(self, name: str, collect: Collector) -> None:
        """Add families computed at each scrape (after the registered metrics); `name` is for logs.
        A collector that raises is skipped for that scrape, with a warning."""
        self._collectors.append((name, collect))

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help, labels))

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help, labels))

    def histogram(
        self, name: str, help: str, labels: Sequence[str] = (), *, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return self._add(Histogram(name, help, labels, buckets=buckets))

    def render(self) -> str:
        """The text exposition format 0.0.4 (serve it as `CONTENT_TYPE`)."""
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        for name, collect in self._collectors:
            try:
                families = list(collect())
            except Exception:
                log.warning("metrics collector %s failed", name, exc_info=True)
                continue
            for family in families:
                if family.name in self._metrics:
                    continue  # a registered metric wins over a collected one of the same name
                lines.extend(family.render())
        return "\n".join(lines) + "\n"


# -- what every Prometheus client library exports: process_* and python_* -----------------------
#
# Names, types, help texts and labels as `prometheus_client` (0.26) exports them, so dashboards
# and alerts written for any Python service work unchanged. Read from /proc as it does: on a
# system without /proc (macOS) the process_* families are absent, as with prometheus_client.

try:
    _PAGESIZE = os.sysconf("SC_PAGE_SIZE")
    _TICKS = float(os.sysconf("SC_CLK_TCK"))
except (ValueError, OSError, AttributeError):  # pragma: no cover - not Unix
    _PAGESIZE, _TICKS = 4096, 100.0


def _boot_time(proc: str) -> float | None:
    try:
        with open(os.path.join(proc, "stat"), "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


class ProcessCollector:
    """`process_*` from /proc/self: memory, CPU, start time, file descriptors."""

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self._btime = _boot_time(proc)

    def __call__(self) -> list[Family]:
        if self._btime is None:
            return []
        pid = os.path.join(self._proc, "self")
        out: list[Family] = []
        try:
            with open(os.path.join(pid, "stat"), "rb") as f:
                parts = f.read().split(b")")[-1].split()  # after "pid (comm)", which may hold spaces
        except OSError:
            parts = []
        if len(parts) > 21:
            out += [
                Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                       samples=(((), float(parts[20])),)),
                Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                       samples=(((), float(parts[21]) * _PAGESIZE),)),
                Family("process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.",
                       samples=(((), float(parts[19]) / _TICKS + self._btime),)),
                Family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                       samples=(((), (float(parts[11]) + float(parts[12])) / _TICKS),)),
            ]  # fmt: skip
        try:
            with open(os.path.join(pid, "limits"), "rb") as f:
                max_fds = next((float(line.split()[3]) for line in f if line.startswith(b"Max open file")), None)
            open_fds = len(os.listdir(os.path.join(pid, "fd")))
        except (OSError, ValueError, IndexError):
            return out
        out.append(Family("process_open_fds", "gauge", "Number of open file descriptors.", samples=(((), open_fds),)))
        if max_fds is not None:
            out.append(
                Family("process_max_fds", "gauge", "Maximum number of open file descriptors.", samples=(((), max_fds),))
            )
        return out


def gc_families() -> list[Family]:
    """`python_gc_*` per generation, from `gc.get_stats()` (CPython)."""
    stats = gc.get_stats()
    gen = ("generation",)

    def family(name: str, help: str, key: str) -> Family:
        return Family(name, "counter", help, gen, tuple(((str(i),), float(s[key])) for i, s in enumerate(stats)))

    return [
        family("python_gc_objects_collected_total", "Objects collected during gc", "collected"),
        family("python_gc_objects_uncollectable_total", "Uncollectable objects found during GC", "uncollectable"),
        family("python_gc_collections_total", "Number of times this generation was collected", "collections"),
    ]


def _python_info() -> Family:
    major, minor, patchlevel = platform.python_version_tuple()
    labels = ("implementation", "major", "minor", "patchlevel", "version")  # prometheus_client's output order
    values = (platform.python_implementation(), major, minor, patchlevel, platform.python_version())
    return Family("python_info", "gauge", "Python platform information", labels, ((values, 1.0),))


def runtime_collectors(registry: Registry) -> None:
    """Add `process_*`, `python_gc_*` (CPython) and `python_info` to `registry`."""
    registry.collector("process", ProcessCollector())
    if platform.python_implementation() == "CPython" and hasattr(gc, "get_stats"):
        registry.collector("gc", gc_families)
    info = [_python_info()]
    registry.collector("platform", lambda: info)


# Records between a stream's tail and what a session has sent its app: 0 is "caught up".
LAG_BUCKETS: Final = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


class Metrics:
    """The sidecar's metrics, all `s2_sidecar_*`. Pass one object around; `render()` for /metrics.

    Label conventions: `method` is the gRPC method name (`Read`, `ReadSession`, `CheckTail`);
    `code` a gRPC status name (`OK`, `UNAVAILABLE`, ...); `kind` the upstream request (`read`,
    `tail`, `session`, `list`); `status` the HTTP status as a number (`200`, `503`) or an error
    token for requests with no response: `connect` (no connection could be made: refused,
    unreachable, DNS, TLS handshake, connect timeout), `timeout` (connected, no answer in time),
    `disconnected` (the connection broke), `protocol` (not S2's wire format), `cancelled` (the
    caller left); `reason` a short fixed token (S2's error code such as `unavailable`, or
    `connect`, `timeout`, `disconnected`, `protocol`); `pool` the upstream connection pool
    (`session`, `unary`, `long_poll`). Besides `s2_sidecar_*`, `runtime=True` adds the
    `process_*` and `python_*` families every Prometheus client library exports.
    """

    def __init__(self, *, runtime: bool = True) -> None:
        r = self.registry = Registry()
        self.rpcs = r.counter(
            "s2_sidecar_rpcs_total", "gRPC calls finished, by method and gRPC status.", ("method", "code")
        )
        self.rpc_duration = r.histogram(
            "s2_sidecar_rpc_duration_seconds",
            "gRPC call duration in seconds (sessions: their whole life).",
            ("method",),
        )
        self.upstream_requests = r.counter(
            "s2_sidecar_upstream_requests_total",
            "Upstream HTTP requests, by kind and HTTP status or error.",
            ("kind", "status"),
        )
        self.upstream_duration = r.histogram(
            "s2_sidecar_upstream_request_duration_seconds",
            "Upstream request duration in seconds, to the full response (sessions: to the response headers).",
            ("kind",),
        )
        self.upstream_retries = r.counter(
            "s2_sidecar_upstream_retries_total", "Upstream requests retried, by kind and reason.", ("kind", "reason")
        )
        self.session_reconnects = r.counter(
            "s2_sidecar_session_reconnects_total", "Upstream sessions reopened after a failure, by reason.", ("reason",)
        )
        self.trimmed_records_skipped = r.counter(
            "s2_sidecar_trimmed_records_skipped_total",
            "Records a resumed upstream session found trimmed (S2 answered from the first remaining record).",
        )
        self.advised_reconnects = r.counter(
            "s2_sidecar_advised_reconnects_total", "Upstream sessions reopened because the server advised it."
        )
        self.sessions_open = r.gauge("s2_sidecar_sessions_open", "ReadSession calls open now.")
        self.shared_session_subscribers = r.gauge(
            "s2_sidecar_shared_session_subscribers", "App sessions attached to a shared upstream session now."
        )
        self.tail_cache = r.counter(
            "s2_sidecar_tail_cache_requests_total",
            "Tail lookups answered from the cache (hit) or upstream (miss).",
            ("result",),
        )
        self.history_records = r.counter(
            "s2_sidecar_history_cache_records_total",
            "Records sent to apps by reads that may use the history cache: from the cache (hit) or from "
            "an upstream read made for them (miss).",
            ("result",),
        )
        self.history_bytes = r.counter(
            "s2_sidecar_history_cache_bytes_total",
            "Protobuf bytes of the records counted in s2_sidecar_history_cache_records_total, by result.",
            ("result",),
        )
        self.history_upstream_bytes = r.counter(
            "s2_sidecar_history_upstream_read_bytes_total",
            "Protobuf bytes of records read from upstream by every read path (what the history cache saves).",
        )
        self.history_cache_bytes = r.gauge(
            "s2_sidecar_history_cache_bytes", "Bytes the history cache holds now (records and their index)."
        )
        self.history_evictions = r.counter(
            "s2_sidecar_history_cache_evictions_total", "Chunks (upstream batches) evicted from the history cache."
        )
        self.history_basins = r.gauge(
            "s2_sidecar_history_cache_basins",
            "Basins the history cache has read, by how it knows a stream's records are current (mode): "
            "incarnation (S2's stream listing confirms them) or age (the token may not list streams: "
            "records are served only within the max age of being read).",
            ("mode",),
        )
        self.history_confirmations = r.counter(
            "s2_sidecar_history_cache_confirmations_total",
            "Times S2 was asked whether a stream's cached records stand (listing, tail, first record), by "
            "result: same (the same incarnation), recreated, deleted, failed.",
            ("result",),
        )
        self.upstream_connections_in_use = r.gauge(
            "s2_sidecar_upstream_connections_in_use", "Upstream pool connections in use, by pool.", ("pool",)
        )
        self.upstream_connections_limit = r.gauge(
            "s2_sidecar_upstream_connections_limit", "Upstream pool size limit, by pool.", ("pool",)
        )
        self.upstream_connections = r.gauge(
            "s2_sidecar_upstream_connections",
            "Open upstream connections, by HTTP version (protocol: 1.1 or 2).",
            ("protocol",),
        )
        self.upstream_streams_per_connection = r.gauge(
            "s2_sidecar_upstream_streams_per_connection",
            "Open HTTP/2 streams (sessions and calls) per upstream connection, on average (protocol: 2).",
            ("protocol",),
        )
        self.records_sent = r.counter("s2_sidecar_records_sent_total", "Records sent to apps, by method.", ("method",))
        self.bytes_sent = r.counter(
            "s2_sidecar_bytes_sent_total", "Metered bytes of records sent to apps, by method.", ("method",)
        )
        self.upstream_up = r.gauge(
            "s2_sidecar_upstream_up",
            "1 if the upstream was reachable on the last request or probe (any HTTP answer), 0 if no "
            "connection could be made.",
        )
        self.upstream_reachability = Reachability(self.upstream_up.labels())  # the policy: sidecar/reachability.py
        self.session_lag = r.histogram(
            "s2_sidecar_session_lag_records",
            "Records between the stream's tail and the end of what a ReadSession has sent its app, observed "
            "at each message sent while the sidecar knows the tail (0: caught up).",
            buckets=LAG_BUCKETS,
        )
        self.info = r.gauge("s2_sidecar_info", "Always 1; the labels tell the sidecar's version.", ("version",))
        self.info.labels(_version()).set(1)
        if runtime:
            runtime_collectors(r)

    def render(self) -> str:
        return self.registry.render()
