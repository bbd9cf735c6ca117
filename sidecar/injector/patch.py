"""The injection as pure logic: a pod (JSON, as the API server sends it) and the sidecar template
in, RFC 6902 JSON Patch operations and warnings out. No sockets, no Kubernetes client.

The patch must apply to the pod exactly as sent: arrays and objects that are missing are created
with one `add` of the whole value (a pointer into a missing parent fails), and everything the pod
already has (init containers, volumes, env, mounts, security contexts) is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sidecar.injector import annotations as ann
from sidecar.injector import ports
from sidecar.injector.bounds import MAX_CONTAINERS
from sidecar.injector.template import JSON, SidecarTemplate, Variant

# completed: an injected pod sent again (reinvocation) whose new app containers get the address.
Kind = Literal["injected", "skipped", "already_injected", "completed", "refused"]

# The order the chart's "s2-sidecar.env" renders these in: an override inserts its variable where
# the chart would have, so an annotated pod gets the same container as the matching values.
_ENV_ORDER = (
    "S2_SIDECAR_LISTEN",
    "S2_SIDECAR_ADMIN_LISTEN",
    "S2_SIDECAR_UNIX_SOCKET_MODE",
    "S2_BASIN_ENDPOINT",
    "S2_SIDECAR_DEFAULT_BASIN",
    "S2_ACCESS_TOKEN",
)


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    patch: list[JSON] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Why a pod was refused (a metric label: a short fixed word, never pod data).
    reason: str = ""


def pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901): `~` and `/` in a key are escaped as `~0` and `~1`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def refused(reason: str, *messages: str) -> Outcome:
    return Outcome("refused", warnings=[f"s2-sidecar not injected: {m}" for m in messages], reason=reason)


def _set_env(env: list[JSON], entry: JSON) -> None:
    """Replace the variable in place, or insert it after the chart's preceding ones."""
    name = entry["name"]
    for i, e in enumerate(env):
        if e.get("name") == name:
            env[i] = entry
            return
    before = set(_ENV_ORDER[: _ENV_ORDER.index(name)])
    at = max((i + 1 for i, e in enumerate(env) if e.get("name") in before), default=0)
    env.insert(at, entry)


def _image_repository(image: str) -> str:
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


