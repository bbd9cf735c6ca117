"""The injector's metric set (s2_sidecar_injector_*, on its own /metrics): names, help texts,
labels and buckets. The instruments and their rendering are `sidecar/prometheus.py`'s."""

from __future__ import annotations

from sidecar.metrics import LATENCY_BUCKETS
from sidecar.prometheus import Registry, runtime_collectors


class InjectorMetrics:
    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.reviews = r.counter(
            "s2_sidecar_injector_reviews_total",
            "AdmissionReviews answered, by outcome (injected, completed, skipped, already_injected, refused, error).",
            ["outcome"],
        )
        self.refused = r.counter(
            "s2_sidecar_injector_refused_total",
            "Opted-in pods admitted without the sidecar, by reason (see the response's warnings).",
            ["reason"],
        )
        self.warnings = r.counter("s2_sidecar_injector_warnings_total", "Warnings returned in AdmissionReviews.")
        self.bad_requests = r.counter(
            "s2_sidecar_injector_bad_requests_total",
            "Requests answered HTTP 400 (not a valid AdmissionReview) or 413 (body over 4 MiB, not read).",
        )
        self.tls_reloads = r.counter(
            "s2_sidecar_injector_tls_reloads_total",
            "Serving certificate reloads after the files changed, by result (ok, error).",
            ["result"],
        )
        self.duration = r.histogram(
            "s2_sidecar_injector_review_duration_seconds", "Time to answer an AdmissionReview.", buckets=LATENCY_BUCKETS
        )
        runtime_collectors(r)
