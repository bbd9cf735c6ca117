"""The injection logic without sockets: patches built from the chart-rendered template, applied to
realistic pods with `jsonpatch`, compared with the chart's own rendering and validated as
Kubernetes 1.29 and the newest version would."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import jsonpatch
import pytest

from sidecar.injector import annotations as ann
from sidecar.injector.bounds import MAX_CONTAINERS
from sidecar.injector.patch import _ENV_ORDER, Outcome, plan, pointer
from sidecar.injector.template import SidecarTemplate
from tests.helm.helpers import CHART, Helm, env_map, env_values, validate_k8s
from tests.injector import pods
from tests.injector.chart import Rendered, render

CI = CHART / "ci"
SIDECAR = "s2-sidecar"


def apply(pod: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """The patched pod; the original is left untouched (a patch must not rely on in-place edits)."""
    before = copy.deepcopy(pod)
    patched: dict[str, Any] = jsonpatch.JsonPatch(outcome.patch).apply(pod, in_place=False)
    assert pod == before
    return patched


def inject(pod: dict[str, Any], template: SidecarTemplate) -> dict[str, Any]:
    outcome = plan(pod, template)
    assert outcome.kind == "injected", outcome
    assert not outcome.warnings, outcome.warnings
    return apply(pod, outcome)


def sidecar_of(spec: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in [*(spec.get("initContainers") or []), *spec["containers"]] if c["name"] == SIDECAR]
    assert len(found) == 1
    return found[0]


def without_sidecar(spec: dict[str, Any]) -> dict[str, Any]:
    """The example Deployment's pod with the chart's sidecar parts taken out: the pod a user would
    have written before opting in."""
    spec = copy.deepcopy(spec)
    spec["initContainers"] = [c for c in spec.get("initContainers") or [] if c["name"] != SIDECAR] or None
    spec["containers"] = [c for c in spec["containers"] if c["name"] != SIDECAR]
    for c in spec["containers"]:
        c["env"] = [e for e in c.get("env") or [] if not e["name"].startswith("S2_SIDECAR_")]
        c["volumeMounts"] = [m for m in c.get("volumeMounts") or [] if not m["name"].startswith(SIDECAR)]
    spec["volumes"] = [v for v in spec["volumes"] if not v["name"].startswith(SIDECAR)]
    return {k: v for k, v in spec.items() if v or k not in ("initContainers", "volumes")}


def by_name(item: dict[str, Any]) -> str:
    return str(item["name"])


def as_pod(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"generateName": "app-", "namespace": "apps", "labels": {ann.INJECT: "true"}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def strip_app_env(spec: dict[str, Any]) -> dict[str, Any]:
    # App env and mounts are compared on their own; the chart renders an empty list as null.
    spec = {k: v for k, v in copy.deepcopy(spec).items() if v is not None}
    for c in spec["containers"]:
        c.pop("env", None)
        c.pop("volumeMounts", None)
    return spec


# ------------------------------------------------------------------------- agreement with the chart


@pytest.mark.parametrize(
    "values",
    ["example-values.yaml", "legacy-values.yaml", "unix-socket-values.yaml", "otel-values.yaml", "hosted-values.yaml"],
)
def test_injected_pod_equals_the_chart_rendered_pod(helm: Helm, values: str) -> None:
    """Same values, two paths: the example Deployment built with the named templates, and the
    injector patching that pod without the sidecar. The sidecar, the volumes, the app's env and
    mounts, and the container order come out identical."""
    rendered = render(helm, CI / values)
    chart_spec = rendered.example_spec()
    patched = inject(as_pod(without_sidecar(chart_spec)), rendered.template)["spec"]
    assert sidecar_of(patched) == sidecar_of(chart_spec)
    assert [c["name"] for c in patched.get("initContainers") or []] == [
        c["name"] for c in chart_spec.get("initContainers") or []
    ]
    assert [c["name"] for c in patched["containers"]] == [c["name"] for c in chart_spec["containers"]]
    assert sorted(patched["volumes"], key=by_name) == sorted(chart_spec["volumes"], key=by_name)
    app, chart_app = patched["containers"][-1], chart_spec["containers"][-1]
    assert env_map(app) == env_map(chart_app)
    assert (app.get("volumeMounts") or []) == (chart_app.get("volumeMounts") or [])
    assert strip_app_env(patched) == strip_app_env(chart_spec)


OVERRIDES = {
    ann.BASIN_ENDPOINT: "https://payments.b.s2.dev/v1",
    ann.DEFAULT_BASIN: "payments-eu",
    ann.TOKEN_SECRET: "payments-s2",
    ann.TOKEN_SECRET_KEY: "access-token",
    ann.SOCKET: "unix",
    "s2-sidecar/cpu-request": "300m",
    "s2-sidecar/cpu-limit": "1500m",
    "s2-sidecar/memory-request": "300Mi",
    "s2-sidecar/memory-limit": "2Gi",
}
SETS = (
    "s2.basinEndpoint=https://payments.b.s2.dev/v1",
    "s2.defaultBasin=payments-eu",
    "s2.tokenSecret.name=payments-s2",
    "s2.tokenSecret.key=access-token",
    "sidecar.unixSocket.enabled=true",
    "sidecar.resources.requests.cpu=300m",
    "sidecar.resources.limits.cpu=1500m",
    "sidecar.resources.requests.memory=300Mi",
    "sidecar.resources.limits.memory=2Gi",
)


@pytest.mark.parametrize("base", ["example-values.yaml", "legacy-values.yaml", "otel-values.yaml"])
def test_annotations_give_what_the_same_values_give(helm: Helm, base: str) -> None:
    """Each override annotation yields exactly the container the chart renders with the matching
    value set, env order included."""
    injected = render(helm, CI / base)
    expected = render(helm, CI / base, sets=SETS).example_spec()
    pod = as_pod(without_sidecar(render(helm, CI / base).example_spec()), annotations=dict(OVERRIDES))
    patched = inject(pod, injected.template)["spec"]
    assert sidecar_of(patched) == sidecar_of(expected)
    assert env_map(patched["containers"][-1])["S2_SIDECAR_ADDRESS"]["value"].startswith("unix://")
    assert sorted(patched["volumes"], key=by_name) == sorted(expected["volumes"], key=by_name)


def test_env_order_is_the_charts(helm: Helm) -> None:
    """An override is inserted where the chart renders its variable: every variable `_ENV_ORDER`
    names is one the chart renders (with every such value set), in the chart's order."""
    rendered = render(helm, CI / "example-values.yaml", sets=SETS)
    names = [e["name"] for e in sidecar_of(rendered.example_spec())["env"]]
    assert [n for n in names if n in _ENV_ORDER] == list(_ENV_ORDER)


