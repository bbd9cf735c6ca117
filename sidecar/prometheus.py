"""Prometheus metrics for the hot path, hand-written: counters, gauges and histograms with labels,
rendered in the text exposition format 0.0.4; and the `process_*`/`python_*` families from
`prometheus_client`'s own collectors, rendered only at scrape time.

Why the instruments are ours and not `prometheus_client`'s: they are touched on every call, and
there `prometheus_client` costs more than it saves. Its `inc()` and `observe()` are 3-5 Python
calls each, with a lock: on the sidecar's metric set one `Read`'s metrics take 7.8x as long
(0.95 vs 7.3 us), and a cached `CheckTail` runs 31 Python functions instead of 21 and 5.5% more
CPU instructions (384.8k vs 364.8k, callgrind). `tests/bench/prometheus_cost.py` measures the
two side by side; docs/observability.md, has the figures. The collectors run once per scrape, off
the hot path, so those are the library's (`runtime_collectors`).

Everything here is meant to be used from the event loop's thread (no locks). Labels never carry
secrets, record contents or stream/basin names (unbounded cardinality): each metric also stops
adding series past `max_series` distinct label sets, as a guard.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Generic, TypeVar

import prometheus_client

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


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
        self, name: str, help: str, labels: Sequence[str] = (), *, buckets: Sequence[float], max_series: int = 1000
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

# Renders families in the text format 0.0.4 at scrape time, newline-terminated.
Exposition = Callable[[], str]


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric[CounterChild] | _Metric[GaugeChild] | _Metric[HistogramChild]] = {}
        self._expositions: list[tuple[str, Exposition]] = []

    def _add(self, metric: C_M) -> C_M:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} already registered")
        self._metrics[metric.name] = metric
        return metric

    def exposition(self, name: str, render: Exposition) -> None:
        """Append what `render` writes at each scrape, after the registered metrics (its families
        must not share their names); `name` is for logs. One that raises is left out of that
        scrape, with a warning."""
        self._expositions.append((name, render))

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help, labels))

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help, labels))

    def histogram(self, name: str, help: str, labels: Sequence[str] = (), *, buckets: Sequence[float]) -> Histogram:
        return self._add(Histogram(name, help, labels, buckets=buckets))

    def render(self) -> str:
        """The text exposition format 0.0.4 (serve it as `CONTENT_TYPE`)."""
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        text = "\n".join(lines) + "\n"
        for name, render in self._expositions:
            try:
                text += render()
            except Exception:
                log.warning("metrics exposition %s failed", name, exc_info=True)
        return text


def runtime_collectors(registry: Registry) -> None:
    """Add `process_*` (Linux /proc; none elsewhere), `python_gc_*` (CPython) and `python_info`:
    `prometheus_client`'s `ProcessCollector`, `GCCollector` and `PlatformCollector`, the families
    every Prometheus client library exports, on a `CollectorRegistry` of this registry's own (not
    the process-wide `REGISTRY`), rendered by `generate_latest` at each scrape."""
    runtime = prometheus_client.CollectorRegistry()
    prometheus_client.ProcessCollector(registry=runtime)
    prometheus_client.GCCollector(registry=runtime)
    prometheus_client.PlatformCollector(registry=runtime)
    registry.exposition("runtime", lambda: prometheus_client.generate_latest(runtime).decode())
