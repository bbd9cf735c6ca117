"""Pods created through the API server, and what the stored pod shows of the injector."""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.injector import pods
from tests.k8s.cluster import Response
from tests.k8s.release import Release

APP_NAMESPACE = "shop"  # an ordinary namespace: injected
SIDECAR = "s2-sidecar"  # sidecar.name
LABEL = "s2-sidecar/inject"
PROPAGATION = 30.0  # seconds for a webhook configuration change to reach the API server's admission


def pod_in(namespace: str, pod: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = copy.deepcopy(pod or pods.minimal())
    pod["metadata"]["namespace"] = namespace
    return pod


def without_label(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    del pod["metadata"]["labels"][LABEL]
    return pod


def create_pod(release: Release, pod: dict[str, Any], dry_run: bool = False) -> Response:
    path = f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods" + ("?dryRun=All" if dry_run else "")
    return release.cluster.call("POST", path, pod)


def sidecar(stored: dict[str, Any]) -> dict[str, Any] | None:
    """The injected native sidecar of a stored pod, or None."""
    for c in stored["spec"].get("initContainers", []):
        if c["name"] == SIDECAR:
            return dict(c)
    return None


def wait_for_webhook(release: Release, *, injected: bool, pod: dict[str, Any] | None = None) -> None:
    """The API server applies a new or changed MutatingWebhookConfiguration a moment after it is
    stored: dry-run creations until a pod comes back injected (or not)."""
    pod = pod or pod_in(APP_NAMESPACE)
    deadline = time.monotonic() + PROPAGATION
    while True:
        resp = create_pod(release, pod, dry_run=True)
        assert resp.status == 201, resp.body
        if (sidecar(resp.body) is not None) == injected:
            return
        assert time.monotonic() < deadline, f"webhook not {'in' if injected else 'out of'} effect after {PROPAGATION} s"
        time.sleep(0.2)