def test_token_secret_override_keeps_the_chart_key_and_optional(helm: Helm) -> None:
    rendered = render(helm, CI / "hosted-values.yaml", sets=("s2.tokenSecret.optional=true",))
    pod = as_pod({"containers": [{"name": "app", "image": "app:1"}]}, {ann.TOKEN_SECRET: "team-b-s2"})
    sidecar = sidecar_of(inject(pod, rendered.template)["spec"])
    ref = env_map(sidecar)["S2_ACCESS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "team-b-s2", "key": "access-token", "optional": True}


def test_socket_tcp_annotation_overrides_a_unix_chart(helm: Helm) -> None:
    rendered = render(helm, CI / "unix-socket-values.yaml")
    pod = as_pod({"containers": [{"name": "app", "image": "app:1"}]}, {ann.SOCKET: "tcp"})
    spec = inject(pod, rendered.template)["spec"]
    assert env_values(spec["containers"][0]) == {"S2_SIDECAR_ADDRESS": "127.0.0.1:50051"}
    assert "volumeMounts" not in spec["containers"][0]
    assert [v["name"] for v in spec["volumes"]] == ["s2-sidecar-tmp"]
    assert env_values(sidecar_of(spec))["S2_SIDECAR_LISTEN"] == "127.0.0.1:50051"


def test_app_token_secret_reaches_sidecar_and_apps(helm: Helm) -> None:
    rendered = render(helm, sets=("s2.appTokenSecret.name=orders-app-token",))
    spec = inject(pods.web_app(), rendered.template)["spec"]
    ref = {"secretKeyRef": {"name": "orders-app-token", "key": "token"}}
    assert env_map(sidecar_of(spec))["S2_SIDECAR_APP_TOKEN"]["valueFrom"] == ref
    for c in spec["containers"]:
        assert env_map(c)["S2_SIDECAR_APP_TOKEN"]["valueFrom"] == ref


# ------------------------------------------------------------------------- realistic pods


MODES = {
    "native-tcp": (),
    "native-unix": ("sidecar.unixSocket.enabled=true",),
    "legacy-tcp": ("sidecar.native=false",),
    "legacy-unix": ("sidecar.native=false", "sidecar.unixSocket.enabled=true"),
}


@pytest.fixture(scope="module")
def mode_templates(helm: Helm) -> dict[str, Rendered]:
    return {mode: render(helm, sets=sets) for mode, sets in MODES.items()}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(pods.ALL))
