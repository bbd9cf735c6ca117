"""AdmissionReview handling without sockets: parsing, responses, and the server's answer() when
the patch logic itself fails."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from sidecar.injector import bounds, review
from sidecar.injector.metrics import InjectorMetrics
from sidecar.injector.patch import Outcome
from sidecar.injector.server import Injector
from tests.injector import pods
from tests.injector.chart import Rendered


def _review(pod: dict[str, Any] | None, **request: Any) -> bytes:
    req: dict[str, Any] = {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE"}
    if pod is not None:
        req["object"] = pod
    req.update(request)
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}).encode()


def test_response_carries_the_patch_base64_and_short_warnings() -> None:
    ops = [{"op": "add", "path": "/metadata/annotations/a~1b", "value": "c"}]
    outcome = Outcome("injected", patch=ops, warnings=["w" * 1000] * 40)
    answer = review.response({"uid": "u-9"}, outcome)
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    resp = answer["response"]
    assert resp["uid"] == "u-9" and resp["allowed"] is True and resp["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(resp["patch"])) == ops
    assert len(resp["warnings"]) == review.MAX_WARNINGS
    assert all(len(w) == review.MAX_WARNING for w in resp["warnings"])
    assert review.response({"uid": "u"}, Outcome("skipped"))["response"] == {"uid": "u", "allowed": True}


@pytest.mark.parametrize(
    "request_fields",
    [
        {"operation": "UPDATE"},
        {"operation": "DELETE"},
        {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}},
        {"subResource": "ephemeralcontainers"},
    ],
)
def test_only_pod_creates_are_considered(default_render: Rendered, request_fields: dict[str, Any]) -> None:
    request = review.parse(_review(pods.web_app(), **request_fields))
    assert review.decide(request, default_render.template) == Outcome("skipped")


def test_an_internal_error_admits_the_pod_unchanged(default_render: Rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> Outcome:
        raise KeyError("bug")

    monkeypatch.setattr(review, "plan", broken)
    injector = Injector(default_render.template, InjectorMetrics())
    status, body = injector.answer(_review(pods.web_app()))
    assert status == 200
    resp = json.loads(body)["response"]
    assert resp["allowed"] is True and "patch" not in resp
    assert resp["warnings"] == ["s2-sidecar not injected: injector error"]
    text = injector.metrics.registry.render()
    assert 's2_sidecar_injector_reviews_total{outcome="error"} 1' in text
    assert 's2_sidecar_injector_refused_total{reason="error"} 1' in text


def test_answer_counts_outcomes(default_render: Rendered) -> None:
    injector = Injector(default_render.template, InjectorMetrics())
    assert injector.answer(_review(pods.minimal()))[0] == 200
    assert injector.answer(_review(None))[0] == 400
    text = injector.metrics.registry.render()
    assert 's2_sidecar_injector_reviews_total{outcome="injected"} 1' in text
    assert "s2_sidecar_injector_bad_requests_total 1" in text
    assert "s2_sidecar_injector_review_duration_seconds_count 1" in text


def test_a_patch_over_the_bound_is_refused(default_render: Rendered) -> None:
    """The answer is bounded: a patch longer than max_patch_bytes (MAX_PATCH_BYTES) is refused."""
    template = default_render.template
    request = review.parse(_review(pods.web_app()))
    full = review.decide(request, template)
    size = len(json.dumps(full.patch, separators=(",", ":")))
    assert review.decide(request, template, max_patch_bytes=size) == full
    outcome = review.decide(request, template, max_patch_bytes=size - 1)
    assert outcome.kind == "refused" and outcome.reason == "patch_too_large" and not outcome.patch
    assert outcome.warnings == [
        f"s2-sidecar not injected: the patch would be {size} bytes; the injector answers at most {size - 1}"
    ]


def test_a_uid_longer_than_the_bound_is_a_bad_review() -> None:
    """The answer echoes the uid (the API server's are 36-character UUIDs): a long one is not echoed."""
    assert review.parse(_review(None, uid="u" * bounds.MAX_UID))["uid"] == "u" * bounds.MAX_UID
    with pytest.raises(review.BadReview, match=f"request.uid is longer than {bounds.MAX_UID} characters"):
        review.parse(_review(None, uid="u" * (bounds.MAX_UID + 1)))


def test_a_malformed_pod_is_a_warning_not_an_error(default_render: Rendered, caplog: pytest.LogCaptureFixture) -> None:
    """mountPath as a list is the pod's fault: refused as malformed_pod with one WARNING line, no
    traceback, and not counted as an injector error."""
    injector = Injector(default_render.template, InjectorMetrics())
    with caplog.at_level(logging.INFO, logger="sidecar.injector"):
        status, body = injector.answer(_review(pods.mount_path_as_list()))
    assert status == 200
    resp = json.loads(body)["response"]
    assert resp["allowed"] is True and "patch" not in resp
    assert resp["warnings"] == [
        "s2-sidecar not injected: container worker: volumeMounts[0].mountPath is missing or not a string"
    ]
    text = injector.metrics.registry.render()
    assert 's2_sidecar_injector_refused_total{reason="malformed_pod"} 1' in text
    assert 's2_sidecar_injector_reviews_total{outcome="refused"} 1' in text
    assert 's2_sidecar_injector_reviews_total{outcome="error"} 1' not in text
    assert [r.levelname for r in caplog.records] == ["WARNING"], caplog.text
    assert not caplog.records[0].exc_info and "malformed_pod" in caplog.records[0].getMessage()
