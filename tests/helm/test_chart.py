"""The Helm chart, checked with a real helm v4: lint, render, and assert on the rendered pod spec."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helm.helpers import (
    CHART,
    GOOD_VALUES,
    HARDENED,
    INVALID_VALUES,
    REPO,
    Helm,
    chart_defaults,
    env_map,
    env_values,
    is_injector,
    merged_values,
    pod_spec,
)

CI = CHART / "ci"
SIDECAR = "s2-sidecar"
MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "4194304",
    "MALLOC_TRIM_THRESHOLD_": "67108864",
    "MALLOC_TOP_PAD_": "16777216",
}


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def split(spec: dict[str, Any], name: str = SIDECAR) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(sidecar, app, native) from a pod spec; asserts the sidecar is in exactly one place."""
    inits = [c for c in spec.get("initContainers") or [] if c["name"] == name]
    regular = [c for c in spec["containers"] if c["name"] == name]
    assert len(inits) + len(regular) == 1, "the sidecar must appear exactly once"
    apps = [c for c in spec["containers"] if c["name"] == "app"]
    assert len(apps) == 1
    return (inits or regular)[0], apps[0], bool(inits)


# ---------------------------------------------------------------------------------------- install


def test_install_helm_is_idempotent(helm: Helm) -> None:
    """A second run reuses .tools/bin/helm (no download, binary untouched) and prints a v4 version."""
    if helm.binary != REPO / ".tools" / "bin" / "helm":
        pytest.skip("HELM_BIN overrides the installed helm")
    before = helm.binary.stat().st_mtime_ns
    proc = subprocess.run([str(REPO / "scripts" / "install-helm")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"v4\.\d+\.\d+\S*", proc.stdout.strip()), proc.stdout
    assert "fetching" not in proc.stderr
    assert helm.binary.stat().st_mtime_ns == before


# ---------------------------------------------------------------------------------------- lint


@pytest.mark.parametrize("values", [None, *GOOD_VALUES], ids=["defaults", *ids(GOOD_VALUES)])
def test_lint_strict(helm: Helm, values: Path | None) -> None:
    args: list[str | Path] = ["lint", "--strict", CHART]
    if values:
        args += ["-f", values]
    proc = helm.run(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_good_values_files_cover_the_required_scenarios() -> None:
    names = {p.name for p in GOOD_VALUES}
    assert {
        "example-values.yaml",
        "legacy-values.yaml",
        "unix-socket-values.yaml",
        "otel-values.yaml",
        "hosted-values.yaml",
    } <= names
    assert {"typo.yaml", "wrong-type.yaml"} <= {p.name for p in INVALID_VALUES}


# ---------------------------------------------------------------------------------------- invalid values


@pytest.mark.parametrize("values", INVALID_VALUES, ids=ids(INVALID_VALUES))
@pytest.mark.parametrize("command", ["lint", "template"])
def test_invalid_values_are_rejected_by_the_schema(helm: Helm, values: Path, command: str) -> None:
    args: list[str | Path] = [command, *(["--strict"] if command == "lint" else ["rel"]), CHART, "-f", values]
    proc = helm.run(*args)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"helm {command} accepted {values.name}:\n{out}"
    assert "schema" in out, out
    # the message names the offending key
    offending = {
        "typo.yaml": "nativ",
        "wrong-type.yaml": "adminPort",
        "inline-token.yaml": "token",
        "bad-enum.yaml": "logFormat",
        "account-endpoint.yaml": "accountEndpoint",
    }.get(values.name)
    if offending:
        assert offending in out, out


@pytest.mark.parametrize(
    "setting",
    [
        "sidecar.native=yes",  # string, not bool
        "sidecar.readyRequiresUpstream=sometimes",  # string, not bool
        "sidecar.probes.startup.periodSeconds=0",  # below minimum
        "sidecar.unixSocket.path=relative.sock",
        "sidecar.unixSocket.mode=999",
        "otel.protocol=thrift",
        "image.pullPolicy=Sometimes",
        "image.digest=latest",
        "s2.basinEndpoint=orders.b.s2.dev",  # no scheme
        "example.enable=true",
        "unknownTopLevel=1",
    ],
)
def test_more_schema_rejections(helm: Helm, setting: str) -> None:
    proc = helm.run("template", "rel", CHART, "--set", setting)
    assert proc.returncode != 0, f"accepted {setting}"
    assert "schema" in proc.stderr, proc.stderr


def test_hosted_s2_without_token_secret_fails(helm: Helm) -> None:
    proc = helm.run(
        "template",
        "rel",
        CHART,
        "--set",
        "example.enabled=true",
        "--set",
        "s2.basinEndpoint=https://orders.b.s2.dev/v1",
    )
    assert proc.returncode != 0
    assert "s2.tokenSecret.name" in proc.stderr


# ---------------------------------------------------------------------------------------- schema file


def _walk_objects(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if schema.get("type") == "object" or "properties" in schema:
        yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from _walk_objects(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from _walk_objects(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk_objects(schema["additionalProperties"], f"{path}.*")


def test_schema_is_strict_draft7() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    for path, obj in _walk_objects(schema):
        if path == ".global":  # helm's reserved key, shared with parent charts
            continue
        ap = obj.get("additionalProperties")
        # false for records; a typed schema for free-form maps (annotations, resource attributes)
        assert ap is False or (isinstance(ap, dict) and "type" in ap), f"{path or '<root>'}: {ap!r}"
        if ap is False:
            assert obj.get("properties"), f"{path}: closed object with no properties"


def test_schema_accepts_defaults_and_good_files_rejects_invalid() -> None:
    validator = jsonschema.Draft7Validator(json.loads((CHART / "values.schema.json").read_text()))
    assert not list(validator.iter_errors(chart_defaults()))
    for f in GOOD_VALUES:
        errors = [e.message for e in validator.iter_errors(merged_values(f))]
        assert not errors, f"{f.name}: {errors}"
    for f in INVALID_VALUES:
        assert list(validator.iter_errors(merged_values(f))), f"{f.name} should be invalid"


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k not in ("resources", "securityContext"):
            yield from _leaf_keys(v, key + ".")
        else:
            yield key


def test_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", readme, flags=re.M))
    missing = [k for k in _leaf_keys(chart_defaults()) if k not in rows]
    assert not missing, f"values missing from the README table: {missing}"
    for name in (
        "s2-sidecar.container",
        "s2-sidecar.initContainer",
        "s2-sidecar.volumes",
        "s2-sidecar.appEnv",
        "s2-sidecar.appVolumeMounts",
    ):
        assert f'include "{name}"' in readme, name


def test_no_inline_token_value_exists() -> None:
    values = chart_defaults()
    assert "token" not in values["s2"]
    assert set(values["s2"]["tokenSecret"]) == {"name", "key", "optional"}


# ---------------------------------------------------------------------------------------- rendering


def test_defaults_render_the_injector_and_no_workload(helm: Helm) -> None:
    """Default values install the injector (see test_injector_chart.py) and no app workload."""
    docs = helm.template()
    assert docs and all(is_injector(d) for d in docs), [d["kind"] for d in docs]
    assert helm.template(sets=("injector.enabled=false",)) == []


@pytest.mark.parametrize("values", GOOD_VALUES, ids=ids(GOOD_VALUES))
def test_rendered_pod_spec(helm: Helm, values: Path) -> None:
    """Invariants for every realistic values file, with expectations taken from the merged values."""
    v = merged_values(values)
    sc = v["sidecar"]
    spec = pod_spec(helm.template(values))
    sidecar, app, native = split(spec)

    # placement: native sidecar (init container, restartPolicy Always) or a regular container first
    assert native is sc["native"]
    if native:
        assert sidecar["restartPolicy"] == "Always"
        assert spec["containers"][0]["name"] == "app"
    else:
        assert "restartPolicy" not in sidecar
        assert spec["containers"][0]["name"] == SIDECAR, "legacy sidecar must start before the app"
        assert not any(c["name"] == SIDECAR for c in spec.get("initContainers") or [])

    # probes: httpGet on the numeric admin port
    probes = {"startupProbe": "/readyz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        get = sidecar[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] == 9090 and isinstance(get["port"], int), probe
    assert sidecar["ports"] == [{"name": "s2-admin", "containerPort": 9090, "protocol": "TCP"}]

    # hardened security context, resources present
    assert sidecar["securityContext"] == HARDENED
    assert sidecar["resources"]["requests"] and sidecar["resources"]["limits"]["memory"]
    assert sidecar["resources"] == sc["resources"]

    # environment
    env = env_values(sidecar)
    assert env["S2_SIDECAR_ADMIN_LISTEN"] == "0.0.0.0:9090"
    assert {k: env[k] for k in MALLOC} == MALLOC
    assert env["S2_SIDECAR_SESSION_CONNECTIONS"] == str(sc["sessionConnections"])
    assert env["S2_SIDECAR_UNARY_CONNECTIONS"] == str(sc["unaryConnections"])
    assert env["S2_SIDECAR_LONG_POLL_CONNECTIONS"] == str(sc["longPollConnections"])
    assert env["S2_SIDECAR_MAX_PENDING_CALLS"] == str(sc["maxPendingCalls"])
    assert float(env["S2_SIDECAR_GRACE_PERIOD"]) == sc["gracePeriodSeconds"]
    assert env["S2_SIDECAR_LOG_LEVEL"] == sc["logLevel"]
    assert env["S2_SIDECAR_LOG_FORMAT"] == sc["logFormat"]
    assert env["S2_SIDECAR_READY_REQUIRES_UPSTREAM"] == str(sc["readyRequiresUpstream"]).lower()
    if v["s2"]["basinEndpoint"]:
        assert env["S2_BASIN_ENDPOINT"] == v["s2"]["basinEndpoint"]
    else:
        assert "S2_BASIN_ENDPOINT" not in env
    for extra in sc["extraEnv"]:
        assert env_map(sidecar)[extra["name"]] == extra

    # token only ever from the Secret
    entries = env_map(sidecar)
    if v["s2"]["tokenSecret"]["name"]:
        assert entries["S2_ACCESS_TOKEN"] == {
            "name": "S2_ACCESS_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": v["s2"]["tokenSecret"]["name"], "key": v["s2"]["tokenSecret"]["key"]}
            },
        }
    else:
        assert "S2_ACCESS_TOKEN" not in entries

    # /tmp emptyDir, app address, grace period large enough for the drain
    volumes = {vol["name"]: vol for vol in spec["volumes"]}
    assert "emptyDir" in volumes["s2-sidecar-tmp"]
    assert {"name": "s2-sidecar-tmp", "mountPath": "/tmp"} in sidecar["volumeMounts"]
    assert spec["terminationGracePeriodSeconds"] > sc["gracePeriodSeconds"]
    assert env_values(app)["S2_SIDECAR_ADDRESS"] in ("127.0.0.1:50051", "unix://" + sc["unixSocket"]["path"])


def test_native_mode(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "example-values.yaml"))
    sidecar, app, native = split(spec)
    assert native
    assert spec["initContainers"] == [sidecar]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 9090, "scheme": "HTTP"}
    assert "lifecycle" not in sidecar  # no legacy hooks on a native sidecar
    assert sidecar["image"] == "s2-sidecar:0.1.0"
    env = env_values(sidecar)
    assert env["S2_SIDECAR_LISTEN"] == "127.0.0.1:50051"
    assert env["OTEL_SDK_DISABLED"] == "true"
    assert "S2_SIDECAR_UNIX_SOCKET_MODE" not in env
    assert env_values(app) == {"S2_SIDECAR_ADDRESS": "127.0.0.1:50051"}
    assert not app.get("volumeMounts")
    assert [vol["name"] for vol in spec["volumes"]] == ["s2-sidecar-tmp"]


def test_legacy_mode(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "legacy-values.yaml"))
    sidecar, _app, native = split(spec)
    assert not native
    assert not spec.get("initContainers")
    assert [c["name"] for c in spec["containers"]] == [SIDECAR, "app"]
    assert "restartPolicy" not in sidecar
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    hook = sidecar["lifecycle"]["postStart"]["exec"]["command"]
    assert hook[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9090/readyz" in hook[2]
    assert "deadline = time.monotonic() + 90" in hook[2]
    assert sidecar["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]


def test_legacy_mode_hooks_can_be_turned_off(helm: Helm) -> None:
    spec = pod_spec(
        helm.template(
            CI / "legacy-values.yaml",
            sets=("sidecar.legacy.holdApplicationUntilReady=false", "sidecar.legacy.preStopSleepSeconds=0"),
        )
    )
    sidecar, _app, _native = split(spec)
    assert "lifecycle" not in sidecar


def test_unix_socket_mode(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "unix-socket-values.yaml"))
    sidecar, app, _native = split(spec)
    volumes = {vol["name"]: vol for vol in spec["volumes"]}
    assert "emptyDir" in volumes["s2-sidecar-socket"]
    mount = {"name": "s2-sidecar-socket", "mountPath": "/var/run/s2-sidecar"}
    assert mount in sidecar["volumeMounts"]
    assert app["volumeMounts"] == [mount]
    env = env_values(sidecar)
    assert env["S2_SIDECAR_LISTEN"] == "unix:/var/run/s2-sidecar/sidecar.sock"
    assert env["S2_SIDECAR_UNIX_SOCKET_MODE"] == "0660"
    assert env_values(app)["S2_SIDECAR_ADDRESS"] == "unix:///var/run/s2-sidecar/sidecar.sock"
    assert spec["securityContext"]["fsGroup"] == 65532  # shared group for mode 0660
    assert env["S2_SIDECAR_ADMIN_LISTEN"] == "0.0.0.0:9090"  # probes still over TCP


def test_unix_socket_custom_path(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "unix-socket-values.yaml", sets=("sidecar.unixSocket.path=/sock/s2/grpc.sock",)))
    sidecar, app, _native = split(spec)
    assert env_values(sidecar)["S2_SIDECAR_LISTEN"] == "unix:/sock/s2/grpc.sock"
    assert env_values(app)["S2_SIDECAR_ADDRESS"] == "unix:///sock/s2/grpc.sock"
    assert app["volumeMounts"] == [{"name": "s2-sidecar-socket", "mountPath": "/sock/s2"}]


def test_otel(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "otel-values.yaml"))
    sidecar, _app, _native = split(spec)
    env = env_values(sidecar)
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc.cluster.local:4317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_SERVICE_NAME"] == "s2-sidecar-orders"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert "OTEL_SDK_DISABLED" not in env
    attrs = dict(kv.split("=", 1) for kv in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attrs == {
        "k8s.pod.name": "$(K8S_POD_NAME)",
        "k8s.namespace.name": "$(K8S_NAMESPACE_NAME)",
        "k8s.container.name": "s2-sidecar",
        "deployment.environment": "staging",
        "service.namespace": "orders",
    }
    names = [e["name"] for e in sidecar["env"]]
    # $(VAR) references only expand for variables defined earlier in the list
    assert names.index("K8S_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert env_map(sidecar)["K8S_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "rpc,http"


def test_hosted_s2(helm: Helm) -> None:
    text = helm.template_text(CI / "hosted-values.yaml")
    spec = pod_spec([d for d in yaml.safe_load_all(text) if d])
    sidecar, app, _native = split(spec)
    entries = env_map(sidecar)
    env = env_values(sidecar)
    assert env["S2_BASIN_ENDPOINT"] == "https://orders.b.s2.dev/v1"
    assert "S2_ACCOUNT_ENDPOINT" not in env  # the sidecar ignores it; the chart no longer sets it
    assert env["S2_SIDECAR_DEFAULT_BASIN"] == "orders-prod"
    assert env["S2_SIDECAR_SESSION_CONNECTIONS"] == "500"
    assert env["S2_SIDECAR_UNARY_CONNECTIONS"] == "50"
    assert env["S2_SIDECAR_GRACE_PERIOD"] == "15"
    assert env["S2_SIDECAR_LOG_LEVEL"] == "warning"
    assert env["S2_SIDECAR_REQUEST_TIMEOUT"] == "15"
    assert env["S2_SIDECAR_READY_REQUIRES_UPSTREAM"] == "true"
    assert entries["S2_ACCESS_TOKEN"] == {
        "name": "S2_ACCESS_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "s2-credentials", "key": "access-token"}},
    }
    assert "value" not in entries["S2_ACCESS_TOKEN"]
    assert "S2_ACCESS_TOKEN" not in env_map(app)
    assert sidecar["image"] == (
        "registry.example.com/platform/s2-sidecar:0.1.0@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert sidecar["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert spec["terminationGracePeriodSeconds"] == 45


def test_token_secret_optional_flag(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "hosted-values.yaml", sets=("s2.tokenSecret.optional=true",)))
    sidecar, _app, _native = split(spec)
    ref = env_map(sidecar)["S2_ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "s2-credentials", "key": "access-token", "optional": True}


def test_encryption_keys_secret_is_mounted_read_only_into_the_sidecar_only(helm: Helm) -> None:
    example = CI / "example-values.yaml"
    spec = pod_spec(helm.template(example, sets=("s2.encryptionKeysSecret.name=s2-keys",)))
    sidecar, app, _native = split(spec)
    assert env_values(sidecar)["S2_SIDECAR_ENCRYPTION_KEYS_DIR"] == "/etc/s2-sidecar/encryption-keys"
    mount = {"name": "s2-sidecar-encryption-keys", "mountPath": "/etc/s2-sidecar/encryption-keys", "readOnly": True}
    assert mount in sidecar["volumeMounts"]
    volumes = {vol["name"]: vol for vol in spec["volumes"]}
    assert volumes["s2-sidecar-encryption-keys"]["secret"] == {"secretName": "s2-keys", "defaultMode": 0o444}
    assert all(m["name"] != mount["name"] for m in app.get("volumeMounts") or [])  # apps never see the keys
    assert "S2_SIDECAR_ENCRYPTION_KEYS_DIR" not in env_values(app)
    # The injector's template carries them too, at the path asked for.
    text = helm.template_text(sets=("s2.encryptionKeysSecret.name=s2-keys", "s2.encryptionKeysSecret.mountPath=/keys"))
    assert '"S2_SIDECAR_ENCRYPTION_KEYS_DIR"' in text and '"mountPath": "/keys"' in text
    # Off by default: no volume, no variable.
    sidecar, _app, _native = split(spec := pod_spec(helm.template(example)))
    assert "S2_SIDECAR_ENCRYPTION_KEYS_DIR" not in env_values(sidecar)
    assert all("encryption" not in vol["name"] for vol in spec["volumes"])
    for bad in ("s2.encryptionKeysSecret.name=Not_A_Secret", "s2.encryptionKeysSecret.mountPath=relative",
                "s2.encryptionKeysSecret.key=k"):  # fmt: skip
        proc = helm.run("template", "rel", CHART, "--set", bad)
        assert proc.returncode != 0 and "schema" in proc.stderr, bad


def test_security_context_user_can_be_left_to_the_platform(helm: Helm) -> None:
    spec = pod_spec(
        helm.template(
            CI / "example-values.yaml",
            sets=("sidecar.securityContext.runAsUser=null", "sidecar.securityContext.runAsGroup=null"),
        )
    )
    sidecar, _app, _native = split(spec)
    assert sidecar["securityContext"] == {k: v for k, v in HARDENED.items() if k not in ("runAsUser", "runAsGroup")}


def test_malloc_can_be_disabled(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "example-values.yaml", sets=("sidecar.malloc.enabled=false",)))
    sidecar, _app, _native = split(spec)
    assert not set(MALLOC) & set(env_values(sidecar))


def test_custom_ports(helm: Helm) -> None:
    spec = pod_spec(helm.template(CI / "example-values.yaml", sets=("sidecar.grpcPort=6000", "sidecar.adminPort=7000")))
    sidecar, app, _native = split(spec)
    assert env_values(sidecar)["S2_SIDECAR_LISTEN"] == "127.0.0.1:6000"
    assert env_values(sidecar)["S2_SIDECAR_ADMIN_LISTEN"] == "0.0.0.0:7000"
    assert env_values(app)["S2_SIDECAR_ADDRESS"] == "127.0.0.1:6000"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert sidecar[probe]["httpGet"]["port"] == 7000


def test_notes(helm: Helm) -> None:
    proc = helm.run("install", "rel", CHART, "--dry-run=client", "-f", CI / "unix-socket-values.yaml")
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "unix:///var/run/s2-sidecar/sidecar.sock" in notes
    assert "emulator" in notes  # no basin endpoint: dev-only warning
    proc = helm.run("install", "rel", CHART, "--dry-run=client", "-f", CI / "hosted-values.yaml")
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "127.0.0.1:50051" in notes
    assert "emulator" not in notes


# ---------------------------------------------------------------------------------------- parent chart


PARENT_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-app
spec:
  selector:
    matchLabels: {app: my-app}
  template:
    metadata:
      labels: {app: my-app}
    spec:
      terminationGracePeriodSeconds: 30
      initContainers:
        {{- include "s2-sidecar.initContainer" . | nindent 8 }}
      containers:
        {{- include "s2-sidecar.container" . | nindent 8 }}
        - name: app
          image: my-app:1.0
          env:
            {{- include "s2-sidecar.appEnv" . | nindent 12 }}
          volumeMounts:
            {{- include "s2-sidecar.appVolumeMounts" . | nindent 12 }}
      volumes:
        {{- include "s2-sidecar.volumes" . | nindent 8 }}
"""


@pytest.fixture
def parent_chart(tmp_path: Path) -> Path:
    """A user's chart that depends on s2-sidecar and uses the named templates (the README pattern)."""
    parent = tmp_path / "my-app"
    (parent / "templates").mkdir(parents=True)
    (parent / "charts").mkdir()
    shutil.copytree(CHART, parent / "charts" / "s2-sidecar")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: my-app\nversion: 1.0.0\ndependencies:\n  - name: s2-sidecar\n    version: 0.1.0\n"
    )
    (parent / "values.yaml").write_text(
        "s2-sidecar:\n  s2:\n    basinEndpoint: https://orders.b.s2.dev/v1\n    defaultBasin: orders-prod\n"
        "    tokenSecret:\n      name: my-s2-token\n"
    )
    (parent / "templates" / "deployment.yaml").write_text(PARENT_TEMPLATE)
    return parent


@pytest.mark.parametrize("native", [True, False])
def test_named_templates_from_a_parent_chart(helm: Helm, parent_chart: Path, native: bool) -> None:
    sets = (f"s2-sidecar.sidecar.native={str(native).lower()}", "s2-sidecar.sidecar.unixSocket.enabled=true")
    spec = pod_spec(helm.template(chart=parent_chart, sets=sets))
    sidecar, app, is_native = split(spec)
    assert is_native is native
    env = env_values(sidecar)
    assert env["S2_BASIN_ENDPOINT"] == "https://orders.b.s2.dev/v1"
    assert env["S2_SIDECAR_DEFAULT_BASIN"] == "orders-prod"
    assert env_map(sidecar)["S2_ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "my-s2-token", "key": "token"}
    assert env["S2_SIDECAR_LISTEN"].startswith("unix:")
    assert env_values(app)["S2_SIDECAR_ADDRESS"] == "unix:///var/run/s2-sidecar/sidecar.sock"
    assert app["volumeMounts"] == [{"name": "s2-sidecar-socket", "mountPath": "/var/run/s2-sidecar"}]
    assert {vol["name"] for vol in spec["volumes"]} == {"s2-sidecar-tmp", "s2-sidecar-socket"}
    assert sidecar["securityContext"] == HARDENED


def test_parent_chart_values_are_schema_checked(helm: Helm, parent_chart: Path) -> None:
    proc = helm.run("template", "rel", parent_chart, "--set", "s2-sidecar.sidecar.nativ=false")
    assert proc.returncode != 0
    assert "nativ" in proc.stderr


# ---------------------------------------------------------------------------------------- legacy hook


class _Ready(http.server.BaseHTTPRequestHandler):
    ready_after = 0.0

    def do_GET(self) -> None:
        ok = self.path == "/readyz" and time.monotonic() >= self.ready_after
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hook_script(helm: Helm, port: int, timeout: int) -> str:
    spec = pod_spec(
        helm.template(
            CI / "legacy-values.yaml",
            sets=(f"sidecar.adminPort={port}", f"sidecar.legacy.holdTimeoutSeconds={timeout}"),
        )
    )
    sidecar, _app, _native = split(spec)
    command = sidecar["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    return str(command[2])


def test_legacy_poststart_hook_waits_for_readyz(helm: Helm) -> None:
    """Runs the rendered postStart script: it blocks while /readyz is 503 and exits 0 once it is 200."""
    port = _free_port()
    handler = type("Handler", (_Ready,), {"ready_after": time.monotonic() + 1.5})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", _hook_script(helm, port, 20)], capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert 1.4 <= time.monotonic() - started < 15
    finally:
        server.shutdown()
        server.server_close()


def test_legacy_poststart_hook_fails_after_timeout(helm: Helm) -> None:
    port = _free_port()  # nothing listens
    proc = subprocess.run(
        [sys.executable, "-c", _hook_script(helm, port, 1)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    assert "not ready" in proc.stderr
