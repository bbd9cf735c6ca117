"""The injector objects the chart installs with default values, and every rendered manifest
validated (strict) as Kubernetes 1.29 and the newest version kubernetes-validate ships."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.helm.fake_apiserver import fake_apiserver
from tests.helm.helpers import CHART, CRD_GROUPS, GOOD_VALUES, HARDENED, Helm, is_injector, pod_spec, validate_k8s

NAME = "rel-s2-sidecar-injector"
CERT_MANAGER = ("injector.tls.certManager.enabled=true",)


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        assert d["kind"] not in out, f"two {d['kind']}"
        out[d["kind"]] = d
    return out


@pytest.fixture(scope="module")
def default_docs(helm: Helm) -> dict[str, dict[str, Any]]:
    return by_kind(helm.template())


def test_default_install_renders_the_injector(default_docs: dict[str, dict[str, Any]]) -> None:
    assert set(default_docs) == {
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "MutatingWebhookConfiguration",
    }
    # no RBAC at all: the injector never calls the API
    assert not {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} & set(default_docs)
    assert default_docs["ServiceAccount"]["automountServiceAccountToken"] is False
    for d in default_docs.values():
        assert is_injector(d)
        if d["kind"] != "MutatingWebhookConfiguration":
            assert d["metadata"]["namespace"] == "apps"


def test_injector_deployment_is_hardened_and_probed(default_docs: dict[str, dict[str, Any]]) -> None:
    dep = default_docs["Deployment"]
    assert dep["spec"]["replicas"] == 2
    spec = dep["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == NAME
    assert spec["securityContext"]["runAsNonRoot"] is True
    (c,) = spec["containers"]
    assert c["securityContext"] == HARDENED
    assert c["image"] == "s2-sidecar:0.1.0"  # the same binary as the sidecar
    assert c["args"][:3] == ["injector", "--listen", "0.0.0.0:8443"]
    args = dict(zip(c["args"][1::2], c["args"][2::2], strict=True))
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert args["--tls-cert"] == mounts["tls"] + "/tls.crt" and args["--tls-key"] == mounts["tls"] + "/tls.key"
    assert args["--template"] == mounts["template"] + "/template.json"
    assert mounts["tmp"] == "/tmp"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == default_docs["Secret"]["metadata"]["name"]
    assert volumes["template"]["configMap"]["name"] == default_docs["ConfigMap"]["metadata"]["name"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
    assert c["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert c["resources"]["limits"]["memory"]
    pdb = default_docs["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    svc = default_docs["Service"]["spec"]
    assert svc["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]


def test_webhook_configuration(default_docs: dict[str, dict[str, Any]]) -> None:
    (hook,) = default_docs["MutatingWebhookConfiguration"]["webhooks"]
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 5
    assert hook["reinvocationPolicy"] == "Never"
    assert hook["clientConfig"]["service"] == {"name": NAME, "namespace": "apps", "path": "/mutate", "port": 443}
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["objectSelector"] == {"matchLabels": {"s2-sidecar/inject": "true"}}
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert expr == {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "apps"]}


def test_generated_ca_signs_the_serving_certificate(default_docs: dict[str, dict[str, Any]]) -> None:
    """The caBundle is the CA in the Secret, and it signed a certificate valid for the Service's
    DNS names: what the API server checks when it calls the webhook."""
    (hook,) = default_docs["MutatingWebhookConfiguration"]["webhooks"]
    secret = default_docs["Secret"]
    assert secret["type"] == "kubernetes.io/tls"
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.issuer == ca.subject
    key = ca.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"{NAME}.apps.svc" in names and f"{NAME}.apps.svc.cluster.local" in names
    tls_key = base64.b64decode(secret["data"]["tls.key"]).decode()
    assert "PRIVATE KEY" in tls_key


def test_values_reach_the_webhook(helm: Helm) -> None:
    docs = by_kind(
        helm.template(
            sets=(
                "injector.webhook.failurePolicy=Fail",
                "injector.webhook.timeoutSeconds=10",
                "injector.webhook.reinvocationPolicy=IfNeeded",
                "injector.webhook.excludeNamespaces={monitoring,istio-system}",
                "injector.webhook.selectPodsByLabel=false",
                "injector.replicas=3",
                "injector.image.repository=registry.example.com/s2-sidecar",
            )
        )
    )
    (hook,) = docs["MutatingWebhookConfiguration"]["webhooks"]
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["reinvocationPolicy"]) == ("Fail", 10, "IfNeeded")
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "kube-system",
        "apps",
        "monitoring",
        "istio-system",
    ]
    assert hook["objectSelector"] == {}  # every pod; the annotation decides
    assert docs["Deployment"]["spec"]["replicas"] == 3
    image = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/s2-sidecar:0.1.0"


@pytest.mark.parametrize(
    "setting", ["injector.webhook.failurePolicy=Sometimes", "injector.webhook.timeoutSeconds=31", "injector.port=80"]
)
def test_injector_values_are_schema_checked(helm: Helm, setting: str) -> None:
    proc = helm.run("template", "rel", CHART, "--set", setting)
    assert proc.returncode != 0 and "schema" in proc.stderr, proc.stderr


def test_cert_manager_mode(helm: Helm) -> None:
    docs = helm.template(sets=CERT_MANAGER)
    kinds = [d["kind"] for d in docs]
    assert "Secret" not in kinds  # cert-manager writes it
    cert = next(d for d in docs if d["kind"] == "Certificate")
    issuer = next(d for d in docs if d["kind"] == "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert cert["spec"]["secretName"] == f"{NAME}-tls"
    assert cert["spec"]["issuerRef"] == {"name": issuer["metadata"]["name"], "kind": "Issuer"}
    assert f"{NAME}.apps.svc" in cert["spec"]["dnsNames"]
    hook_config = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")
    assert hook_config["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": f"apps/{NAME}"}
    assert "caBundle" not in hook_config["webhooks"][0]["clientConfig"]
    # with an existing issuer, no Issuer is created
    docs = helm.template(
        sets=(
            *CERT_MANAGER,
            "injector.tls.certManager.issuerRef.name=corp-ca",
            "injector.tls.certManager.issuerRef.kind=ClusterIssuer",
        )
    )
    assert "Issuer" not in [d["kind"] for d in docs]
    cert = next(d for d in docs if d["kind"] == "Certificate")
    assert cert["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


def test_template_configmap_holds_the_named_templates_output(helm: Helm) -> None:
    """The ConfigMap the injector reads carries the container the named templates render for the
    same values (in both socket modes), so the two cannot drift."""
    for values in GOOD_VALUES:
        for unix in (False, True):
            docs = helm.template(values, sets=(f"sidecar.unixSocket.enabled={str(unix).lower()}",))
            cm = next(d for d in docs if d["kind"] == "ConfigMap" and is_injector(d))
            template = json.loads(cm["data"]["template.json"])
            variant = template["variants"]["unix" if unix else "tcp"]
            spec = pod_spec(docs)
            sidecars = [
                c for c in [*(spec.get("initContainers") or []), *spec["containers"]] if c["name"] == "s2-sidecar"
            ]
            assert variant["container"] == sidecars[0], values.name
            assert variant["volumes"] == spec["volumes"], values.name
            assert template["unixSocketDefault"] is unix
            app = spec["containers"][-1]
            assert variant["appEnv"] == app["env"]
            assert (variant["appVolumeMounts"] or None) == app.get("volumeMounts")


RENDERS = {
    "defaults": ((), ()),
    "cert-manager": ((), CERT_MANAGER),
    "app-token": ((), ("s2.appTokenSecret.name=app-token", "example.enabled=true")),
    "annotation-opt-in": ((), ("injector.webhook.selectPodsByLabel=false",)),
    **{p.name: ((p,), ()) for p in GOOD_VALUES},
}


@pytest.mark.parametrize("render", list(RENDERS))
def test_every_rendered_manifest_is_valid_kubernetes(helm: Helm, render: str) -> None:
    files, sets = RENDERS[render]
    docs = helm.template(*files, sets=sets)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue  # custom resources: no schema in kubernetes-validate (checked in test_cert_manager_mode)
        validate_k8s(doc)
        checked += 1
    assert checked >= 6, [d["kind"] for d in docs]  # the injector objects, at least


def test_validation_is_strict(helm: Helm) -> None:
    """The validator fails an unknown field: the checks above are not vacuous."""
    dep = next(d for d in helm.template() if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["sidecarMode"] = "on"
    with pytest.raises(AssertionError, match="sidecarMode"):
        validate_k8s(dep)


def test_ci_files_are_all_covered() -> None:
    assert {p.name for p in GOOD_VALUES} <= set(RENDERS)
    assert all(isinstance(p, Path) for p in GOOD_VALUES)


# ------------------------------------------------------------------------- upgrades keep the certificate


def _server_render(helm: Helm, kubeconfig: Path) -> dict[str, dict[str, Any]]:
    env = {**helm.env, "KUBECONFIG": str(kubeconfig)}
    proc = subprocess.run(
        [str(helm.binary), "template", "rel", str(CHART), "--namespace", "apps", "--dry-run=server",
         "--disable-openapi-validation"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return by_kind([d for d in yaml.safe_load_all(proc.stdout) if d])


def test_lookup_keeps_the_existing_certificate_on_upgrade(helm: Helm, tmp_path: Path) -> None:
    """Against a (fake) API server holding the Secret of an earlier install, the chart reuses its
    CA and certificate instead of generating new ones; without it, it generates a pair."""
    first = by_kind(helm.template())["Secret"]
    path = f"/api/v1/namespaces/apps/secrets/{NAME}-tls"
    existing = {
        **first,
        "metadata": {
            **first["metadata"],
            "annotations": {"meta.helm.sh/release-name": "rel", "meta.helm.sh/release-namespace": "apps"},
        },
    }
    with fake_apiserver({path: existing}, tmp_path) as kubeconfig:
        upgraded = _server_render(helm, kubeconfig)
    assert upgraded["Secret"]["data"] == first["data"]
    (hook,) = upgraded["MutatingWebhookConfiguration"]["webhooks"]
    assert hook["clientConfig"]["caBundle"] == first["data"]["ca.crt"]
    with fake_apiserver({}, tmp_path) as kubeconfig:
        fresh = _server_render(helm, kubeconfig)
    assert fresh["Secret"]["data"]["ca.crt"] != first["data"]["ca.crt"]
    assert (
        fresh["MutatingWebhookConfiguration"]["webhooks"][0]["clientConfig"]["caBundle"]
        == fresh["Secret"]["data"]["ca.crt"]
    )
