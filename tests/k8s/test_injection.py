"""The chart and its injector against a real kube-apiserver (tests/k8s/cluster.py): helm installs the
chart, the API server calls the injector through the MutatingWebhookConfiguration the chart made,
trusting the chart's caBundle, and stores the pod after its own defaulting and validation.

Kubernetes' documented behaviour cited here: objectSelector and namespaceSelector decide whether a
webhook is called, failurePolicy decides what an unreachable webhook means, and mutating webhooks
run before validation (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/);
native sidecars are init containers with restartPolicy Always
(https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.injector import pods
from tests.k8s.release import EXCLUDED, INJECTOR, NAMESPACE, Release
from tests.k8s.workloads import (
    APP_NAMESPACE,
    LABEL,
    SIDECAR,
    create_pod,
    pod_in,
    sidecar,
    wait_for_webhook,
    without_label,
)


def _missing(stored: Any, rendered: Any, path: str = "") -> list[str]:
    """Where what the chart rendered is not in what the API server stored, which adds its defaults
    and leaves out zero values (`initialDelaySeconds: 0` is stored as no field)."""
    if stored is None and rendered in (0, False, "", [], {}):
        return []
    if isinstance(rendered, dict) and isinstance(stored, dict):
        return [m for k, v in rendered.items() for m in _missing(stored.get(k), v, f"{path}.{k}")]
    if isinstance(rendered, list) and isinstance(stored, list) and len(stored) == len(rendered):
        return [
            m for i, (s, r) in enumerate(zip(stored, rendered, strict=True)) for m in _missing(s, r, f"{path}[{i}]")
        ]
    return [] if stored == rendered else [f"{path}: stored {stored!r}, rendered {rendered!r}"]


def _without_token_mount(container: dict[str, Any]) -> dict[str, Any]:
    """The container without the ServiceAccount token mount: the API server's ServiceAccount admission
    plugin mounts it in every container of a pod whose account automounts its token, the injected
    sidecar included (it would in a sidecar added by the named templates too)."""
    mounts = container.get("volumeMounts", [])
    kept = [m for m in mounts if m["mountPath"] != "/var/run/secrets/kubernetes.io/serviceaccount"]
    assert len(kept) == len(mounts) - 1, mounts
    return {**container, "volumeMounts": kept}


def _template(release: Release) -> dict[str, Any]:
    config = release.cluster.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{INJECTOR}-template")
    return dict(json.loads(config["data"]["template.json"]))


def _created(release: Release, pod: dict[str, Any]) -> dict[str, Any]:
    resp = create_pod(release, pod)
    assert resp.status == 201, resp.body
    return resp.body


def test_chart_objects_are_stored_and_the_webhook_trusts_the_charts_ca(release: Release) -> None:
    get = release.cluster.get
    for path in (
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{INJECTOR}",
        f"/api/v1/namespaces/{NAMESPACE}/services/{INJECTOR}",
        f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets/{INJECTOR}",
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{INJECTOR}",
    ):
        assert get(path)["metadata"]["labels"]["app.kubernetes.io/component"] == "injector", path
    hook = release.webhook()
    assert hook["clientConfig"] == {"url": release.url, "caBundle": release.tls_secret()["ca.crt"]}
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["objectSelector"] == {"matchLabels": {LABEL: "true"}}
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert expr["values"] == ["kube-system", NAMESPACE, EXCLUDED]


@pytest.mark.parametrize("name", sorted(pods.ALL))
def test_labelled_pod_is_stored_with_the_native_sidecar(release: Release, name: str) -> None:
    before = release.injector.reviews()
    stored = _created(release, pod_in(APP_NAMESPACE, pods.ALL[name]()))
    assert release.injector.reviews() == before + 1
    container = sidecar(stored)
    assert container is not None, stored["spec"]
    assert stored["spec"]["initContainers"][0]["name"] == SIDECAR  # before the pod's own init containers
    assert container["restartPolicy"] == "Always"  # a native sidecar
    assert stored["metadata"]["annotations"]["s2-sidecar/status"] == "injected"
    # Exactly the container the chart renders, plus what the API server defaults after the patch.
    assert not _missing(_without_token_mount(container), _template(release)["variants"]["tcp"]["container"])
    assert container["terminationMessagePath"] == "/dev/termination-log"
    for c in stored["spec"]["containers"]:
        assert {"name": "S2_SIDECAR_ADDRESS", "value": "127.0.0.1:50051"} in c["env"], c


def test_socket_annotation_gives_the_unix_socket_variant(release: Release) -> None:
    pod = pods.with_annotations(pod_in(APP_NAMESPACE), {"s2-sidecar/socket": "unix"})
    stored = _created(release, pod)
    container = sidecar(stored)
    assert container is not None
    unix = _template(release)["variants"]["unix"]
    assert not _missing(_without_token_mount(container), unix["container"])
    (app,) = stored["spec"]["containers"]
    assert unix["appVolumeMounts"] and unix["volumes"]
    for mount in unix["appVolumeMounts"]:
        assert any(not _missing(m, mount) for m in app["volumeMounts"]), (mount, app)
    for volume in unix["volumes"]:
        assert any(not _missing(v, volume) for v in stored["spec"]["volumes"]), volume


def test_pods_without_the_label_never_reach_the_injector(release: Release) -> None:
    """objectSelector: the label opts in; the annotation alone does not (selectPodsByLabel: true)."""
    before = release.injector.reviews()
    for pod in (
        without_label(pod_in(APP_NAMESPACE)),
        pods.with_annotations(without_label(pod_in(APP_NAMESPACE)), {LABEL: "true"}),
    ):
        assert sidecar(_created(release, pod)) is None
    assert release.injector.reviews() == before


def test_opt_out_annotation_wins_over_the_label(release: Release) -> None:
    before = release.injector.reviews()
    stored = _created(release, pods.with_annotations(pod_in(APP_NAMESPACE), {LABEL: "false"}))
    assert sidecar(stored) is None and "s2-sidecar/status" not in stored["metadata"]["annotations"]
    assert release.injector.reviews() == before + 1  # called, and it declined


@pytest.mark.parametrize("namespace", ["kube-system", NAMESPACE, EXCLUDED])
def test_excluded_namespaces_never_reach_the_injector(release: Release, namespace: str) -> None:
    before = release.injector.reviews()
    stored = _created(release, pod_in(namespace))
    assert sidecar(stored) is None
    assert release.injector.reviews() == before


def test_refused_pod_is_created_without_the_sidecar_with_a_warning(release: Release) -> None:
    pod = pod_in(APP_NAMESPACE)
    pod["spec"]["containers"][0]["name"] = SIDECAR  # the sidecar's name is taken
    resp = create_pod(release, pod)
    assert resp.status == 201, resp.body
    assert not resp.body["spec"].get("initContainers")
    assert any("s2-sidecar not injected" in w for w in resp.warnings), resp.warnings


def test_deployment_is_stored_as_written_and_its_pods_are_injected(release: Release) -> None:
    """Without a controller manager no ReplicaSet or Pod appears: the Deployment is stored unchanged
    (the webhook matches pods only), and a Pod made from its template the way the ReplicaSet
    controller makes it (generateName, ownerReference, the template's labels) is injected."""
    template = pod_in(APP_NAMESPACE, pods.web_app())
    labels = {"app": "orders-api"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-api", "namespace": APP_NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": {**labels, LABEL: "true"}}, "spec": template["spec"]},
        },
    }
    stored = release.cluster.create(f"/apis/apps/v1/namespaces/{APP_NAMESPACE}/deployments", deployment).body
    assert sidecar(stored["spec"]["template"]) is None
    replica_set = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "orders-api-7d9f8c6b5", "namespace": APP_NAMESPACE},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": stored["spec"]["template"]},
    }
    rs = release.cluster.create(f"/apis/apps/v1/namespaces/{APP_NAMESPACE}/replicasets", replica_set).body
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **stored["spec"]["template"]["metadata"],
            "generateName": "orders-api-7d9f8c6b5-",
            "namespace": APP_NAMESPACE,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                                 "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": stored["spec"]["template"]["spec"],
    }  # fmt: skip
    created = _created(release, pod)
    container = sidecar(created)
    assert container is not None and container["restartPolicy"] == "Always"
    assert [c["name"] for c in created["spec"]["initContainers"]] == [SIDECAR, "migrate"]


