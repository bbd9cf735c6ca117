"""The chart on a real cluster: values a misconfiguration would otherwise only show at runtime
(basin names, resources), pull secrets, scrape settings and the documented example manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.wire.names import basin_name_problem
from tests.helm.helpers import CHART, Helm, is_injector, validate_k8s


def _basin_pattern() -> re.Pattern[str]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    return re.compile(schema["properties"]["s2"]["properties"]["defaultBasin"]["pattern"])


@pytest.mark.parametrize("command", ["lint", "template"])
def test_a_basin_name_s2_refuses_fails_the_chart_naming_the_value(helm: Helm, command: str) -> None:
    args: list[str | Path] = [
        command,
        *(["--strict"] if command == "lint" else ["rel"]),
        CHART,
        "--set",
        "s2.defaultBasin=My_Basin",
    ]
    proc = helm.run(*args)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "defaultBasin" in out and "My_Basin" in out, out


@pytest.mark.parametrize(
    "name",
    [
        "",
        "my-basin",
        "a" * 8,
        "a" * 48,
        "0rders-01",
        "My_Basin",
        "short",
        "a" * 49,
        "-leading",
        "trailing-",
        "a_b_c_d_e",
    ],
)
def test_the_schema_basin_pattern_is_the_sidecars_rule(name: str) -> None:
    # The sidecar exits at start on a name basin_name_problem refuses; the schema must refuse the same.
    accepted = bool(_basin_pattern().search(name))
    assert accepted == (name == "" or basin_name_problem(name) is None), name


def _resources(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """container name -> resources, for every container of every workload rendered."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        if d.get("kind") == "Deployment":
            spec = d["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                out[c["name"]] = c["resources"]
        if d.get("kind") == "ConfigMap" and is_injector(d):
            out["injected"] = json.loads(d["data"]["template.json"])["variants"]["tcp"]["container"]["resources"]
    return out


def test_resource_keys_merge_one_by_one_and_null_drops_a_default(helm: Helm) -> None:
    # Only a memory limit: Helm merges it into the defaults, so the default CPU limit stays (as the
    # values and README say)...
    only_memory = _resources(helm.template(sets=("example.enabled=true", "sidecar.resources.limits.memory=1Gi")))
    for name in ("s2-sidecar", "injected"):
        assert only_memory[name]["limits"] == {"cpu": "1", "memory": "1Gi"}, name
    # ...and null is how a default is dropped, in the example pod and the injected sidecar alike.
    no_cpu = _resources(
        helm.template(
            sets=(
                "example.enabled=true",
                "sidecar.resources.limits.memory=1Gi",
                "sidecar.resources.limits.cpu=null",
                "injector.resources.limits.cpu=null",
            )
        )
    )
    for name in ("s2-sidecar", "injected"):
        assert no_cpu[name] == {"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}, name
    assert no_cpu["injector"]["limits"] == {"memory": "256Mi"}
    proc = helm.run("lint", "--strict", CHART, "--set", "sidecar.resources.limits.cpu=null")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_pod_monitor_is_rendered_only_when_enabled(helm: Helm) -> None:
    assert not [d for d in helm.template() if d["kind"] == "PodMonitor"]
    docs = helm.template(sets=("metrics.podMonitor.enabled=true", "metrics.podMonitor.labels.release=prometheus"))
    (monitor,) = [d for d in docs if d["kind"] == "PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "apps" and monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"] == {"matchLabels": {"s2-sidecar/inject": "true"}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    # the port name the sidecar container declares, in the injected template and the named templates
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "s2-admin", "path": "/metrics", "interval": "30s"}
    injected = next(d for d in docs if d["kind"] == "ConfigMap" and is_injector(d))
    container = json.loads(injected["data"]["template.json"])["variants"]["tcp"]["container"]
    assert container["ports"][0]["name"] == "s2-admin"


@pytest.mark.parametrize("setting", ["metrics.podMonitor.interval=30 seconds", "metrics.podAnnotations=yes"])
def test_metrics_values_are_schema_checked(helm: Helm, setting: str) -> None:
    proc = helm.run("template", "rel", CHART, "--set", setting)
    assert proc.returncode != 0 and "schema" in proc.stderr, proc.stderr


NETWORK_POLICIES = CHART / "examples" / "networkpolicy.yaml"


def _policies() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(NETWORK_POLICIES.read_text()) if d}


def test_the_network_policy_example_is_valid_kubernetes() -> None:
    policies = _policies()
    assert sorted(policies) == ["s2-sidecar-egress", "s2-sidecar-injector"]
    for doc in policies.values():
        validate_k8s(doc)


def test_the_network_policy_example_selects_what_the_readme_install_renders(helm: Helm) -> None:
    """Release s2 in s2-system, as the README installs it: the injector policy selects its pods on
    their container port, and the egress policy the pods the webhook injects."""
    proc = helm.run("template", "s2", CHART, "--namespace", "s2-system")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    injector = _policies()["s2-sidecar-injector"]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and is_injector(d))
    assert injector["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert injector["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert injector["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}]
    webhook = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")
    selector = _policies()["s2-sidecar-egress"]["spec"]["podSelector"]
    assert webhook["webhooks"][0]["objectSelector"] == selector
