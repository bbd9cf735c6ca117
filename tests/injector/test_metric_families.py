"""The contract of the injector's /metrics that dashboards and alerts depend on: every family's
name, type, HELP and label names, and the content type, scraped from the injector process after
reviews (injected, refused), a bad request and a certificate reload."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from tests.injector import pods
from tests.injector.chart import Rendered
from tests.injector.test_server import _renew_cert, _start, _stop
from tests.telemetry.exposition import FamilyTable, check
from tests.telemetry.test_metric_families import CONTENT_TYPE, SIDECAR_FAMILIES

INJECTOR_FAMILIES: FamilyTable = {
    "s2_sidecar_injector_reviews_total": ("counter", ("outcome",)),
    "s2_sidecar_injector_refused_total": ("counter", ("reason",)),
    "s2_sidecar_injector_warnings_total": ("counter", ()),
    "s2_sidecar_injector_bad_requests_total": ("counter", ()),
    "s2_sidecar_injector_tls_reloads_total": ("counter", ("result",)),
    "s2_sidecar_injector_review_duration_seconds": ("histogram", ()),
    **{name: family for name, family in SIDECAR_FAMILIES.items() if name.startswith(("process_", "python_"))},
}


def test_injector_metric_families(tmp_path: Path, default_render: Rendered) -> None:
    inj = _start(tmp_path, default_render.template_text, "--tls-reload-seconds", "0.1")
    try:
        inj.review(pods.minimal())
        clash = pods.web_app()
        clash["spec"]["containers"][1]["name"] = "s2-sidecar"
        inj.review(clash)  # refused, with a warning
        assert inj.call("POST", "/mutate", b"{not json")[0] == 400
        new_ca = _renew_cert(inj)  # a reload, counted
        req = urllib.request.Request(f"https://localhost:{inj.port}/metrics")
        with urllib.request.urlopen(req, context=inj.context(new_ca), timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == CONTENT_TYPE
            text = resp.read().decode()
    finally:
        output = _stop(inj)
    assert inj.proc.returncode == 0, output
    check(text, INJECTOR_FAMILIES)
