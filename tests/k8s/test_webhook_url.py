"""injector.webhook.url as helm renders it (no API server needed): the certificate names the URL's
host, whatever its form; a URL Kubernetes would refuse is refused by the schema first."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from cryptography import x509

from tests.helm.conftest import helm  # noqa: F401  (the session helm v4 fixture, shared)
from tests.helm.helpers import CHART, Helm


def _names(helm: Helm, url: str) -> tuple[dict[str, object], list[str], list[str]]:  # noqa: F811 (the fixture type)
    docs = helm.template(sets=(f"injector.webhook.url={url}",))
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    (config,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return config["webhooks"][0]["clientConfig"], san.get_values_for_type(x509.DNSName), ips


@pytest.mark.parametrize(
    ("url", "dns", "ip"),
    [
        ("https://127.0.0.1:9443/mutate", None, "127.0.0.1"),
        ("https://[::1]:9443/mutate", None, "::1"),
        ("https://injector.dev.example:8443/mutate", "injector.dev.example", None),
        ("https://injector.dev.example", "injector.dev.example", None),
    ],
)
def test_url_replaces_the_service_and_its_host_is_in_the_certificate(
    helm: Helm,  # noqa: F811
    url: str,
    dns: str | None,
    ip: str | None,
) -> None:
    client, dns_names, ips = _names(helm, url)
    assert client["url"] == url and "service" not in client and client["caBundle"]
    assert "rel-s2-sidecar-injector.apps.svc" in dns_names  # the Service's names stay
    if dns:
        assert dns in dns_names and not ips
    if ip:
        assert [ipaddress.ip_address(a) for a in ips] == [ipaddress.ip_address(ip)]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9443/mutate", "https://user@host/mutate", "https://host/mutate?x=1", "https://host/#f", "host"],
)
def test_url_kubernetes_would_refuse_is_a_schema_error(helm: Helm, url: str) -> None:  # noqa: F811
    proc = helm.run("template", "rel", str(CHART), "--set", f"injector.webhook.url={url}")
    assert proc.returncode != 0
    assert "/injector/webhook/url" in proc.stderr and "does not match pattern" in proc.stderr, proc.stderr