def test_realistic_pod(mode_templates: dict[str, Rendered], mode: str, name: str) -> None:
    template = mode_templates[mode].template
    pod = pods.ALL[name]()
    outcome = plan(pod, template)
    assert outcome.kind == "injected" and not outcome.warnings
    patched = apply(pod, outcome)
    spec, before = patched["spec"], pod["spec"]
    native, unix = mode.startswith("native"), mode.endswith("unix")

    # the sidecar: once, where the mode puts it, hardened and probed on the admin port
    sidecar = sidecar_of(spec)
    inits = spec.get("initContainers") or []
    if native:
        assert inits[0] is sidecar or inits[0] == sidecar
        assert sidecar["restartPolicy"] == "Always" and "startupProbe" in sidecar
        assert inits[1:] == (before.get("initContainers") or [])
        assert spec["containers"] == [c for c in spec["containers"] if c["name"] != SIDECAR]
    else:
        assert spec["containers"][0] == sidecar and "restartPolicy" not in sidecar
        assert inits == (before.get("initContainers") or [])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert sidecar[probe]["httpGet"]["port"] == 9090
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    # everything the pod had is kept, in order; each app container only gains the sidecar's parts
    apps = [c for c in spec["containers"] if c["name"] != SIDECAR]
    assert [c["name"] for c in apps] == [c["name"] for c in before["containers"]]
    address = "unix:///var/run/s2-sidecar/sidecar.sock" if unix else "127.0.0.1:50051"
    for app, orig in zip(apps, before["containers"], strict=True):
        assert app["env"][: len(orig.get("env") or [])] == (orig.get("env") or [])
        assert env_values(app)["S2_SIDECAR_ADDRESS"] == address
        mounts = app.get("volumeMounts") or []
        assert mounts[: len(orig.get("volumeMounts") or [])] == (orig.get("volumeMounts") or [])
        socket_mount = {"name": "s2-sidecar-socket", "mountPath": "/var/run/s2-sidecar"}
        assert (socket_mount in mounts) is unix
        assert app.get("securityContext") == orig.get("securityContext")
        rest = {k: v for k, v in app.items() if k not in ("env", "volumeMounts")}
        assert rest == {k: v for k, v in orig.items() if k not in ("env", "volumeMounts")}
    assert spec.get("securityContext") == before.get("securityContext")
    assert spec["volumes"][: len(before.get("volumes") or [])] == (before.get("volumes") or [])
    names = [v["name"] for v in spec["volumes"]]
    assert names[len(before.get("volumes") or []) :] == ["s2-sidecar-tmp", *(["s2-sidecar-socket"] if unix else [])]
    assert patched["metadata"]["annotations"][ann.STATUS] == "injected"
    for key, value in (pod["metadata"].get("annotations") or {}).items():
        assert patched["metadata"]["annotations"][key] == value

    validate_k8s(patched)

    # already injected: no change
    again = plan(patched, template)
    assert again.kind == "already_injected" and not again.patch and not again.warnings


def mode_unix(rendered: Rendered) -> SidecarTemplate:
    """The chart's template with unix-socket mode as the default (sidecar.unixSocket.enabled)."""
    return dataclasses.replace(rendered.template, unix_default=True)


def test_missing_arrays_are_added_whole(default_render: Rendered) -> None:
    """A pod with no env, mounts, volumes, init containers or annotations: each is one `add` of the
    whole value (an `add` into a missing array would fail on the API server)."""
    pod = pods.minimal()
    ops = plan(pod, mode_unix(default_render)).patch
    paths = {op["path"]: op["value"] for op in ops}
    assert set(paths) == {
        "/spec/containers/0/env",
        "/spec/containers/0/volumeMounts",
        "/spec/volumes",
        "/spec/initContainers",
        "/metadata/annotations",
    }
    assert isinstance(paths["/spec/volumes"], list) and len(paths["/spec/volumes"]) == 2
    assert paths["/metadata/annotations"] == {ann.STATUS: "injected"}
    validate_k8s(apply(pod, Outcome("injected", patch=ops)))


def test_existing_arrays_are_appended_to_and_pointers_escaped(default_render: Rendered) -> None:
    pod = pods.batch_job()  # has empty env/volumeMounts lists, and an annotation key with ~ and /
    ops = plan(pod, default_render.template).patch
    assert {
        "op": "add",
        "path": "/spec/containers/0/env/-",
        "value": {"name": "S2_SIDECAR_ADDRESS", "value": "127.0.0.1:50051"},
    } in ops
    assert {
        "op": "add",
        "path": "/spec/initContainers/0",
        "value": sidecar_of(apply(pod, Outcome("injected", patch=ops))["spec"]),
    } in ops
    assert {"op": "add", "path": "/metadata/annotations/s2-sidecar~1status", "value": "injected"} in ops
    assert pointer("metadata", "annotations", "a~b/c") == "/metadata/annotations/a~0b~1c"


