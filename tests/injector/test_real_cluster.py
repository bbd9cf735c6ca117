"""What an injected pod needs on a real cluster: pull secrets for a private registry, ports that
do not clash with the app's, and scrape annotations; through real AdmissionReviews where the
answer's warnings matter."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch
import pytest

from sidecar.injector import annotations as ann
from sidecar.injector import review
from sidecar.injector.patch import plan
from tests.helm.helpers import CHART, Helm, env_map, validate_k8s
from tests.injector import pods
from tests.injector.chart import render
from tests.injector.test_patch import apply, as_pod, sidecar_of, without_sidecar

CI = CHART / "ci"

PULL_SECRETS = ("imagePullSecrets[0].name=regcred", "imagePullSecrets[1].name=mirror")


def admit(pod: dict[str, Any], helm: Helm, sets: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """The pod after a real AdmissionReview round trip (request JSON in, response JSON out), and
    the answer's warnings."""
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "7c0e-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "shop",
                "object": pod,
            },
        }
    ).encode()
    request = review.parse(body)
    answer = json.loads(json.dumps(review.response(request, review.decide(request, render(helm, sets=sets).template))))
    response = answer["response"]
    assert response["uid"] == "7c0e-1" and response["allowed"] is True
    patched = pod
    if "patch" in response:
        patched = jsonpatch.JsonPatch(json.loads(base64.b64decode(response["patch"]))).apply(pod, in_place=False)
    return patched, response.get("warnings", [])


# ---------------------------------------------------------------------------------- pull secrets


def test_pull_secrets_are_added_to_a_pod_without_any(helm: Helm) -> None:
    patched, warnings = admit(pods.minimal(), helm, PULL_SECRETS)
    assert patched["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert warnings == []
    validate_k8s(patched)


def test_pull_secrets_merge_into_the_pods_own_without_duplicates(helm: Helm) -> None:
    pod = pods.web_app()
    pod["spec"]["imagePullSecrets"] = [{"name": "app-registry"}, {"name": "mirror"}]
    patched, _ = admit(pod, helm, PULL_SECRETS)
    assert patched["spec"]["imagePullSecrets"] == [{"name": "app-registry"}, {"name": "mirror"}, {"name": "regcred"}]
    validate_k8s(patched)


def test_no_pull_secrets_no_field(helm: Helm) -> None:
    patched, _ = admit(pods.minimal(), helm)
    assert "imagePullSecrets" not in patched["spec"]


def test_pull_secrets_on_the_injector_and_the_example(helm: Helm) -> None:
    docs = helm.template(sets=(*PULL_SECRETS, "example.enabled=true", "example.imagePullSecrets[0].name=mirror"))
    specs = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}
    assert specs["rel-s2-sidecar-injector"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    # the example's own first, then the chart's, each once
    assert specs["rel-s2-sidecar-example"]["imagePullSecrets"] == [{"name": "mirror"}, {"name": "regcred"}]
    plain = helm.template(sets=("example.enabled=true",))
    assert all("imagePullSecrets" not in d["spec"]["template"]["spec"] for d in plain if d["kind"] == "Deployment")


def test_a_pull_secrets_field_of_the_wrong_type_refuses(helm: Helm) -> None:
    pod = pods.minimal()
    pod["spec"]["imagePullSecrets"] = {"name": "regcred"}
    outcome = plan(pod, render(helm, sets=PULL_SECRETS).template)
    assert outcome.kind == "refused" and "imagePullSecrets" in outcome.warnings[0]


# ------------------------------------------------------------------------------------ port clash


def _declaring(port: int, protocol: str = "TCP") -> dict[str, Any]:
    pod = pods.web_app()
    pod["spec"]["containers"][1]["ports"] = [{"name": "metrics", "containerPort": port, "protocol": protocol}]
    return pod


@pytest.mark.parametrize(("port", "which", "key"), [(9090, "admin", ann.ADMIN_PORT), (50051, "gRPC", ann.GRPC_PORT)])
def test_an_app_port_the_sidecar_needs_refuses_naming_the_annotation(
    helm: Helm, port: int, which: str, key: str
) -> None:
    pod = _declaring(port)
    patched, warnings = admit(pod, helm)
    assert patched == pod  # admitted unchanged: a sidecar or app failing "address in use" is worse
    assert warnings == [
        f"s2-sidecar not injected: container log-shipper uses port {port}, the sidecar's {which} port;"
        f" set the annotation {key} to a free port"
    ]


def test_an_init_container_port_clashes_too_and_udp_does_not(helm: Helm) -> None:
    pod = pods.web_app()
    pod["spec"]["initContainers"][0]["ports"] = [{"containerPort": 9090}]
    assert plan(pod, render(helm).template).reason == "port_clash"
    patched, warnings = admit(_declaring(9090, "UDP"), helm)
    assert warnings == [] and patched["metadata"]["annotations"][ann.STATUS] == "injected"


def test_unix_socket_mode_takes_no_grpc_port(helm: Helm) -> None:
    pod = pods.with_annotations(_declaring(50051), {ann.SOCKET: "unix"})
    _, warnings = admit(pod, helm)
    assert warnings == []


@pytest.mark.parametrize("base", ["example-values.yaml", "legacy-values.yaml"])
def test_port_annotations_move_the_sidecar_as_the_values_would(helm: Helm, base: str) -> None:
    """The annotated ports give exactly the sidecar the chart renders with sidecar.grpcPort and
    sidecar.adminPort: listen addresses, containerPort, probes and the legacy postStart hook."""
    expected = render(helm, CI / base, sets=("sidecar.grpcPort=50052", "sidecar.adminPort=9191")).example_spec()
    spec = without_sidecar(render(helm, CI / base).example_spec())
    spec["containers"][-1]["ports"] = [{"containerPort": 9090}, {"containerPort": 50051}]
    pod = as_pod(spec, {ann.GRPC_PORT: "50052", ann.ADMIN_PORT: "9191"})
    outcome = plan(pod, render(helm, CI / base).template)
    assert outcome.kind == "injected" and outcome.warnings == [], outcome
    patched = apply(pod, outcome)
    assert sidecar_of(patched["spec"]) == sidecar_of(expected)
    assert env_map(patched["spec"]["containers"][-1])["S2_SIDECAR_ADDRESS"] == {
        "name": "S2_SIDECAR_ADDRESS",
        "value": "127.0.0.1:50052",
    }
    validate_k8s(patched)


def test_containers_added_later_get_the_moved_address(helm: Helm) -> None:
    template = render(helm).template
    pod = pods.with_annotations(_declaring(50051), {ann.GRPC_PORT: "50061"})
    injected = apply(pod, plan(pod, template))
    injected["spec"]["containers"].append({"name": "late", "image": "example/late:1"})
    again = apply(injected, plan(injected, template))
    assert env_map(again["spec"]["containers"][-1])["S2_SIDECAR_ADDRESS"]["value"] == "127.0.0.1:50061"


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({ann.ADMIN_PORT: "0"}, "s2-sidecar/admin-port must be a port number 1-65535, got '0'"),
        ({ann.GRPC_PORT: "65536"}, "s2-sidecar/grpc-port must be a port number 1-65535, got '65536'"),
        ({ann.GRPC_PORT: "http"}, "s2-sidecar/grpc-port must be a port number 1-65535, got 'http'"),
        ({ann.GRPC_PORT: "9300", ann.ADMIN_PORT: "9300"}, "must differ, both are 9300"),
    ],
)
def test_invalid_port_annotations_refuse(helm: Helm, annotations: dict[str, str], message: str) -> None:
    outcome = plan(pods.with_annotations(pods.minimal(), annotations), render(helm).template)
    assert outcome.kind == "refused" and outcome.reason == "invalid_annotation"
    assert message in outcome.warnings[0]


