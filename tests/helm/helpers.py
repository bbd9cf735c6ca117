"""Helpers for the container and Helm chart tests: paths, a helm runner, pod-spec accessors."""

from __future__ import annotations

import copy
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "s2-sidecar"
GOOD_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))

# The securityContext every container the chart renders (sidecar, injector) must have.
HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
INVALID_VALUES = sorted((Path(__file__).parent / "values" / "invalid").glob("*.yaml"))
HELM_BIN = REPO / ".tools" / "bin" / "helm"


@dataclass
class Helm:
    binary: Path
    env: dict[str, str]

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def template_text(self, *values: Path, sets: tuple[str, ...] = (), chart: Path = CHART) -> str:
        args: list[str | Path] = ["template", "rel", chart, "--namespace", "apps"]
        for v in values:
            args += ["-f", v]
        for s in sets:
            args += ["--set", s]
        proc = self.run(*args)
        assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
        return proc.stdout

    def template(self, *values: Path, sets: tuple[str, ...] = (), chart: Path = CHART) -> list[dict[str, Any]]:
        text = self.template_text(*values, sets=sets, chart=chart)
        return [d for d in yaml.safe_load_all(text) if d]


def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def merged_values(*files: Path) -> dict[str, Any]:
    """Chart defaults with the values files merged on top, the way helm merges them."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    values = chart_defaults()
    for f in files:
        values = merge(values, yaml.safe_load(f.read_text()) or {})
    return values


def is_injector(doc: dict[str, Any]) -> bool:
    return bool(doc.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component") == "injector")


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The workload's pod spec (the example Deployment, or a parent chart's), not the injector's."""
    deployments = [d for d in docs if d.get("kind") == "Deployment" and not is_injector(d)]
    assert len(deployments) == 1, f"expected one Deployment, got {[d.get('kind') for d in docs]}"
    spec: dict[str, Any] = deployments[0]["spec"]["template"]["spec"]
    return spec


def env_map(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> env entry; fails on duplicate names."""
    out: dict[str, dict[str, Any]] = {}
    for e in container.get("env") or []:
        assert e["name"] not in out, f"duplicate env {e['name']} in {container['name']}"
        out[e["name"]] = e
    return out


def env_values(container: dict[str, Any]) -> dict[str, str]:
    return {k: e["value"] for k, e in env_map(container).items() if "value" in e}


# Kubernetes versions every manifest and patched pod is validated against (strict: unknown fields fail).
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# Custom resources kubernetes-validate has no schema for (it knows only the built-in API).
CRD_GROUPS = ("cert-manager.io/",)


def validate_k8s(doc: dict[str, Any]) -> None:
    """Validate one manifest (strict) against every version in K8S_VERSIONS; fails the test with
    the version and the validator's message."""
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            raise AssertionError(
                f"{doc.get('kind')} {doc.get('metadata', {}).get('name')} invalid for "
                f"Kubernetes {version} at {where}: {e.message}"
            ) from None
