"""What an injected pod needs on a real cluster: pull secrets for a private registry, ports that
do not clash with the app's, and scrape annotations; through real AdmissionReviews where the
answer's warnings matter."""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonpatch

from sidecar.injector import review
from sidecar.injector.patch import plan
from tests.helm.helpers import Helm, validate_k8s
from tests.injector import pods
from tests.injector.chart import render

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
