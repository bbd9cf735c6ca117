"""The sidecar's TCP ports against the pod's: all containers of a pod share one network namespace,
so a port an app container already declares would make the app or the sidecar fail "address in
use" at start. Pure functions over the pod JSON and the template variant.

Only declared `containerPort`s are seen: a port an app opens without declaring it (from an env
variable or an argument) is beyond what a webhook can know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.injector.template import JSON, Variant

GRPC_LISTEN = "S2_SIDECAR_LISTEN"
ADMIN_LISTEN = "S2_SIDECAR_ADMIN_LISTEN"
ADDRESS = "S2_SIDECAR_ADDRESS"
_LOOPBACK = "127.0.0.1:"
_ANY = "0.0.0.0:"


@dataclass(frozen=True)
class SidecarPorts:
    # None in unix-socket mode (the gRPC API is on the socket; no TCP port is taken).
    grpc: int | None
    admin: int


def _env_value(env: Any, name: str) -> str:
    for e in env if isinstance(env, list) else []:
        if isinstance(e, dict) and e.get("name") == name and isinstance(e.get("value"), str):
            return str(e["value"])
    return ""


def ports_of(variant: Variant) -> SidecarPorts:
    """The ports the variant listens on, read from the env the chart rendered."""
    env = variant.container.get("env")
    listen = _env_value(env, GRPC_LISTEN)
    grpc = int(listen[len(_LOOPBACK) :]) if listen.startswith(_LOOPBACK) else None
    return SidecarPorts(grpc=grpc, admin=int(_env_value(env, ADMIN_LISTEN).rsplit(":", 1)[1]))


def declared_tcp_ports(spec: Mapping[str, Any]) -> dict[int, str]:
    """containerPort -> the first container declaring it (TCP, the default protocol, only)."""
    out: dict[int, str] = {}
    for key in ("initContainers", "containers"):
        containers = spec.get(key)
        for c in containers if isinstance(containers, list) else []:
            ports = c.get("ports") if isinstance(c, dict) else None
            for p in ports if isinstance(ports, list) else []:
                if not isinstance(p, dict) or p.get("protocol", "TCP") != "TCP":
                    continue
                port = p.get("containerPort")
                if isinstance(port, int) and not isinstance(port, bool):
                    out.setdefault(port, str(c.get("name")))
    return out


def _replace_port_in(value: Any, old: str, new: str) -> Any:
    """Strings (in nested lists) with one address replaced: the legacy postStart script names the
    admin port in its URL."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_port_in(v, old, new) for v in value]
    return value


def _set_env_value(env: list[JSON], name: str, value: str) -> None:
    for e in env:
        if e.get("name") == name:
            e["value"] = value


def move(variant: Variant, grpc: int | None, admin: int | None) -> None:
    """Move the variant (in place) to these ports; None keeps a port. Everything that names a port
    follows: the listen addresses, the app's S2_SIDECAR_ADDRESS, the admin containerPort, the
    probes and the legacy postStart hook."""
    current = ports_of(variant)
    container = variant.container
    env: list[JSON] = container.setdefault("env", [])
    if grpc is not None and current.grpc is not None and grpc != current.grpc:
        _set_env_value(env, GRPC_LISTEN, f"{_LOOPBACK}{grpc}")
        _set_env_value(variant.app_env, ADDRESS, f"{_LOOPBACK}{grpc}")
    if admin is None or admin == current.admin:
        return
    _set_env_value(env, ADMIN_LISTEN, f"{_ANY}{admin}")
    for p in container.get("ports") or []:
        if p.get("containerPort") == current.admin:
            p["containerPort"] = admin
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        http_get = (container.get(probe) or {}).get("httpGet")
        if isinstance(http_get, dict) and http_get.get("port") == current.admin:
            http_get["port"] = admin
    post_start = ((container.get("lifecycle") or {}).get("postStart") or {}).get("exec")
    if isinstance(post_start, dict):
        post_start["command"] = _replace_port_in(
            post_start.get("command"), f"{_LOOPBACK}{current.admin}/", f"{_LOOPBACK}{admin}/"
        )
