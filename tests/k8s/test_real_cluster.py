"""Port clashes through the real API server: the injector's warning reaches the client that created
the pod, and the per-pod port annotations give a pod the API server stores (its validation runs
after the webhook, so a patch it rejects would fail the pod's creation)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.helm.helpers import CHART
from tests.injector import pods
from tests.k8s.release import Release
from tests.k8s.workloads import APP_NAMESPACE, create_pod, pod_in, sidecar


def _declaring_9090() -> dict[str, Any]:
    pod = pod_in(APP_NAMESPACE)
    pod["spec"]["containers"][0]["ports"] = [{"name": "metrics", "containerPort": 9090}]
    return pod


def test_an_app_on_the_admin_port_is_created_without_the_sidecar_and_told_why(release: Release) -> None:
    resp = create_pod(release, _declaring_9090())
    assert resp.status == 201, resp.body
    assert sidecar(resp.body) is None
    assert any("uses port 9090" in w and "s2-sidecar/admin-port" in w for w in resp.warnings), resp.warnings


def test_port_annotations_give_a_pod_the_api_server_stores(release: Release) -> None:
    pod = pods.with_annotations(_declaring_9090(), {"s2-sidecar/admin-port": "9091", "s2-sidecar/grpc-port": "50052"})
    resp = create_pod(release, pod)
    assert resp.status == 201, resp.body
    container = sidecar(resp.body)
    assert container is not None, resp.warnings
    assert container["ports"][0]["containerPort"] == 9091
    assert container["startupProbe"]["httpGet"]["port"] == 9091
    (app,) = resp.body["spec"]["containers"]
    assert {"name": "S2_SIDECAR_ADDRESS", "value": "127.0.0.1:50052"} in app["env"]


def test_the_network_policy_example_is_stored_by_the_api_server(release: Release) -> None:
    """The README's example, in the namespaces it names (the release's and the app's)."""
    for doc in (d for d in yaml.safe_load_all((CHART / "examples" / "networkpolicy.yaml").read_text()) if d):
        namespace = doc["metadata"]["namespace"]
        resp = release.cluster.create(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies", doc)
        assert resp.status == 201, resp.body
        assert resp.body["spec"]["podSelector"] == doc["spec"]["podSelector"]
