"""The sidecar's metric set: every `s2_sidecar_*` family's name, help text, labels and buckets
(`Metrics`). The instruments and their rendering are `sidecar/prometheus.py`'s."""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from typing import Final

from sidecar.prometheus import CONTENT_TYPE, CounterChild, GaugeChild, HistogramChild, Registry, runtime_collectors
from sidecar.reachability import Reachability

# What the layers import from here: the metric set, its buckets, the types of its series, and the
# content type `render()` is served as.
__all__ = ["CONTENT_TYPE", "LAG_BUCKETS", "LATENCY_BUCKETS", "CounterChild", "GaugeChild", "HistogramChild", "Metrics"]

# 0.5 ms to 60 s: loopback unary calls at the low end, long polls (wait <= 60 s) at the top.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def _version() -> str:
    try:
        return importlib_metadata.version("s2-sidecar")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


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
    `process_*` and `python_*` families every Prometheus client library exports (from
    `prometheus_client`'s collectors, at scrape time).
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
            buckets=LATENCY_BUCKETS,
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
            buckets=LATENCY_BUCKETS,
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
