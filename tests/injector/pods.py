"""Realistic pods as the API server sends them to a mutating webhook: the pod templates of real
Deployments and Jobs (several containers, init containers, volumes, pod and container security
contexts), with generateName and no name yet."""

from __future__ import annotations

import copy
from typing import Any

Pod = dict[str, Any]

RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _pod(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> Pod:
    meta: dict[str, Any] = {
        "generateName": f"{name}-7d9f8c6b5-",
        "namespace": "shop",
        "labels": {"app": name, "pod-template-hash": "7d9f8c6b5", "s2-sidecar/inject": "true"},
    }
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def web_app() -> Pod:
    """An API server with a log shipper, a migration init container, config and cache volumes."""
    return _pod(
        "orders-api",
        {
            "serviceAccountName": "orders-api",
            "terminationGracePeriodSeconds": 45,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [
                {
                    "name": "migrate",
                    "image": "registry.example.com/orders-api:2.3.1",
                    "command": ["/app/migrate", "--to=latest"],
                    "envFrom": [{"secretRef": {"name": "orders-db"}}],
                    "securityContext": RESTRICTED,
                }
            ],
            "containers": [
                {
                    "name": "api",
                    "image": "registry.example.com/orders-api:2.3.1",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/orders", "readOnly": True},
                        {"name": "cache", "mountPath": "/var/cache/orders"},
                    ],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                    "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                    "securityContext": RESTRICTED,
                },
                {
                    "name": "log-shipper",
                    "image": "fluent/fluent-bit:3.1",
                    "volumeMounts": [{"name": "cache", "mountPath": "/var/cache/orders", "readOnly": True}],
                    "securityContext": {**RESTRICTED, "runAsUser": 10002},
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "orders-api"}},
                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
        },
        annotations={"s2-sidecar/inject": "true", "kubectl.kubernetes.io/default-container": "api"},
    )


def minimal() -> Pod:
    """One container and nothing else: no env, mounts, volumes, init containers or annotations."""
    return _pod("worker", {"containers": [{"name": "worker", "image": "example/worker:1"}]})


def batch_job() -> Pod:
    """A Job's pod: restartPolicy Never, a setup init container, two containers sharing a volume."""
    return _pod(
        "report",
        {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 2000, "runAsGroup": 2000},
            "initContainers": [{"name": "fetch", "image": "busybox:1.36", "command": ["true"]}],
            "containers": [
                {"name": "report", "image": "example/report:5", "env": [], "volumeMounts": []},
                {"name": "upload", "image": "example/upload:5", "env": [{"name": "BUCKET", "value": "reports"}]},
            ],
            "volumes": [{"name": "out", "emptyDir": {}}],
        },
        annotations={"s2-sidecar/inject": "true", "team.example.com/owner": "data~eng/reports"},
    )


ALL = {"web_app": web_app, "minimal": minimal, "batch_job": batch_job}


def with_annotations(pod: Pod, annotations: dict[str, str]) -> Pod:
    pod = copy.deepcopy(pod)
    pod["metadata"].setdefault("annotations", {}).update(annotations)
    return pod


# ------------------------------------------------------------- pods the API server would reject
# A mutating webhook sees a pod before the API server validates it, and anyone who can reach the
# injector's Service can POST to it: these must get an answer, not a fault or an OOM kill.


def tiny_containers(count: int) -> Pod:
    """`count` containers of a name each: the most containers per byte of JSON."""
    return _pod("huge", {"containers": [{"name": f"c{i}"} for i in range(count)]})


def empty_objects(count: int) -> Pod:
    """One container whose env is `count` empty objects: the most memory per byte once parsed (a
    `{},` of 3 bytes is a 64-byte dict and a list slot), in a list the patch logic walks."""
    pod = minimal()
    pod["spec"]["containers"][0]["env"] = [{}] * count
    return pod


def mount_path_as_list() -> Pod:
    """`mountPath` as a list (the API server's validation would reject it, after the webhook)."""
    pod = minimal()
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": ["/data"]}]
    return pod