# ------------------------------------------------------------------------- opting in and out


def test_not_opted_in_is_skipped(default_render: Rendered) -> None:
    pod = pods.minimal()
    del pod["metadata"]["labels"][ann.INJECT]
    assert plan(pod, default_render.template) == Outcome("skipped")
    # the annotation alone opts in (for webhooks whose objectSelector was widened)
    assert plan(pods.with_annotations(pod, {ann.INJECT: "true"}), default_render.template).kind == "injected"
    # an explicit "false" annotation wins over the label
    labelled = pods.with_annotations(pods.minimal(), {ann.INJECT: "false"})
    assert plan(labelled, default_render.template) == Outcome("skipped")


def test_pod_from_the_named_templates_is_left_alone(helm: Helm) -> None:
    rendered = render(helm, CI / "example-values.yaml")
    assert plan(as_pod(rendered.example_spec()), rendered.template) == Outcome("already_injected")


# ------------------------------------------------------------------------- refusals


def test_container_named_like_the_sidecar_is_refused_with_a_warning(default_render: Rendered) -> None:
    pod = pods.web_app()
    pod["spec"]["containers"][1]["name"] = SIDECAR  # the log shipper, not the sidecar
    outcome = plan(pod, default_render.template)
    assert outcome.kind == "refused" and outcome.reason == "name_clash" and not outcome.patch
    assert "container s2-sidecar exists" in outcome.warnings[0]
    assert "fluent/fluent-bit:3.1" in outcome.warnings[0]


def test_volume_and_mount_clashes_are_refused(default_render: Rendered) -> None:
    pod = pods.web_app()
    pod["spec"]["volumes"].append({"name": "s2-sidecar-tmp", "emptyDir": {}})
    assert plan(pod, default_render.template).reason == "volume_clash"
    pod = pods.with_annotations(pods.web_app(), {ann.SOCKET: "unix"})
    pod["spec"]["containers"][0]["volumeMounts"].append({"name": "cache", "mountPath": "/var/run/s2-sidecar"})
    outcome = plan(pod, default_render.template)
    assert outcome.reason == "mount_clash" and "api already mounts /var/run/s2-sidecar" in outcome.warnings[0]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (ann.BASIN_ENDPOINT, "orders.b.s2.dev", "http(s) URL"),
        (ann.DEFAULT_BASIN, "Bad_Basin", "basin name"),
        (ann.TOKEN_SECRET, "Not A Secret", "Secret name"),
        (ann.TOKEN_SECRET_KEY, "a key", "[-._a-zA-Z0-9]+"),
        (ann.SOCKET, "udp", "unix or tcp"),
        ("s2-sidecar/memory-limit", "lots", "quantity"),
    ],
)
def test_invalid_annotations_refuse(default_render: Rendered, key: str, value: str, message: str) -> None:
    outcome = plan(pods.with_annotations(pods.web_app(), {key: value}), default_render.template)
    assert outcome.kind == "refused" and outcome.reason == "invalid_annotation" and not outcome.patch
    assert key in outcome.warnings[0] and message in outcome.warnings[0]


def test_hosted_endpoint_without_token_is_refused(default_render: Rendered) -> None:
    pod = pods.with_annotations(pods.web_app(), {ann.BASIN_ENDPOINT: "https://orders.b.s2.dev/v1"})
    outcome = plan(pod, default_render.template)
    assert outcome.reason == "invalid_annotation" and ann.TOKEN_SECRET in outcome.warnings[0]
    pod = pods.with_annotations(pod, {ann.TOKEN_SECRET: "orders-s2"})
    assert plan(pod, default_render.template).kind == "injected"


def test_unknown_annotation_warns_but_injects(default_render: Rendered) -> None:
    pod = pods.with_annotations(pods.web_app(), {"s2-sidecar/basin-endpiont": "https://x.example"})
    outcome = plan(pod, default_render.template)
    assert outcome.kind == "injected"
    assert outcome.warnings == ["s2-sidecar: unknown annotation s2-sidecar/basin-endpiont ignored"]