def test_injector_down_pods_are_created_without_the_sidecar(release: Release) -> None:
    """failurePolicy: Ignore (the default): an unreachable webhook admits the pod as it is."""
    release.injector.stop()
    try:
        stored = _created(release, pod_in(APP_NAMESPACE))
    finally:
        release.injector.start()
    assert sidecar(stored) is None
    assert sidecar(_created(release, pod_in(APP_NAMESPACE))) is not None  # the same webhook, injector back


@contextlib.contextmanager
def _upgraded(release: Release, *sets: str, restore: tuple[str, ...], settled: dict[str, Any]) -> Iterator[None]:
    """`helm upgrade --reuse-values --set ...`; then the earlier values again, and back in effect
    (`settled` is a pod the restored webhook does not inject) before the next test."""
    release.upgrade(*sets)
    try:
        yield
    finally:
        release.upgrade(*restore)
        wait_for_webhook(release, injected=False, pod=settled)


def test_upgrade_keeps_the_ca_and_applies_the_new_webhook_settings(release: Release) -> None:
    secret, ca_bundle = release.tls_secret(), release.webhook()["clientConfig"]["caBundle"]
    annotated = pods.with_annotations(without_label(pod_in(APP_NAMESPACE)), {LABEL: "true"})
    with _upgraded(
        release,
        "injector.webhook.failurePolicy=Fail",
        "injector.webhook.selectPodsByLabel=false",
        restore=("injector.webhook.failurePolicy=Ignore", "injector.webhook.selectPodsByLabel=true"),
        settled=annotated,
    ):
        assert release.tls_secret() == secret  # `lookup` found the Secret: same CA, certificate and key
        hook = release.webhook()
        assert hook["clientConfig"]["caBundle"] == ca_bundle
        assert hook["failurePolicy"] == "Fail" and hook["objectSelector"] == {}
        # selectPodsByLabel: false: the annotation alone opts in.
        wait_for_webhook(release, injected=True, pod=annotated)
        assert sidecar(_created(release, annotated)) is not None
        release.injector.stop()
        try:
            resp = create_pod(release, pod_in(APP_NAMESPACE))
        finally:
            release.injector.start()
        # failurePolicy: Fail: the pod is refused, naming the webhook.
        assert resp.status == 500, resp.body
        assert 'failed calling webhook "inject.s2-sidecar.s2.dev"' in resp.body["message"], resp.body
