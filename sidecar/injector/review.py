"""AdmissionReview (admission.k8s.io/v1) in and out, as pure functions around `patch.plan`."""

from __future__ import annotations

import base64
import json
from typing import Any

from sidecar.injector.bounds import MAX_PATCH_BYTES, MAX_UID
from sidecar.injector.patch import Outcome, plan, refused
from sidecar.injector.template import JSON, SidecarTemplate

API_VERSION = "admission.k8s.io/v1"
# The API server keeps warnings short; longer ones may be truncated or dropped.
MAX_WARNING = 256
MAX_WARNINGS = 16


class BadReview(ValueError):
    """Not an AdmissionReview this webhook can answer (HTTP 400, with this message)."""


def parse(body: bytes) -> JSON:
    """The review's `request`, checked just enough to answer it; raises BadReview."""
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadReview(f"body is not JSON: {e}") from None
    except RecursionError:  # nesting deeper than the parser's stack: not a pod anyone sent
        raise BadReview("body is not JSON: nested too deeply") from None
    if not isinstance(review, dict):
        raise BadReview("body is not a JSON object")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise BadReview(f"expected apiVersion {API_VERSION}, kind AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is missing")
    if len(uid) > MAX_UID:
        raise BadReview(f"request.uid is longer than {MAX_UID} characters (the API server sends a UUID)")
    return request


def _is_pod_create(request: JSON) -> bool:
    kind = request.get("kind") or {}
    return (
        isinstance(kind, dict)
        and kind.get("group", "") == ""
        and kind.get("kind") == "Pod"
        and request.get("operation") == "CREATE"
        and not request.get("subResource")
    )


def _encode_patch(patch: list[JSON]) -> bytes:
    return json.dumps(patch, separators=(",", ":")).encode()


def decide(request: JSON, template: SidecarTemplate, max_patch_bytes: int = MAX_PATCH_BYTES) -> Outcome:
    """The outcome for a parsed request; raises BadReview when a pod CREATE carries no pod."""
    if not _is_pod_create(request):
        return Outcome("skipped")
    pod = request.get("object")
    if not isinstance(pod, dict):
        raise BadReview("request.object (the pod) is missing")
    outcome = plan(pod, template)
    if outcome.patch and (size := len(_encode_patch(outcome.patch))) > max_patch_bytes:
        return refused(
            "patch_too_large", f"the patch would be {size} bytes; the injector answers at most {max_patch_bytes}"
        )
    return outcome


def short_warnings(warnings: list[str]) -> list[str]:
    """The warnings as answered (and logged): the first MAX_WARNINGS, each cut at MAX_WARNING."""
    return [w[:MAX_WARNING] for w in warnings[:MAX_WARNINGS]]


def response(request: JSON, outcome: Outcome) -> JSON:
    """The AdmissionReview answer: always allowed (the injector never blocks a pod)."""
    answer: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    if outcome.patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(_encode_patch(outcome.patch)).decode()
    if outcome.warnings:
        answer["warnings"] = short_warnings(outcome.warnings)
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": answer}