def build(template: SidecarTemplate, overrides: ann.Overrides) -> Variant | str:
    """The sidecar variant with the pod's overrides applied, or an error message."""
    unix = template.unix_default if overrides.unix_socket is None else overrides.unix_socket
    variant = template.variant(unix)
    env: list[JSON] = variant.container.setdefault("env", [])
    if overrides.basin_endpoint is not None:
        _set_env(env, {"name": "S2_BASIN_ENDPOINT", "value": overrides.basin_endpoint})
    if overrides.default_basin is not None:
        _set_env(env, {"name": "S2_SIDECAR_DEFAULT_BASIN", "value": overrides.default_basin})
    current = next((e for e in env if e.get("name") == "S2_ACCESS_TOKEN"), None)
    if overrides.token_secret is not None or overrides.token_secret_key is not None:
        ref = dict((current or {}).get("valueFrom", {}).get("secretKeyRef", {}))
        if overrides.token_secret is None and not ref:
            return f"{ann.TOKEN_SECRET_KEY} needs {ann.TOKEN_SECRET} (the chart sets no token Secret)"
        if overrides.token_secret is not None:
            ref = {"name": overrides.token_secret, "key": template.token_key}
            if template.token_optional:
                ref["optional"] = True
        if overrides.token_secret_key is not None:
            ref["key"] = overrides.token_secret_key
        _set_env(env, {"name": "S2_ACCESS_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    endpoint = next((e.get("value", "") for e in env if e.get("name") == "S2_BASIN_ENDPOINT"), "")
    # The chart's own rule ("s2-sidecar.env" fails the render): hosted S2 always needs a token.
    if ".s2.dev" in endpoint and not any(e.get("name") == "S2_ACCESS_TOKEN" for e in env):
        return f"{endpoint} is hosted S2 but no token Secret is set (annotation {ann.TOKEN_SECRET})"
    for section, quantities in overrides.resources.items():
        variant.container.setdefault("resources", {}).setdefault(section, {}).update(quantities)
    ports.move(variant, overrides.grpc_port, overrides.admin_port)
    return variant


def _items(value: Any) -> list[Any]:
    """A pod field that should be a list, or [] (missing, null, or a type the API server rejects)."""
    return value if isinstance(value, list) else []


def _names(items: Any) -> Iterator[str]:
    """The string names in a list of objects, lazily: a pod's list can be huge, so callers keep
    only the few names they look for (no copy of the pod's)."""
    return (n for i in _items(items) if isinstance(i, dict) and isinstance(n := i.get("name"), str))


def _container_problem(c: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields of a container the patch reads, if anything. The API server
    validates a pod only after the mutating webhooks, so a wrong type arrives here."""
    for key in ("env", "volumeMounts"):
        items = c.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            return f"container {c.get('name')}: {key} is not a list of objects"
    for i, m in enumerate(_items(c.get("volumeMounts"))):
        if not isinstance(m.get("mountPath"), str):
            return f"container {c.get('name')}: volumeMounts[{i}].mountPath is missing or not a string"
    return None


def _clashes(spec: Mapping[str, Any], variant: Variant) -> tuple[str, str] | None:
    """(reason, message) when the pod already uses a name or path the sidecar needs."""
    taken = {v["name"] for v in variant.volumes}.intersection(_names(spec.get("volumes")))
    for vol in variant.volumes:
        if vol["name"] in taken:
            return "volume_clash", f"the pod already has a volume named {vol['name']}"
    mount_paths = {m.get("mountPath") for m in variant.app_volume_mounts}
    for c in spec["containers"]:
        for m in _items(c.get("volumeMounts")):
            if isinstance(m, dict) and m.get("mountPath") in mount_paths:
                return "mount_clash", f"container {c.get('name')} already mounts {m.get('mountPath')}"
    return _port_clash(spec, variant)


def _port_clash(spec: Mapping[str, Any], variant: Variant) -> tuple[str, str] | None:
    """An app container declaring a port the sidecar listens on: one of the two would fail at
    start, so the pod is better admitted without the sidecar, told which annotation moves it."""
    declared = ports.declared_tcp_ports(spec)
    ours = ports.ports_of(variant)
    for which, port, key in (("gRPC", ours.grpc, ann.GRPC_PORT), ("admin", ours.admin, ann.ADMIN_PORT)):
        if port is not None and port in declared:
            return (
                "port_clash",
                f"container {declared[port]} uses port {port}, the sidecar's {which} port;"
                f" set the annotation {key} to a free port",
            )
    return None


def _list_ops(path: str, current: Any, items: Sequence[JSON], at_start: bool = False) -> list[JSON]:
    """Append (or prepend) items to the array at `path`, creating it whole when it is missing."""
    if not items:
        return []
    if not isinstance(current, list):
        return [{"op": "add", "path": path, "value": list(items)}]
    if at_start:
        return [{"op": "add", "path": f"{path}/{i}", "value": item} for i, item in enumerate(items)]
    return [{"op": "add", "path": f"{path}/-", "value": item} for item in items]


def _existing_sidecar(
    spec: Mapping[str, Any], template: SidecarTemplate, annotations: Mapping[str, str]
) -> Outcome | None:
    """Already injected (no change), a name clash (refused), or None when no container has the name."""
    containers = [*_items(spec.get("initContainers")), *spec["containers"]]
    same_name = [c for c in containers if c.get("name") == template.name]
    if not same_name:
        return None
    theirs = str(same_name[0].get("image", ""))
    ours = str(template.tcp.container.get("image", ""))
    if annotations.get(ann.STATUS) == ann.STATUS_INJECTED:
        return _complete(spec, template, annotations)
    if _image_repository(theirs) == _image_repository(ours):
        return Outcome("already_injected")  # put there by the chart's named templates: theirs to manage
    return refused("name_clash", f"container {template.name} exists and is not the s2-sidecar image ({theirs})")


def _complete(spec: Mapping[str, Any], template: SidecarTemplate, annotations: Mapping[str, str]) -> Outcome:
    """An injected pod sent again. With reinvocationPolicy IfNeeded that happens after a later
    webhook changed it: app containers it added (no S2_SIDECAR_ADDRESS at all) get the address and
    mounts; anything else is left as it is, so a pod with nothing missing is not changed."""
    overrides, errors, _ = ann.parse_overrides(annotations)
    variant = None if errors else build(template, overrides)
    if not isinstance(variant, Variant):
        return Outcome("already_injected")
    lacking = [i for i, c in enumerate(spec["containers"]) if "S2_SIDECAR_ADDRESS" not in _names(c.get("env"))]
    ops: list[JSON] = []
    paths = {m.get("mountPath") for m in variant.app_volume_mounts}
    for i in lacking:
        c = spec["containers"][i]
        if c.get("name") == template.name:
            continue  # the legacy sidecar itself
        ops += _list_ops(pointer("spec", "containers", i, "env"), c.get("env"), variant.app_env)
        # mountPath is a string here (checked by plan); only the sidecar's paths are kept
        mounted = paths.intersection(m["mountPath"] for m in _items(c.get("volumeMounts")))
        mounts = [m for m in variant.app_volume_mounts if m.get("mountPath") not in mounted]
        ops += _list_ops(pointer("spec", "containers", i, "volumeMounts"), c.get("volumeMounts"), mounts)
    return Outcome("completed", patch=ops) if ops else Outcome("already_injected")


def _app_ops(spec: Mapping[str, Any], variant: Variant) -> tuple[list[JSON], list[str]]:
    """S2_SIDECAR_ADDRESS (and the socket mount) for every app container; an app's own value is kept."""
    ops: list[JSON] = []
    warnings: list[str] = []
    for i, c in enumerate(spec["containers"]):
        have = {e["name"] for e in variant.app_env}.intersection(_names(c.get("env")))
        warnings += [
            f"s2-sidecar: container {c.get('name')} sets {n} itself; kept" for n in _names(variant.app_env) if n in have
        ]
        env = [e for e in variant.app_env if e["name"] not in have]
        ops += _list_ops(pointer("spec", "containers", i, "env"), c.get("env"), env)
        mounts = pointer("spec", "containers", i, "volumeMounts")
        ops += _list_ops(mounts, c.get("volumeMounts"), variant.app_volume_mounts)
    return ops, warnings


def _pull_secret_ops(spec: Mapping[str, Any], template: SidecarTemplate) -> list[JSON]:
    """The chart's pull secrets the pod does not list yet (a pod names each Secret once)."""
    have = set(_names(spec.get("imagePullSecrets")))
    missing = [{"name": n} for n in dict.fromkeys(template.image_pull_secrets) if n not in have]
    return _list_ops(pointer("spec", "imagePullSecrets"), spec.get("imagePullSecrets"), missing)


def _scrape_annotations(pod: Mapping[str, Any], variant: Variant) -> tuple[dict[str, str], list[str]]:
    """prometheus.io/* for the sidecar's admin port, or nothing (with a warning) when the pod has
    its own: a pod has room for one such target, and the app's is kept."""
    own = sorted(k for k in ann.annotations_of(pod) if k in ann.SCRAPE)
    if own:
        return {}, [f"s2-sidecar: the pod sets {', '.join(own)} itself; kept (scrape the sidecar with a PodMonitor)"]
    port = ports.ports_of(variant).admin
    return dict(zip(ann.SCRAPE, ("true", str(port), "/metrics"), strict=True)), []


def _annotation_ops(pod: Mapping[str, Any], added: Mapping[str, str]) -> list[JSON]:
    """Add these annotations, creating metadata.annotations (or metadata) when the pod has none."""
    metadata = pod.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        return [{"op": "add", "path": pointer("metadata", "annotations", k), "value": v} for k, v in added.items()]
    if isinstance(metadata, dict):
        return [{"op": "add", "path": pointer("metadata", "annotations"), "value": dict(added)}]
    return [{"op": "add", "path": pointer("metadata"), "value": {"annotations": dict(added)}}]


def plan(pod: Mapping[str, Any], template: SidecarTemplate) -> Outcome:
    """What to do with this pod. Never raises on odd input: an unpatchable pod is refused."""
    if not ann.wants_injection(pod):
        return Outcome("skipped")
    spec = pod.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list) or not spec["containers"]:
        return refused("malformed_pod", "the pod has no spec.containers")
    for key in ("initContainers", "volumes", "imagePullSecrets"):
        if spec.get(key) is not None and not isinstance(spec[key], list):
            return refused("malformed_pod", f"spec.{key} is not a list")
    containers = spec["containers"] + _items(spec.get("initContainers"))
    if len(containers) > MAX_CONTAINERS:
        # Before anything else: the work and the patch grow with the containers.
        return refused(
            "too_many_containers",
            f"the pod has {len(containers)} containers and init containers;"
            f" the injector patches at most {MAX_CONTAINERS}",
        )
    if not all(isinstance(c, dict) for c in containers):
        return refused("malformed_pod", "a container is not an object")
    if problem := next(filter(None, map(_container_problem, containers)), None):
        return refused("malformed_pod", problem)
    annotations = ann.annotations_of(pod)
    if existing := _existing_sidecar(spec, template, annotations):
        return existing
    overrides, errors, notices = ann.parse_overrides(annotations)
    if errors:
        return refused("invalid_annotation", *errors)
    variant = build(template, overrides)
    if isinstance(variant, str):
        return refused("invalid_annotation", variant)
    if clash := _clashes(spec, variant):
        return refused(*clash)

    # App containers first, with the indices of the pod as sent: the legacy sidecar is inserted at
    # index 0 last, so no earlier op has been shifted by it.
    ops, warnings = _app_ops(spec, variant)
    ops += _list_ops(pointer("spec", "volumes"), spec.get("volumes"), variant.volumes)
    ops += _pull_secret_ops(spec, template)
    if template.native:
        # First among init containers: those after it can already use it (it starts, and passes
        # its startupProbe, before the next init container runs).
        inits = pointer("spec", "initContainers")
        ops += _list_ops(inits, spec.get("initContainers"), [variant.container], at_start=True)
    else:
        # Legacy: first regular container, so its postStart hook holds the app until ready.
        ops.append({"op": "add", "path": pointer("spec", "containers", 0), "value": variant.container})
    added = {ann.STATUS: ann.STATUS_INJECTED}
    if template.scrape_annotations:
        scrape, scrape_warnings = _scrape_annotations(pod, variant)
        added |= scrape
        warnings += scrape_warnings
    ops += _annotation_ops(pod, added)
    return Outcome("injected", patch=ops, warnings=[f"s2-sidecar: {n}" for n in notices] + warnings)