def test_an_annotated_port_the_app_uses_clashes_too(helm: Helm) -> None:
    pod = pods.with_annotations(_declaring(9300), {ann.ADMIN_PORT: "9300"})
    outcome = plan(pod, render(helm).template)
    assert outcome.reason == "port_clash" and "uses port 9300" in outcome.warnings[0]


# ------------------------------------------------------------------------------ scrape annotations

SCRAPE = ("metrics.podAnnotations=true",)


def test_scrape_annotations_are_opt_in(helm: Helm) -> None:
    patched, _ = admit(pods.minimal(), helm)
    assert not any(k.startswith("prometheus.io/") for k in patched["metadata"]["annotations"])


def test_scrape_annotations_name_the_sidecars_admin_port(helm: Helm) -> None:
    patched, warnings = admit(pods.minimal(), helm, SCRAPE)  # a pod without any annotations
    assert patched["metadata"]["annotations"] == {
        ann.STATUS: "injected",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    assert warnings == []
    moved, _ = admit(pods.with_annotations(pods.web_app(), {ann.ADMIN_PORT: "9091"}), helm, SCRAPE)
    assert moved["metadata"]["annotations"]["prometheus.io/port"] == "9091"
    validate_k8s(moved)


def test_a_pods_own_scrape_annotations_are_kept_with_a_warning(helm: Helm) -> None:
    pod = pods.with_annotations(pods.web_app(), {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"})
    patched, warnings = admit(pod, helm, SCRAPE)
    assert patched["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert "prometheus.io/path" not in patched["metadata"]["annotations"]
    assert warnings == [
        "s2-sidecar: the pod sets prometheus.io/port, prometheus.io/scrape itself; kept"
        " (scrape the sidecar with a PodMonitor)"
    ]
