"""Opt-in and per-pod overrides, read from the pod's labels and annotations.

Every key is under `s2-sidecar/`. An invalid value refuses the injection (the pod is admitted
unchanged, with a warning): a sidecar with an endpoint or Secret the user did not ask for is
worse than no sidecar. An unknown key only warns, so a typo is visible but harmless.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sidecar.wire.names import basin_name_problem

PREFIX: Final = "s2-sidecar/"
INJECT: Final = PREFIX + "inject"
# Set by the injector on the pods it changed: its presence means "already injected".
STATUS: Final = PREFIX + "status"
STATUS_INJECTED: Final = "injected"

BASIN_ENDPOINT: Final = PREFIX + "basin-endpoint"
DEFAULT_BASIN: Final = PREFIX + "default-basin"
TOKEN_SECRET: Final = PREFIX + "token-secret"
TOKEN_SECRET_KEY: Final = PREFIX + "token-secret-key"
SOCKET: Final = PREFIX + "socket"
# Per-pod sidecar ports, for a pod whose app already uses the chart's (sidecar.grpcPort/adminPort).
GRPC_PORT: Final = PREFIX + "grpc-port"
ADMIN_PORT: Final = PREFIX + "admin-port"
# The Prometheus scrape annotations (scrape, port, path), added when the chart asks for them.
SCRAPE: Final = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")
# annotation -> (resources section, resource name)
RESOURCES: Final = {
    PREFIX + "cpu-request": ("requests", "cpu"),
    PREFIX + "cpu-limit": ("limits", "cpu"),
    PREFIX + "memory-request": ("requests", "memory"),
    PREFIX + "memory-limit": ("limits", "memory"),
}
KNOWN: Final = frozenset(
    {
        INJECT,
        STATUS,
        BASIN_ENDPOINT,
        DEFAULT_BASIN,
        TOKEN_SECRET,
        TOKEN_SECRET_KEY,
        SOCKET,
        GRPC_PORT,
        ADMIN_PORT,
        *RESOURCES,
    }
)

# The chart's values.schema.json patterns, so an annotation accepts what the values accept.
_ENDPOINT = re.compile(r"https?://\S+")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E|e[0-9]+)?")
# A Secret name is a DNS subdomain; a key is [-._a-zA-Z0-9]+ (Kubernetes validation).
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Overrides:
    basin_endpoint: str | None = None
    default_basin: str | None = None
    token_secret: str | None = None
    token_secret_key: str | None = None
    unix_socket: bool | None = None
    grpc_port: int | None = None
    admin_port: int | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=dict)


def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _metadata(pod: Mapping[str, Any], key: str) -> Mapping[str, str]:
    metadata = pod.get("metadata")
    return _str_map(metadata.get(key)) if isinstance(metadata, dict) else {}


def annotations_of(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return _metadata(pod, "annotations")


def labels_of(pod: Mapping[str, Any]) -> Mapping[str, str]:
    return _metadata(pod, "labels")


def wants_injection(pod: Mapping[str, Any]) -> bool:
    """Opted in by the annotation or the label `s2-sidecar/inject: "true"` (the label is what the
    webhook's objectSelector routes on); an explicit "false" annotation opts out."""
    annotation = annotations_of(pod).get(INJECT, "").strip().lower()
    if annotation == "false":
        return False
    return annotation == "true" or labels_of(pod).get(INJECT, "").strip().lower() == "true"


def parse_overrides(annotations: Mapping[str, str]) -> tuple[Overrides, list[str], list[str]]:
    """(overrides, errors, notices): errors refuse the injection, notices only warn."""
    errors: list[str] = []
    notices = [
        f"unknown annotation {k} ignored" for k in sorted(annotations) if k.startswith(PREFIX) and k not in KNOWN
    ]

    def get(key: str) -> str | None:
        value = annotations.get(key)
        return None if value is None else value.strip()

    endpoint = get(BASIN_ENDPOINT)
    if endpoint is not None and not _ENDPOINT.fullmatch(endpoint):
        errors.append(f"{BASIN_ENDPOINT} must be an http(s) URL, got {endpoint!r}")
    basin = get(DEFAULT_BASIN)
    if basin and (problem := basin_name_problem(basin)):
        errors.append(f"{DEFAULT_BASIN}: {problem}")
    secret = get(TOKEN_SECRET)
    if secret is not None and (len(secret) > 253 or not _SUBDOMAIN.fullmatch(secret)):
        errors.append(f"{TOKEN_SECRET} must be a Secret name (DNS subdomain), got {secret!r}")
    secret_key = get(TOKEN_SECRET_KEY)
    if secret_key is not None and not _SECRET_KEY.fullmatch(secret_key):
        errors.append(f"{TOKEN_SECRET_KEY} must match [-._a-zA-Z0-9]+, got {secret_key!r}")
    socket = get(SOCKET)
    if socket is not None and socket not in ("unix", "tcp"):
        errors.append(f"{SOCKET} must be unix or tcp, got {socket!r}")
    ports: dict[str, int] = {}
    for key in (GRPC_PORT, ADMIN_PORT):
        port = get(key)
        if port is None:
            continue
        if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
            errors.append(f"{key} must be a port number 1-65535, got {port!r}")
        else:
            ports[key] = int(port)
    if GRPC_PORT in ports and ports.get(GRPC_PORT) == ports.get(ADMIN_PORT):
        errors.append(f"{GRPC_PORT} and {ADMIN_PORT} must differ, both are {ports[GRPC_PORT]}")
    resources: dict[str, dict[str, str]] = {}
    for key, (section, resource) in RESOURCES.items():
        quantity = get(key)
        if quantity is None:
            continue
        if not _QUANTITY.fullmatch(quantity):
            errors.append(f"{key} must be a quantity like 250m or 256Mi, got {quantity!r}")
        resources.setdefault(section, {})[resource] = quantity
    overrides = Overrides(
        basin_endpoint=endpoint,
        default_basin=basin or None,
        token_secret=secret,
        token_secret_key=secret_key,
        unix_socket=None if socket is None else socket == "unix",
        grpc_port=ports.get(GRPC_PORT),
        admin_port=ports.get(ADMIN_PORT),
        resources=resources,
    )
    return overrides, errors, notices