def test_app_container_setting_the_address_itself_keeps_it(default_render: Rendered) -> None:
    pod = pods.web_app()
    pod["spec"]["containers"][0]["env"].append({"name": "S2_SIDECAR_ADDRESS", "value": "127.0.0.1:6000"})
    outcome = plan(pod, default_render.template)
    assert outcome.kind == "injected"
    assert outcome.warnings == ["s2-sidecar: container api sets S2_SIDECAR_ADDRESS itself; kept"]
    spec = apply(pod, outcome)["spec"]
    assert env_values(spec["containers"][0])["S2_SIDECAR_ADDRESS"] == "127.0.0.1:6000"
    assert env_values(spec["containers"][1])["S2_SIDECAR_ADDRESS"] == "127.0.0.1:50051"


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {},
        {"containers": []},
        {"containers": "app"},
        {"containers": [None]},
        {"containers": [{"name": "a"}], "initContainers": [1]},
        pods.mount_path_as_list()["spec"],
        {"containers": [{"name": "a", "volumeMounts": [{"name": "v", "mountPath": {"p": "/x"}}]}]},
        {"containers": [{"name": "a", "volumeMounts": ["/x"]}]},
        {"containers": [{"name": "a", "volumeMounts": "/x"}]},
        {"containers": [{"name": "a", "env": {"A": "1"}}]},
        {"containers": [{"name": "a", "env": [["A", "1"]]}]},
        {"containers": [{"name": "a"}], "initContainers": [{"name": "i", "volumeMounts": [{"mountPath": 7}]}]},
    ],
)
def test_malformed_pods_are_refused_not_raised(default_render: Rendered, spec: Any) -> None:
    """Fields of the wrong type (the API server's validation runs after the webhook) refuse the
    pod as malformed_pod, naming the field: a bad pod, not an injector fault."""
    pod = {"metadata": {"labels": {ann.INJECT: "true"}}, "spec": spec}
    outcome = plan(pod, default_render.template)
    assert outcome.kind == "refused" and outcome.reason == "malformed_pod", outcome
    assert len(outcome.warnings) == 1 and outcome.warnings[0].startswith("s2-sidecar not injected: ")


def test_malformed_pod_names_the_field(default_render: Rendered) -> None:
    outcome = plan(pods.mount_path_as_list(), default_render.template)
    assert outcome.warnings == [
        "s2-sidecar not injected: container worker: volumeMounts[0].mountPath is missing or not a string"
    ]


def test_more_containers_than_the_bound_are_refused(default_render: Rendered) -> None:
    """containers + initContainers beyond MAX_CONTAINERS: refused before any patch is built (a
    pod that large is not a real one, and its patch would grow with it)."""
    pod = pods.tiny_containers(MAX_CONTAINERS)
    assert plan(pod, default_render.template).kind == "injected"  # the bound itself is patched
    pod["spec"]["initContainers"] = [{"name": "init"}]
    outcome = plan(pod, default_render.template)
    assert outcome.kind == "refused" and outcome.reason == "too_many_containers" and not outcome.patch
    assert outcome.warnings == [
        f"s2-sidecar not injected: the pod has {MAX_CONTAINERS + 1} containers and init containers;"
        f" the injector patches at most {MAX_CONTAINERS}"
    ]


@pytest.mark.parametrize("mode", ["native-unix", "legacy-tcp"])
def test_reinvocation_gives_containers_added_later_the_address(mode_templates: dict[str, Rendered], mode: str) -> None:
    """reinvocationPolicy IfNeeded: a later webhook added a container to the injected pod; the
    injector, called again, gives only that container the address (and socket mount)."""
    template = mode_templates[mode].template
    injected = inject(pods.web_app(), template)
    injected["spec"]["containers"].append(
        {"name": "mesh-proxy", "image": "example/proxy:1", "env": [{"name": "A", "value": "1"}]}
    )
    outcome = plan(injected, template)
    assert outcome.kind == "completed" and not outcome.warnings
    index = len(injected["spec"]["containers"]) - 1
    assert outcome.patch and all(op["path"].startswith(f"/spec/containers/{index}/") for op in outcome.patch)
    patched = apply(injected, outcome)
    proxy = patched["spec"]["containers"][-1]
    assert proxy["env"][0] == {"name": "A", "value": "1"}
    assert (
        env_values(proxy)["S2_SIDECAR_ADDRESS"] == env_values(patched["spec"]["containers"][-2])["S2_SIDECAR_ADDRESS"]
    )
    socket_mount = {"name": "s2-sidecar-socket", "mountPath": "/var/run/s2-sidecar"}
    assert (proxy.get("volumeMounts") == [socket_mount]) is mode.endswith("unix")
    validate_k8s(patched)
    assert plan(patched, template) == Outcome("already_injected")
